#!/usr/bin/env python3
"""Independent Siemens S7 PLC for mes-edge integration tests: python-snap7's pure-Python server.

Written against python-snap7==3.3.0 (pinned in tests/peers/requirements.txt).

Usage:
    s7_server.py --port 10102 [--press-ms 50] [--no-db 99]

Once the server listens, prints exactly one line ``READY <port>`` and flushes. Exits 0 on
SIGTERM or SIGINT. A restart starts from the values below again (a PLC cold start).

Memory (every value encoded by snap7.util's setters, the peer's own encoders):

    DB1 (64 bytes), the press:
        DBD0   DINT  good parts, +1 every --press-ms while the press runs (starts at 0)
        DBW4   INT   machine state (1 = running)
        DBD6   DINT  scrap parts
    DB10 (64 bytes), one value of every type:
        DBX0.0..0.7 byte 0 = 0b1010_0101 (X0.0 true, X0.1 false, X0.2 true, X0.5 true, X0.7 true)
        DBB1   BYTE  200
        DBW2   WORD  0xBEEF (48879)
        DBD4   DWORD 0xDEADBEEF (3735928559)
        DBW8   INT   -1234
        DBD10  DINT  -123456789
        DBD14  REAL  21.5
        DBB18  LREAL -1234.5678
        DBB26  STRING[10] 'PART-42'
        DBB38  DATE_AND_TIME 2026-03-01 06:07:08.123
        DBW46  INT   100 (a setpoint tests write)
        DBB48  DTL   2026-03-01 06:07:08.123456 (util.set_dtl: microseconds, as a datetime holds)
    DB20 (1024 bytes), many tags: DBD(4k) DINT 1000 * k + 7, for k = 0..255
    M  (32 bytes): M0.1 true, MB1 9, MD4 77, MW20 4242
    I  (16 bytes): I0.1 true, IW2 555
    Q  (16 bytes): Q0.0 true, QB3 0x5A (90)

No other DB exists: a read of one is refused with item return code 0x0A, a read past the end
of an area with 0x05, as a CPU does.

stdin commands (one per line), each answered on stdout:
    press on|off                      -> OK press on|off <count>
    set <AREA> <db> <type> <byte> <value>
        AREA is DB, M, I or Q (db 0 for M, I, Q); type is int, dint, word, real, or dtl
        (an ISO date and time, 2026-03-01T06:07:08.123456)                      -> OK set
    get <AREA> <db> <type> <byte>     -> GOT <AREA> <db> <type> <byte> <value>

stdout reports what clients did: ``WRITE <AREA> <db> <start> <hex bytes now stored>`` after every
write a client makes (the peer's own record of what landed in its memory).
"""

from __future__ import annotations

import argparse
import datetime
import logging
import signal
import sys
import threading
import time

from snap7.server import EVC_DATA_WRITE, Server
from snap7.type import SrvArea
from snap7 import util

AREAS = {"DB": SrvArea.DB, "M": SrvArea.MK, "I": SrvArea.PE, "Q": SrvArea.PA}
NAMES = {int(v): k for k, v in AREAS.items()}

out_lock = threading.Lock()


def say(line: str) -> None:
    with out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def memory() -> dict:
    db1 = bytearray(64)
    util.set_int(db1, 4, 1)
    db10 = bytearray(64)
    db10[0] = 0b1010_0101
    util.set_byte(db10, 1, 200)
    util.set_word(db10, 2, 0xBEEF)
    util.set_dword(db10, 4, 0xDEADBEEF)
    util.set_int(db10, 8, -1234)
    util.set_dint(db10, 10, -123456789)
    util.set_real(db10, 14, 21.5)
    util.set_lreal(db10, 18, -1234.5678)
    util.set_string(db10, 26, "PART-42", 10)
    util.set_dt(db10, 38, datetime.datetime(2026, 3, 1, 6, 7, 8, 123000))
    util.set_int(db10, 46, 100)
    util.set_dtl(db10, 48, datetime.datetime(2026, 3, 1, 6, 7, 8, 123456))
    m = bytearray(32)
    util.set_bool(m, 0, 1, True)
    util.set_byte(m, 1, 9)
    util.set_dint(m, 4, 77)
    util.set_word(m, 20, 4242)
    i = bytearray(16)
    util.set_bool(i, 0, 1, True)
    util.set_word(i, 2, 555)
    q = bytearray(16)
    util.set_bool(q, 0, 0, True)
    util.set_byte(q, 3, 0x5A)
    db20 = bytearray(1024)
    for k in range(256):
        util.set_dint(db20, 4 * k, 1000 * k + 7)
    return {("DB", 1): db1, ("DB", 10): db10, ("DB", 20): db20, ("M", 0): m, ("I", 0): i, ("Q", 0): q}


SETTERS = {"int": util.set_int, "dint": util.set_dint, "word": util.set_word, "real": util.set_real, "dtl": util.set_dtl}
GETTERS = {"int": util.get_int, "dint": util.get_dint, "word": util.get_word, "real": util.get_real, "dtl": util.get_dtl}
PARSERS = {"real": float, "dtl": datetime.datetime.fromisoformat}


def shown(value) -> str:
    # One word per answer: a datetime as ISO with its microseconds.
    return value.isoformat(timespec="microseconds") if isinstance(value, datetime.datetime) else str(value)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--press-ms", type=int, default=0, help="count a good part every N ms (0: press off)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    mem = memory()
    server = Server(log=False)
    for (area, index), data in mem.items():
        server.register_area(AREAS[area], index, data)
    locks = server.area_locks

    def lock_of(area: str, index: int):
        return locks[(server_area(area), index)]

    def server_area(area: str):
        return next(k[0] for k in locks if int(Server._event_area(k[0])) == int(AREAS[area]))

    def on_event(evt) -> None:
        if evt.EvtCode != EVC_DATA_WRITE:
            return
        area = NAMES.get(int(evt.EvtParam1), "?")
        index = int(evt.EvtParam2) if area == "DB" else 0
        start, length = int(evt.EvtParam3), int(evt.EvtParam4)
        data = mem.get((area, index))
        if data is not None:
            say(f"WRITE {area} {index} {start} {bytes(data[start:start + length]).hex()}")

    server.set_events_callback(on_event)
    server.host = args.host
    try:
        server.start(tcp_port=args.port)
    except Exception as e:  # noqa: BLE001 -- the harness reads the reason from stderr
        print(f"cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 2

    press_on = threading.Event()
    if args.press_ms > 0:
        press_on.set()
    stopping = threading.Event()

    def press() -> None:
        while not stopping.is_set():
            time.sleep(max(args.press_ms, 1) / 1000)
            if press_on.is_set():
                with lock_of("DB", 1):
                    util.set_dint(mem[("DB", 1)], 0, util.get_dint(mem[("DB", 1)], 0) + 1)

    threading.Thread(target=press, daemon=True).start()

    def stop(*_):
        stopping.set()
        server.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    say(f"READY {args.port}")

    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        try:
            if parts[0] == "press" and len(parts) == 2:
                (press_on.set if parts[1] == "on" else press_on.clear)()
                with lock_of("DB", 1):
                    count = util.get_dint(mem[("DB", 1)], 0)
                say(f"OK press {parts[1]} {count}")
            elif parts[0] == "set" and len(parts) == 6:
                area, index, ty, byte, value = parts[1], int(parts[2]), parts[3], int(parts[4]), parts[5]
                with lock_of(area, index):
                    SETTERS[ty](mem[(area, index)], byte, PARSERS.get(ty, int)(value))
                say("OK set")
            elif parts[0] == "get" and len(parts) == 5:
                area, index, ty, byte = parts[1], int(parts[2]), parts[3], int(parts[4])
                with lock_of(area, index):
                    value = GETTERS[ty](mem[(area, index)], byte)
                say(f"GOT {area} {index} {ty} {byte} {shown(value)}")
            else:
                say(f"ERR unknown command {line.strip()!r}")
        except Exception as e:  # noqa: BLE001 -- a bad command must not stop the PLC
            say(f"ERR {e}")
    # stdin closed: keep serving until a signal.
    stopping.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
