#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (CI: scripts/test.sh calls this with the default).
#
#   fuzz/run.sh [seconds per target, default 20] [target ...]
#   fuzz/run.sh --build-only          builds the targets and stops (scripts/test.sh starts this
#                                     at low priority beside the debug build and the tests)
#   fuzz/run.sh --no-build [...]      runs the targets as built (fails if they are not)
#
# Seeds are in fuzz/corpus/<target>/ (kept in git); what a run discovers goes to a temporary
# corpus, so CI does not grow the repository. A crash leaves its input in
# fuzz/artifacts/<target>/ and fails the run: add it to the corpus once fixed.
# The targets run side by side, one a core (MES_EDGE_FUZZ_JOBS, default: the cores), each for
# its own seconds; a target's lines are printed when it ends.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT/fuzz"
BUILD=1
RUN=1
case "${1:-}" in
--build-only) RUN=0; shift ;;
--no-build) BUILD=0; shift ;;
esac
SECONDS_PER_TARGET="${1:-20}"
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    TARGETS=(cell_config mqtt_command modbus_decode opcua_value event_encoder s7_frame)
fi
# The targets are built without a sanitizer (`-s none`): every parser they reach is safe Rust
# (no `unsafe` in the fuzzed code of ours, no SQLite), so AddressSanitizer had nothing of its
# own to find there, while it cost most of the build and most of the runs. What a target can
# find (a panic, an overflow, an index past the end, a hang) it still finds: a panic planted
# behind four magic bytes in modbus_decode (`&data[2..6] == b"PLNT"`) was found within a
# second (four single-byte tests at scattered offsets were not, in 60 s; ASan's build was not
# tried on that one). From an empty target directory on the 2-core machine (2026-12-07,
# /usr/bin/time -v; other builds beside them, so CPU seconds compare and wall times hardly
# do), and libFuzzer's stat::number_of_executed_units in each target's 20 s (cell_config,
# mqtt_command, modbus_decode, opcua_value, event_encoder, s7_frame):
#   -O -s none (this)        781 s CPU, 11 min 18 s; 194,051 3,221,320 9,517,161 1,231,578 77,480 12,928,465
#   -O (ASan, until now)   1,300 s CPU, 21 min 53 s;  26,712   356,755   674,414   161,190  8,980  1,474,671
#   --dev, line tables       522 s CPU, 20 min 57 s;     454    13,749    17,742    18,676    116     55,741
#   -O --codegen-units 16  1,617 s CPU, 37 min 19 s;  35,555   569,664   843,898   238,547  8,270  1,309,905
# (the ASan targets ran at a load average near 5, the -s none ones between 0.6 and 1.4: the
# runs are 7 to 14 times as many, of which the load explains some, not most.) --dev builds
# with the least CPU but runs 9 to 77 times fewer inputs than ASan's (event_encoder 116 in
# 20 s, hardly past its seeds); more codegen units cost CPU two busy cores cannot hide.
# The build is cargo-fuzz's own (0.13.2, `cargo fuzz build -O -s none`), spelled out: the
# flags below are the ones it passes (`cargo fuzz run -O -s none <target>` by hand builds the
# same targets), so CI spends no minute compiling cargo-fuzz itself (54 s on the 2-core
# machine). Every flag is stable Rust's. codegen-units=1 because the coverage pass keeps ThinLTO
# from importing across units (cargo-fuzz's reason; it forces the same).
TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
if [ "$BUILD" -eq 1 ]; then
    RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing \
-Cllvm-args=-simplifycfg-branch-fold-threshold=0 -Cllvm-args=-sanitizer-coverage-stack-depth \
-Ccodegen-units=1${RUSTFLAGS:+ $RUSTFLAGS}" \
        cargo build --manifest-path Cargo.toml --target "$TRIPLE" --release \
        --config 'profile.release.debug="line-tables-only"' --bins --locked
fi
[ "$RUN" -eq 1 ] || exit 0
BIN="$ROOT/fuzz/target/$TRIPLE/release"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# One target's run; its lines go to $WORK/$t.log, its status to $WORK/$t.status.
fuzz_one() {
    local t="$1"
    mkdir -p "$WORK/$t" "artifacts/$t"
    # The cell config target also starts from every example config and every config case:
    # read where they live rather than copied into the corpus.
    local seeds=("corpus/$t")
    if [ "$t" = cell_config ]; then
        seeds+=(../config ../tests/config-cases/*/)
    fi
    {
        echo "fuzz/run.sh: $t for ${SECONDS_PER_TARGET} s"
        set +e
        "$BIN/$t" -artifact_prefix="artifacts/$t/" "$WORK/$t" "${seeds[@]}" \
            -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -max_len=65536 \
            -print_final_stats=1 >"$WORK/$t.out" 2>&1
        echo $? >"$WORK/$t.status"
        set -e
        grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|==|SUMMARY|Done|INFO: Running|.*panicked)" "$WORK/$t.out"
    } >"$WORK/$t.log" 2>&1
}

for t in "${TARGETS[@]}"; do
    [ -x "$BIN/$t" ] || { echo "fuzz/run.sh: no $BIN/$t: build first (fuzz/run.sh --build-only)" >&2; exit 1; }
done
JOBS="${MES_EDGE_FUZZ_JOBS:-$(nproc)}"
running=0
for t in "${TARGETS[@]}"; do
    if [ "$running" -ge "$JOBS" ]; then
        wait -n || true
        running=$((running - 1))
    fi
    fuzz_one "$t" &
    running=$((running + 1))
done
wait
failed=0
for t in "${TARGETS[@]}"; do
    cat "$WORK/$t.log"
    if [ "$(cat "$WORK/$t.status" 2>/dev/null || echo 1)" -ne 0 ]; then
        echo "fuzz/run.sh: $t FAILED; the input is in fuzz/artifacts/$t/" >&2
        failed=1
    fi
done
[ "$failed" -eq 0 ] || exit 1
echo "fuzz/run.sh: ${#TARGETS[@]} targets, ${SECONDS_PER_TARGET} s each, ${JOBS} at a time, no crash"
