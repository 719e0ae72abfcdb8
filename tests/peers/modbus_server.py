#!/usr/bin/env python3
"""Independent Modbus TCP server ("the PLC") for mes-edge integration tests.

Written against pymodbus==3.11.4 (pinned in tests/peers/requirements.txt); the
datastore API differs in other versions.

Usage:
    modbus_server.py --host 127.0.0.1 --port 15020 [--unit-ids 1,2] [--init FILE.json]
                     [--write-log FILE.jsonl] [--verbose]

--write-log appends one JSON line per write a client makes, as the server stored it:
{"t_ms": wall clock ms, "table": "registers" | "bits", "address": protocol address,
 "values": [...]}. What the PLC received, and when, is then the peer's own record.

Once the socket listens, prints exactly one line ``READY <port>`` to stdout and
flushes. Exits 0 on SIGTERM or SIGINT. Exits non-zero (without READY) if it
cannot listen (e.g. port in use) or the arguments / init file are invalid.

Tables (one independent set per unit id; every address is a 0-based Modbus
*protocol* address, i.e. the address that goes on the wire):

    holding registers  0..9999   (FC 3 read, FC 6 / FC 16 write)
    input registers    0..9999   (FC 4 read)  -- MIRROR of the holding registers
    coils              0..9999   (FC 1 read, FC 5 / FC 15 write)
    discrete inputs    0..9999   (FC 2 read)  -- MIRROR of the coils

"Mirror" means the same underlying storage: writing holding register 10 (FC 6)
makes input register 10 (FC 4) read the same value, and writing coil 3 (FC 5)
makes discrete input 3 (FC 2) read the same value. Tests use this to set input
registers and discrete inputs, which Modbus itself cannot write.

Everything is zero / false at start, unless ``--init FILE.json`` gives values.
A restart of the process resets every table (that is how tests simulate a PLC
restart).

Init file format (JSON):

    {
      "holding": {"10": 7, "100": [1, 2, 3]},
      "coils":   {"0": true, "5": [1, 0, 1]},
      "units":   {"2": {"holding": {"0": 42}}}
    }

- ``holding``: protocol address (string key) -> a value 0..65535, or a list of
  values written to consecutive addresses starting there. Also seen on the
  input-register mirror.
- ``coils``: protocol address -> a bool (or 0/1), or a list of them. Also seen
  on the discrete-input mirror.
- Top-level ``holding`` / ``coils`` apply to every unit id; ``units`` (optional)
  maps a unit id to its own ``holding`` / ``coils``, applied afterwards.

Unit ids: ``--unit-ids 1`` (default) or a comma list ``--unit-ids 1,2,7``.
Requests to any other unit id get a Modbus exception (gateway no response).

pymodbus note: ModbusDeviceContext adds 1 to every protocol address before it
indexes a data block (a historical quirk), so the data blocks here start at
block address 1; protocol address N is block address N + 1. Values from the init
file are written through the same context path, so they land on the protocol
addresses stated in the file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time

from pymodbus.datastore import (
    ModbusDeviceContext,
    ModbusSequentialDataBlock,
    ModbusServerContext,
)
from pymodbus.server import ModbusTcpServer

SIZE = 10000  # protocol addresses 0..9999 in every table

# Function codes used with ModbusDeviceContext.setValues: 3 -> holding ("h"), 1 -> coils ("c").
FC_HOLDING = 3
FC_COILS = 1


class LoggedBlock(ModbusSequentialDataBlock):
    """A data block that records every write made once the server is up (WRITE_LOG)."""

    def __init__(self, address, values, table):
        super().__init__(address, values)
        self.table = table

    def setValues(self, address, values):
        result = super().setValues(address, values)
        if WRITE_LOG is not None:
            values = values if isinstance(values, list) else [values]
            line = {"t_ms": time.time() * 1000, "table": self.table,
                    "address": address - 1, "values": [int(v) for v in values]}
            WRITE_LOG.write(json.dumps(line) + "\n")
            WRITE_LOG.flush()
        return result


WRITE_LOG = None


def make_unit_context() -> ModbusDeviceContext:
    # ModbusDeviceContext.getValues/setValues do `address += 1` before touching the
    # block, so a block starting at address 1 covers protocol addresses 0..SIZE-1.
    registers = LoggedBlock(1, [0] * SIZE, "registers")
    bits = LoggedBlock(1, [False] * SIZE, "bits")
    # Shared blocks: input registers mirror holding registers, discrete inputs mirror coils.
    return ModbusDeviceContext(hr=registers, ir=registers, co=bits, di=bits)


def _expand(table: dict, kind: str) -> list[tuple[int, list]]:
    out = []
    if not isinstance(table, dict):
        raise ValueError(f"init: '{kind}' must be an object of address -> value(s)")
    for key, value in table.items():
        addr = int(key)
        values = value if isinstance(value, list) else [value]
        if kind == "holding":
            for v in values:
                if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 0xFFFF:
                    raise ValueError(f"init: holding[{key}] value {v!r} is not a u16")
        else:
            if not all(isinstance(v, bool) or v in (0, 1) for v in values):
                raise ValueError(f"init: coils[{key}] values {values!r} must be bools or 0/1")
            values = [bool(v) for v in values]
        if addr < 0 or addr + len(values) > SIZE:
            raise ValueError(f"init: {kind}[{key}] (+{len(values)}) is outside 0..{SIZE - 1}")
        out.append((addr, values))
    return out


def apply_init(ctx: ModbusDeviceContext, spec: dict) -> None:
    for addr, values in _expand(spec.get("holding", {}), "holding"):
        if ctx.setValues(FC_HOLDING, addr, values) is not None:
            raise ValueError(f"init: cannot write holding {addr}")
    for addr, values in _expand(spec.get("coils", {}), "coils"):
        if ctx.setValues(FC_COILS, addr, values) is not None:
            raise ValueError(f"init: cannot write coils {addr}")


def parse_unit_ids(text: str) -> list[int]:
    ids = [int(part) for part in text.split(",") if part.strip()]
    if not ids or any(not 0 <= i <= 247 for i in ids):
        raise argparse.ArgumentTypeError(f"bad unit id list: {text!r}")
    return ids


async def serve(args: argparse.Namespace) -> int:
    units = {uid: make_unit_context() for uid in args.unit_ids}
    if args.init:
        with open(args.init, encoding="utf-8") as fh:
            spec = json.load(fh)
        for ctx in units.values():
            apply_init(ctx, spec)
        for uid_text, unit_spec in spec.get("units", {}).items():
            uid = int(uid_text)
            if uid not in units:
                raise ValueError(f"init: unit {uid} is not in --unit-ids")
            apply_init(units[uid], unit_spec)

    if args.write_log:
        global WRITE_LOG
        WRITE_LOG = open(args.write_log, "a", encoding="utf-8")
    context = ModbusServerContext(devices=units, single=False)
    server = ModbusTcpServer(context, address=(args.host, args.port))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    # background=True returns once the listening socket is bound (raises if it cannot be).
    await server.serve_forever(background=True)
    sys.stdout.write(f"READY {args.port}\n")
    sys.stdout.flush()

    await stop.wait()
    await server.shutdown()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--write-log", default=None)
    parser.add_argument("--unit-ids", type=parse_unit_ids, default=[1])
    parser.add_argument("--init", help="JSON file with initial values (see module docstring)")
    parser.add_argument("--verbose", action="store_true", help="pymodbus debug log on stderr")
    args = parser.parse_args()

    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.verbose:
        from pymodbus import pymodbus_apply_logging_config

        pymodbus_apply_logging_config(logging.DEBUG)

    try:
        return asyncio.run(serve(args))
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"modbus_server: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
