#!/usr/bin/env bash
# The project's one test command (CI runs it through .ci/run).
#
#   scripts/test.sh [extra args for the test runner]
#   e.g. scripts/test.sh --test cell harness_smoke   (one test binary, tests whose names hold
#                                                     harness_smoke; the binaries are tests/*/main.rs)
#   scripts/test.sh --quick       the edit-test loop: unit tests, the config cases and one
#                                 scenario per peer (no ops-checks, no fuzzing)
#
# 1. Installs Mosquitto and rabbitmq-server from Debian if missing. No system service is used:
#    tests start their own broker processes on free ports (tests/common).
# 2. Creates the Python venv for the test peers at target/peers-venv (again whenever
#    tests/peers/requirements.txt or the Python version changes; see the stamp file inside).
# 3. Exports MES_EDGE_MOSQUITTO, MES_EDGE_RABBITMQ and MES_EDGE_PYTHON (and the browsers'
#    MES_EDGE_CHROMIUM and MES_EDGE_FIREFOX) for the harness (tests
#    panic without them). RabbitMQ (its MQTT plugin) is the second broker, installed like
#    Mosquitto.
# 4. Builds everything once, then runs the whole workspace suite with cargo-nextest if it is
#    installed, else cargo test.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

QUICK=0
if [ "${1:-}" = "--quick" ]; then
    QUICK=1
    shift
fi

log() { echo "scripts/test.sh: $*" >&2; }
# Where the suite's time goes, printed at its end (the README's suite time is split by it).
PHASES=()
PHASE_START=$SECONDS
phase_done() {
    PHASES+=("$1 $((SECONDS - PHASE_START)) s")
    PHASE_START=$SECONDS
}
phases() {
    local IFS=,
    log "time by phase:${PHASES[*]/#/ }; in all $SECONDS s"
}

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    SUDO=(sudo)
fi

# apt-get install, running apt-get update first only if the plain install fails.
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if ! "${SUDO[@]}" apt-get install -y --no-install-recommends "$@"; then
        log "apt-get install $* failed; running apt-get update and trying again"
        "${SUDO[@]}" apt-get update
        "${SUDO[@]}" apt-get install -y --no-install-recommends "$@"
    fi
}

# --- 1. Mosquitto ------------------------------------------------------------------------------
MOSQUITTO=/usr/sbin/mosquitto
if [ ! -x "$MOSQUITTO" ]; then
    log "installing mosquitto"
    apt_install mosquitto
fi
"$MOSQUITTO" -h 2>/dev/null | head -n 1 >&2 || true

# RabbitMQ's MQTT plugin is the second broker (tests/common/rabbitmq.rs starts its own nodes on
# free ports; the package's system service is not used). The script in /usr/lib runs the node as
# the calling user; the /usr/sbin wrapper would switch to the rabbitmq user.
RABBITMQ=/usr/lib/rabbitmq/bin/rabbitmq-server
if [ ! -x "$RABBITMQ" ]; then
    log "installing rabbitmq-server"
    apt_install rabbitmq-server
fi

# socat makes the pseudo-terminal pair that stands in for an RS-485 line in the Modbus RTU tests.
SOCAT=/usr/bin/socat
if [ ! -x "$SOCAT" ]; then
    log "installing socat"
    apt_install socat
fi

# Headless Chromium and Firefox (Debian's ESR, over Marionette) drive the status page in
# tests/ops/status_page.rs.
CHROMIUM=/usr/bin/chromium
if [ ! -x "$CHROMIUM" ]; then
    log "installing chromium"
    apt_install chromium
fi
FIREFOX=/usr/bin/firefox-esr
if [ ! -x "$FIREFOX" ]; then
    log "installing firefox-esr"
    apt_install firefox-esr
fi

# --- 2. Python venv with the pinned peers ------------------------------------------------------
if ! command -v python3 >/dev/null 2>&1; then
    log "installing python3"
    apt_install python3 python3-venv
fi
VENV="$ROOT/target/peers-venv"
REQ="$ROOT/tests/peers/requirements.txt"
STAMP="$VENV/.requirements-stamp"
WANT="$(sha256sum "$REQ" | cut -d' ' -f1) $(python3 -c 'import sys; print(sys.executable, sys.version.split()[0])')"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ] \
    || ! "$VENV/bin/python" -c 'import pymodbus, asyncua, pysparkplug' >/dev/null 2>&1; then
    log "creating $VENV from $REQ"
    rm -rf "$VENV"
    mkdir -p "$ROOT/target"
    if ! python3 -m venv "$VENV"; then
        # Debian's system Python has no ensurepip without python3-venv.
        rm -rf "$VENV"
        apt_install python3-venv
        python3 -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
    echo "$WANT" > "$STAMP"
fi
"$VENV/bin/python" -c 'import pymodbus, sys; print("pymodbus", pymodbus.__version__, "on Python", sys.version.split()[0])' >&2
"$VENV/bin/python" -c 'import importlib.metadata as m; print("asyncua", m.version("asyncua"))' >&2

# --- 3. Environment for the harness (tests/common) ---------------------------------------------
export MES_EDGE_MOSQUITTO="$MOSQUITTO"
export MES_EDGE_PYTHON="$VENV/bin/python"
export MES_EDGE_SOCAT="$SOCAT"
export MES_EDGE_RABBITMQ="$RABBITMQ"
export MES_EDGE_CHROMIUM="$CHROMIUM"
export MES_EDGE_FIREFOX="$FIREFOX"

phase_done "peers and tools"

# Twice as many tests at once as cores (cargo-nextest; NEXTEST_TEST_THREADS set outside wins):
# an integration test spends most of its time waiting on its peers (a broker outage of 30 s, a
# PLC's next part), not computing. On the 2-core machine (2026-12-07, the whole suite, 430
# tests): 2 at once 588 s; 4 at once 285 s, and that run used 71 % of one core on average
# (/usr/bin/time -v: 175 s user, 30 s system).
export NEXTEST_TEST_THREADS="${NEXTEST_TEST_THREADS:-$(($(nproc) * 2))}"

# --- 4a. The quick lane: every unit test, the config cases, and one scenario per peer ----------
# Only the test binaries it runs are built (all but the fault suite's).
if [ "$QUICK" -eq 1 ]; then
    ONE_PER_PEER='kind(lib) | kind(bin) | (binary(cell) & test(/^config_check::/))
        | (binary(mqtt) & test(=backbone::parts_counted_end_to_end_equal_the_plc_across_counter_rollover))
        | (binary(ops) & test(=ops_health::the_status_topic_and_the_last_will_on_rabbitmq))
        | (binary(plc) & test(=modbus_rtu::parts_and_states_over_a_serial_line_end_to_end))
        | (binary(opcua) & test(=opcua_cell::a_subscribed_counter_node_counts_parts_exactly_end_to_end))
        | (binary(plc) & test(=s7::every_type_and_area_reads_as_the_plc_holds_it))
        | (binary(sparkplug) & test(=sparkplug::births_name_alias_and_type_every_metric_and_data_follows_the_plc_in_seq))
        | (binary(ops) & test(=status_page::the_page_shows_what_mom_received_follows_the_press_and_sees_a_device_go))'
    if cargo nextest --version >/dev/null 2>&1; then
        exec cargo nextest run --workspace --locked --no-fail-fast --lib --bins \
            --test cell --test mqtt --test ops --test plc --test opcua --test sparkplug \
            -E "$ONE_PER_PEER" "$@"
    fi
    log "--quick needs cargo-nextest (its filter picks one scenario per peer): cargo install cargo-nextest"
    exit 2
fi

# --- 4. Build once, then run the suite ---------------------------------------------------------
# The fuzz targets' optimised build (fuzz/run.sh) starts now at the lowest priority: it takes the
# cores the debug build leaves idle while it links, and those the tests leave idle while they
# wait on their peers (the tests use about 0.7 of a core on average), instead of a phase of its
# own after them. MES_EDGE_FUZZ_SECONDS=0 skips it.
FUZZ_BUILD_PID=""
FUZZ_BUILD_LOG="$ROOT/target/fuzz-build.log"
if [ $# -eq 0 ] && [ "${MES_EDGE_FUZZ_SECONDS:-20}" != "0" ]; then
    mkdir -p "$ROOT/target"
    # A process group of its own, so that a run stopped early (a failed debug build) ends it
    # with its cargo and rustc rather than leaving them to build on.
    setsid nice -n 19 bash "$ROOT/fuzz/run.sh" --build-only >"$FUZZ_BUILD_LOG" 2>&1 &
    FUZZ_BUILD_PID=$!
    trap 'kill -- "-$FUZZ_BUILD_PID" 2>/dev/null || true' EXIT
    log "building the fuzz targets beside the suite at nice 19 (log: $FUZZ_BUILD_LOG)"
fi
cargo build --workspace --all-targets --locked
phase_done "debug build"

# --- 5. The systemd unit and the .deb (scripts/ops-checks.sh), with the full suite only --------
# systemd-analyze (package systemd; no running systemd needed) and dpkg-shlibdeps (dpkg-dev).
OPS_STATUS=0
if [ $# -eq 0 ]; then
    if ! command -v systemd-analyze >/dev/null 2>&1; then
        log "installing systemd (for systemd-analyze)"
        apt_install systemd
    fi
    if ! command -v dpkg-shlibdeps >/dev/null 2>&1; then
        log "installing dpkg-dev (for dpkg-shlibdeps)"
        apt_install dpkg-dev
    fi
    bash "$ROOT/scripts/ops-checks.sh" || OPS_STATUS=$?
else
    log "extra arguments given: skipping scripts/ops-checks.sh (the unit and the .deb)"
fi
phase_done "ops-checks"

TEST_STATUS=0
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast "$@" || TEST_STATUS=$?
else
    cargo test --workspace --locked --no-fail-fast "$@" || TEST_STATUS=$?
fi
phase_done "tests"

# --- 6. A bounded fuzz run of every parser taking outside bytes (fuzz/run.sh), full suite only --
# MES_EDGE_FUZZ_SECONDS per target (default 20; 0 skips), once their build above has ended.
FUZZ_STATUS=0
if [ -n "$FUZZ_BUILD_PID" ]; then
    FUZZ_BUILD_STATUS=0
    wait "$FUZZ_BUILD_PID" || FUZZ_BUILD_STATUS=$?
    trap - EXIT
    if [ "$FUZZ_BUILD_STATUS" -eq 0 ]; then
        phase_done "the fuzz build's rest after the tests"
        bash "$ROOT/fuzz/run.sh" --no-build "${MES_EDGE_FUZZ_SECONDS:-20}" || FUZZ_STATUS=$?
    else
        FUZZ_STATUS=1
        tail -n 40 "$FUZZ_BUILD_LOG" >&2
        log "the fuzz targets' build failed (log: $FUZZ_BUILD_LOG)"
    fi
    phase_done "fuzzing"
fi
phases
# Every RabbitMQ node the tests started leaves Erlang's port mapper daemon behind: end it, so
# that nothing of the run outlives it.
if command -v epmd >/dev/null 2>&1; then
    epmd -kill >/dev/null 2>&1 || true
fi
if [ "$OPS_STATUS" -ne 0 ]; then
    log "scripts/ops-checks.sh failed: see its FAIL lines above"
    exit "$OPS_STATUS"
fi
if [ "$FUZZ_STATUS" -ne 0 ]; then
    log "fuzz/run.sh failed (a crash: see fuzz/artifacts/; or its build)"
    exit "$FUZZ_STATUS"
fi
exit "$TEST_STATUS"
