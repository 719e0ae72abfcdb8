#!/usr/bin/env bash
# packaging/idle-order.sh: makes packaging/idle-order.txt, the functions an idle cell runs, which
# build.rs hands the linker so that the release binary has them side by side
# (docs/FOOTPRINT.md, "The idle loop's code together").
#
# Runs bench S5's cell (one Modbus device, 50 tags at 100 ms, Mosquitto) on a release build with
# its symbols, and once the start's pages are handed back (2 s after READY), puts a uprobe on the
# entry of every function of the binary for SECONDS (default 60): the functions entered are the
# list, in the binary's address order. Needs root (tracefs's uprobe_events) and the bench harness.
# Run it again when the S5 figure creeps up: names the code no longer has are skipped at the
# link, so a stale list only costs memory.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SECONDS_IDLE="${1:-60}"
TRACING=/sys/kernel/tracing
GROUP=mes_edge_idle
WORK="$ROOT/target/idle-order"
log() { echo "idle-order: $*" >&2; }

[ -w "$TRACING/uprobe_events" ] || { log "needs root and $TRACING/uprobe_events"; exit 2; }
export MES_EDGE_MOSQUITTO="${MES_EDGE_MOSQUITTO:-/usr/sbin/mosquitto}"
[ -x "$MES_EDGE_MOSQUITTO" ] || { log "needs Mosquitto at $MES_EDGE_MOSQUITTO"; exit 2; }

log "building the shipped binary with its symbols"
cargo rustc --release --locked --no-default-features --features opcua --bin mes-edge -- -C strip=none
cargo build --release --locked -p mes-edge-bench
rm -rf "$WORK" && mkdir -p "$WORK"
BIN="$WORK/mes-edge"
cp target/release/mes-edge "$BIN"

# One uprobe per function with a size, at its file offset (the code segment's file offset differs
# from its address).
python3 - "$BIN" "$WORK/probes" <<'EOF'
import subprocess, sys
binary, out = sys.argv[1], sys.argv[2]
segments = []
for line in subprocess.run(["readelf", "-lW", binary], capture_output=True, text=True, check=True).stdout.splitlines():
    f = line.split()
    if f and f[0] == "LOAD" and "E" in f[6:-1]:
        segments.append((int(f[2], 16), int(f[4], 16), int(f[1], 16)))  # vaddr, filesz, offset
with open(out, "w") as o:
    for line in subprocess.run(["nm", "-n", "-S", "--defined-only", binary], capture_output=True, text=True, check=True).stdout.splitlines():
        f = line.split()
        if len(f) != 4 or f[2] not in "tTwW" or int(f[1], 16) == 0:
            continue
        addr = int(f[0], 16)
        for vaddr, size, offset in segments:
            if vaddr <= addr < vaddr + size:
                o.write(f"{addr:x} {addr - vaddr + offset:#x} {f[3]}\n")
EOF
cleanup() {
    echo 0 > "$TRACING/events/$GROUP/enable" 2>/dev/null || true
    for i in $(seq 1 "$(wc -l < "$WORK/probes")"); do
        echo "-:$GROUP/f$i" >> "$TRACING/uprobe_events" 2>/dev/null || true
    done
}
trap cleanup EXIT
awk -v bin="$BIN" -v g="$GROUP" '{print "p:" g "/f" NR " " bin ":" $2}' "$WORK/probes" \
    | while read -r probe; do echo "$probe" >> "$TRACING/uprobe_events"; done
log "$(wc -l < "$WORK/probes") functions probed"

target/release/mes-edge-bench run s5 --no-peers --runs 1 --mes-edge "$BIN" --out "$WORK/run" \
    > "$WORK/run.log" 2>&1 &
HARNESS=$!
for _ in $(seq 1 100); do
    PID=$(pgrep -f "^$BIN" | head -1 || true)
    [ -n "$PID" ] && break
    sleep 0.1
done
[ -n "${PID:-}" ] || { log "the cell did not start; see $WORK/run.log"; exit 1; }
sleep 6 # past READY and the hand-back 2 s after it
# Some entries cannot take a uprobe (the kernel refuses a few instructions): those are left out.
echo 1 > "$TRACING/events/$GROUP/enable" 2>/dev/null || log "some functions could not be probed"
sleep "$SECONDS_IDLE"
kill -0 "$PID" 2>/dev/null || { log "the cell ended during the profile; see $WORK/run.log"; exit 1; }
# The hits are read before the probes go: disabling them waits for an RCU grace period each,
# minutes for all of them (the cleanup, after the list is written).
grep -E "^ *$BIN +f[0-9]+ " "$TRACING/uprobe_profile" | awk '$3 > 0 {print substr($2, 2)}' \
    > "$WORK/hits"
wait "$HARNESS" || true # the harness ends its cell, Mosquitto and load server itself
{
    echo "# The functions an idle cell enters, in address order: packaging/idle-order.sh made this"
    echo "# on $(date -u +%Y-%m-%d) from $(git rev-parse --short HEAD), $SECONDS_IDLE s of bench S5's cell; build.rs"
    echo "# hands it to the linker. Regenerate it, do not edit it."
    awk 'NR == FNR {hit[$1] = 1; next} hit[FNR] {print $3}' "$WORK/hits" "$WORK/probes"
} > packaging/idle-order.txt
log "$(wc -l < "$WORK/hits") functions entered; packaging/idle-order.txt written"
log "removing the probes (a few minutes)"
