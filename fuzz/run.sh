#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (CI: scripts/test.sh calls this with the default).
#
#   fuzz/run.sh [seconds per target, default 20] [target ...]
#
# cargo-fuzz needs nightly features (-Zsanitizer=address); this machine has stable Rust only,
# so RUSTC_BOOTSTRAP=1 lets stable accept them (the fuzz build only; nothing else uses it).
# Seeds are in fuzz/corpus/<target>/ (kept in git); what a run discovers goes to a temporary
# corpus, so CI does not grow the repository. A crash leaves its input in
# fuzz/artifacts/<target>/ and fails the run: add it to the corpus once fixed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT/fuzz"
SECONDS_PER_TARGET="${1:-20}"
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    TARGETS=(cell_config mqtt_command modbus_decode opcua_value event_encoder s7_frame)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --version 0.13.2 --locked
fi
export RUSTC_BOOTSTRAP=1
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
# `cargo fuzz run` below builds nothing: the targets' files keep their times over a whole run.
# Most of the 310 crates come with mes-edge's library (rumqttc, bundled SQLite, hyper, tokio;
# no feature leaves them out) and async-opcua, which opcua_value needs.
cargo fuzz build -O -s none
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
for t in "${TARGETS[@]}"; do
    mkdir -p "$WORK/$t"
    echo "fuzz/run.sh: $t for ${SECONDS_PER_TARGET} s" >&2
    # The cell config target also starts from every example config and every config case:
    # read where they live rather than copied into the corpus.
    SEEDS=("corpus/$t")
    if [ "$t" = cell_config ]; then
        SEEDS+=(../config ../tests/config-cases/*/)
    fi
    # The fuzzer's own status, taken in the pipeline's statement: after `|| true` PIPESTATUS
    # would be true's, and a crash would pass.
    set +e
    cargo fuzz run -O -s none "$t" "$WORK/$t" "${SEEDS[@]}" -- \
        -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 2>&1 \
        | grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|==|SUMMARY|Done|INFO: Running|.*panicked)"
    status="${PIPESTATUS[0]}"
    set -e
    if [ "$status" -ne 0 ]; then
        echo "fuzz/run.sh: $t FAILED; the input is in fuzz/artifacts/$t/" >&2
        exit 1
    fi
done
echo "fuzz/run.sh: ${#TARGETS[@]} targets, ${SECONDS_PER_TARGET} s each, no crash"
