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
# cargo-fuzz's release build (opt-level 3, one codegen unit per crate, line tables, ASan and
# coverage on all 310 crates) stays: the two levers measured against it both lose. From an
# empty fuzz/target on the 2-core machine (2026-12-07, /usr/bin/time -v, nice 10, other
# sessions building beside it, so the CPU seconds compare and the wall times hardly do), with
# libFuzzer's stat::number_of_executed_units in each target's 20 s (cell_config, mqtt_command,
# modbus_decode, opcua_value, event_encoder, s7_frame):
#   -O (this)              1,300 s CPU, 21 min 53 s;  26,712 356,755 674,414 161,190 8,980 1,474,671
#   --dev, line tables       522 s CPU, 20 min 57 s;     454  13,749  17,742  18,676   116    55,741
#   -O --codegen-units 16  1,617 s CPU, 37 min 19 s;  35,555 569,664 843,898 238,547 8,270 1,309,905
# (--dev with [profile.dev] debug = "line-tables-only" in fuzz/Cargo.toml, as -O has it; the
# --dev and 16-unit builds ran at the same time; the 16-unit targets ran at a load average
# near 2, the others near 5, so their inputs say "no slower", not "faster").
# --dev builds with 60 % less CPU and still found a panic planted behind four magic bytes, but
# runs 9 to 77 times fewer inputs (event_encoder 116 in 20 s, hardly past its seeds). More
# codegen units cost 24 % more CPU, which two busy cores cannot hide. `cargo fuzz run` below
# builds nothing: the targets' files keep their times over a whole run. Most of the 310 crates
# come with mes-edge's library (rumqttc, bundled SQLite, hyper, tokio; no feature leaves them
# out) and async-opcua, which opcua_value needs.
cargo fuzz build -O
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
    cargo fuzz run -O "$t" "$WORK/$t" "${SEEDS[@]}" -- \
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
