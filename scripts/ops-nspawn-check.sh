#!/usr/bin/env bash
# The packaged service under a real systemd: a debootstrapped Debian 12 booted in
# systemd-nspawn (sharing this machine's network), the .deb installed in it, a cell against a
# Mosquitto and a pymodbus PLC started here on loopback. Checks what the offline checks in
# scripts/ops-checks.sh cannot: that the sandboxed unit really starts (Type=notify READY), shows
# its STATUS, answers /health, reloads a good config and refuses a broken one, is killed and
# restarted by the watchdog when frozen and when commits to a full disk keep failing, stops with
# exit 0, and that a purge with a running cell removes everything.
#
#   scripts/ops-nspawn-check.sh [BINARY]        (default: target/debug/mes-edge)
#
# Not part of CI (it downloads a Debian base system, ~100 MB, once into target/nspawn-root, and
# takes a minute or two); run it by hand after changing the unit or the maintainer scripts.
# Needs root, debootstrap and systemd-container (installed here with apt if missing), and the
# test peers (run scripts/test.sh once first).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BINARY="${1:-$ROOT/target/debug/mes-edge}"
MACHINE="$ROOT/target/nspawn-root"
WORK="$(mktemp -d)"
PY="$ROOT/target/peers-venv/bin/python"
PIDS=()

log() { echo "ops-nspawn: $*"; }
LEADER=""
fail() {
    echo "ops-nspawn: FAIL $*" >&2
    if [ -n "$LEADER" ]; then
        nsenter -t "$LEADER" -a -- journalctl -u mes-edge@press4 -q --no-pager -n 30 >&2 || true
    fi
    exit 1
}
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

[ "$(id -u)" -eq 0 ] || fail "run as root"
[ -x "$PY" ] || fail "no $PY: run scripts/test.sh once first"
for tool in debootstrap systemd-nspawn; do
    command -v "$tool" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap systemd-container >/dev/null
done

if [ ! -x "$MACHINE/usr/lib/systemd/systemd" ]; then
    log "debootstrap bookworm into $MACHINE (once)"
    rm -rf "$MACHINE"
    debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,curl bookworm "$MACHINE" \
        http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 || { tail "$WORK/debootstrap.log"; fail "debootstrap"; }
    echo mes-edge-nspawn >"$MACHINE/etc/hostname"
fi

DEB="$(bash "$ROOT/packaging/build-deb.sh" --binary "$BINARY" --out "$WORK/deb")"
cp "$DEB" "$MACHINE/root/mes-edge.deb"

# The peers, on this machine's loopback, which the container shares.
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MQTT_PORT="$(free_port)"; MODBUS_PORT="$(free_port)"; HEALTH_PORT="$(free_port)"
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$MQTT_PORT" >"$WORK/mosquitto.conf"
/usr/sbin/mosquitto -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
PIDS+=($!)
"$PY" -u "$ROOT/tests/peers/modbus_server.py" --host 127.0.0.1 --port "$MODBUS_PORT" --unit-ids 1 >"$WORK/modbus.log" 2>&1 &
PIDS+=($!)

log "booting the container"
systemd-nspawn --register=no --keep-unit --quiet -b -D "$MACHINE" --console=read-only >"$WORK/boot.log" 2>&1 &
NSPAWN=$!
PIDS+=("$NSPAWN")
for _ in $(seq 1 100); do
    LEADER="$(pgrep -P "$NSPAWN" -x systemd || true)"
    [ -n "$LEADER" ] && nsenter -t "$LEADER" -a -- systemctl is-system-running --wait >/dev/null 2>&1 && break
    sleep 0.3
done
[ -n "$LEADER" ] || { cat "$WORK/boot.log"; fail "the container did not boot"; }
inside() { nsenter -t "$LEADER" -a -- sh -c "$1"; }
# Matches on captured output: under pipefail, `cmd | grep -q` fails when grep exits first.
has() { local out; out="$(inside "$1")"; grep -q "$2" <<<"$out"; }
unit() { echo "systemctl show -p $1 --value mes-edge@press4"; }
journal='journalctl -u mes-edge@press4 -q --no-pager'

# Whatever an interrupted earlier run left behind goes first.
inside 'dpkg --purge mes-edge >/dev/null 2>&1; rm -rf /etc/mes-edge /var/lib/mes-edge' || true
inside 'dpkg -i /root/mes-edge.deb >/dev/null' || fail "dpkg -i"
cat >"$MACHINE/etc/mes-edge/press4.toml" <<EOF
[cell]
enterprise = "acme"
site = "plant1"
area = "pressing"
line = "line2"
cell = "press4"

[[devices]]
name = "press_plc"
protocol = "modbus-tcp"
host = "127.0.0.1"
port = $MODBUS_PORT
poll_interval_ms = 250

[[devices.tags]]
name = "good_count"
table = "holding"
address = 0
type = "u32"

[signals.good_count]
tag = "good_count"

[store]
path = "/var/lib/mes-edge/press4.db"

[mqtt]
url = "mqtt://127.0.0.1:$MQTT_PORT"

[health]
listen = "127.0.0.1:$HEALTH_PORT"
EOF
inside 'chgrp mes-edge /etc/mes-edge/press4.toml && chmod 0640 /etc/mes-edge/press4.toml'

inside 'systemctl enable --now mes-edge@press4' >/dev/null 2>&1 || fail "enable --now"
for _ in $(seq 1 50); do
    has "$(unit StatusText)" "devices online 1/1, broker connected" && break
    sleep 0.2
done
has "$(unit ActiveState)" "^active$" || fail "not active"
has "$(unit StatusText)" "devices online 1/1, broker connected" \
    || fail "STATUS: $(inside 'systemctl show -p StatusText --value mes-edge@press4')"
[ "$(inside "curl -s -o /dev/null -w '%{http_code}' 127.0.0.1:$HEALTH_PORT/health")" = 200 ] || fail "/health"
log "ok    started (READY), STATUS shown, /health 200 under the sandbox"
[ "$(inside 'stat -c "%U:%G %a" /var/lib/mes-edge/press4.sock')" = "mes-edge:mes-edge-operators 660" ] \
    || fail "control socket: $(inside 'stat -c "%U:%G %a" /var/lib/mes-edge/press4.sock')"
log "ok    the control socket belongs to mes-edge-operators under the sandbox"

inside 'sed -i "s/\"press_plc\"/\"press_plc_2\"/" /etc/mes-edge/press4.toml && systemctl reload mes-edge@press4' || fail "reload"
reloaded=""
for _ in $(seq 1 50); do
    has "$journal" "config reloaded" && { reloaded=1; break; }
    sleep 0.2
done
[ -n "$reloaded" ] || fail "no 'config reloaded'"
inside 'sed -i "s/poll_interval_ms = 250/poll_interval_ms = 0/" /etc/mes-edge/press4.toml'
if inside 'systemctl reload mes-edge@press4' 2>/dev/null; then fail "a broken config reloaded"; fi
inside 'sed -i "s/poll_interval_ms = 0/poll_interval_ms = 250/" /etc/mes-edge/press4.toml'
has "$(unit ActiveState)" "^active$" || fail "not active after the refused reload"
log "ok    reload applied; a broken config refused by systemctl reload, the cell still running"

PID="$(inside 'systemctl show -p MainPID --value mes-edge@press4')"
inside "kill -STOP $PID"
log "froze the runtime (pid $PID in the container); waiting for the watchdog (30 s)"
for _ in $(seq 1 45); do
    sleep 1
    NEW="$(inside 'systemctl show -p MainPID --value mes-edge@press4')"
    [ "$NEW" != "$PID" ] && [ "$NEW" != 0 ] && break
done
has "$journal" "Watchdog timeout" || fail "no watchdog timeout"
[ "$NEW" != "$PID" ] || fail "not restarted"
log "ok    watchdog killed the frozen runtime, systemd restarted it"

# A full disk under the running service: commits fail, /health says so (503), STATUS= says so,
# and once they have failed for restart_after_failing_commits_s the watchdog pings stop and
# systemd restarts the service. With room again it commits everything and is healthy.
inside 'systemctl stop mes-edge@press4'
inside 'mount -t tmpfs -o size=2m,mode=0711 tmpfs /var/lib/mes-edge && chown mes-edge:mes-edge /var/lib/mes-edge' \
    || fail "mount a small tmpfs on /var/lib/mes-edge"
inside 'sed -i "s#^path = \"/var/lib/mes-edge/press4.db\"#&\nrestart_after_failing_commits_s = 5#" /etc/mes-edge/press4.toml'
inside 'systemctl reset-failed mes-edge@press4; systemctl start mes-edge@press4' || fail "start on the small disk"
for _ in $(seq 1 50); do
    has "$(unit StatusText)" "devices online 1/1, broker connected" && break
    sleep 0.2
done
PID="$(inside 'systemctl show -p MainPID --value mes-edge@press4')"
inside 'dd if=/dev/zero of=/var/lib/mes-edge/filler bs=4k >/dev/null 2>&1 || true'
plc_count() {
    "$PY" - "$MODBUS_PORT" "$1" <<'PYEOF'
import sys
from pymodbus.client import ModbusTcpClient
c = ModbusTcpClient("127.0.0.1", port=int(sys.argv[1]))
c.connect()
n = int(sys.argv[2])
c.write_registers(0, [n >> 16, n & 0xFFFF])
c.close()
PYEOF
}
code=""
for n in $(seq 1 60); do
    plc_count "$n"
    code="$(inside "curl -s -o /dev/null -w '%{http_code}' 127.0.0.1:$HEALTH_PORT/health")"
    [ "$code" = 503 ] && has "curl -s 127.0.0.1:$HEALTH_PORT/health" "commits to the store have failed" && break
    sleep 0.5
done
[ "$code" = 503 ] || fail "/health did not turn 503 on a full disk"
for _ in $(seq 1 20); do
    has "$(unit StatusText)" "STORE COMMITS FAILING" && break
    sleep 0.5
done
has "$(unit StatusText)" "STORE COMMITS FAILING" || fail "STATUS: $(inside "$(unit StatusText)")"
log "ok    full disk: /health 503 naming the failed commits, STATUS= says so"
for _ in $(seq 1 60); do
    sleep 1
    NEW="$(inside 'systemctl show -p MainPID --value mes-edge@press4')"
    [ "$NEW" != "$PID" ] && [ "$NEW" != 0 ] && break
done
has "$journal" "withholding the watchdog" || fail "no 'withholding the watchdog' in the journal"
has "$journal" "Watchdog timeout" || fail "no watchdog timeout"
[ "$NEW" != "$PID" ] || fail "not restarted while commits failed"
log "ok    commits failing for 5 s: watchdog withheld, systemd restarted the service"
inside 'rm -f /var/lib/mes-edge/filler'
code=""
for _ in $(seq 1 60); do
    code="$(inside "curl -s -o /dev/null -w '%{http_code}' 127.0.0.1:$HEALTH_PORT/health")"
    [ "$code" = 200 ] && break
    sleep 0.5
done
[ "$code" = 200 ] || fail "/health not 200 after the disk had room again: $(inside "curl -s 127.0.0.1:$HEALTH_PORT/health")"
log "ok    room again: commits resume, /health 200"
inside 'systemctl stop mes-edge@press4 && umount /var/lib/mes-edge'
inside 'sed -i "/^restart_after_failing_commits_s/d" /etc/mes-edge/press4.toml; systemctl start mes-edge@press4' \
    || fail "start again on the state directory"

sleep 2
START=$(date +%s%N)
inside 'systemctl stop mes-edge@press4'
MS=$(( ($(date +%s%N) - START) / 1000000 ))
has "$(unit Result)" "^success$" || fail "stop result"
log "ok    clean stop in ${MS} ms, exit 0"

inside 'systemctl start mes-edge@press4 && sleep 1 && dpkg --purge mes-edge >/dev/null 2>&1' || fail "purge"
inside 'id mes-edge' 2>/dev/null && fail "user left after purge"
inside 'test -e /var/lib/mes-edge || test -e /lib/systemd/system/mes-edge@.service || test -L /etc/systemd/system/multi-user.target.wants/mes-edge@press4.service' \
    && fail "files left after purge"
inside 'rm -f /etc/mes-edge/press4.toml; rmdir /etc/mes-edge'
log "ok    purge with a running cell: stopped, user, state and unit gone"
log "all checks passed"
