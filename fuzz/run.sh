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
