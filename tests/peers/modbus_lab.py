#!/usr/bin/env python3
"""Independent Modbus peers for the mes-edge Modbus tests, built on pymodbus (pinned in
tests/peers/requirements.txt; written against pymodbus==3.11.4 and pyserial==3.5).

    modbus_lab.py serve [--tcp PORT] [--rtu-tcp PORT] [--serial PATH --baud N --parity E
                        --stopbits 1] [--unit-ids 1,2] [--init FILE.json] [--delay-ms N]
                        [--count-reads-at ADDR]
    modbus_lab.py garbage --port PORT
    modbus_lab.py decode --port PORT [--unit N] --spec JSON

serve: one set of tables per unit id (the layout and init format of modbus_server.py: input
registers mirror holding registers, discrete inputs mirror coils), served at once on any of
    --tcp       Modbus TCP (what tests use to play the PLC program),
    --rtu-tcp   RTU frames over TCP (a transparent serial gateway),
    --serial    RTU on a serial port (e.g. one end of a socat pty pair).
On the RTU transports a request to an unknown unit id gets no answer, as on a real bus.
Extra init keys:
    "typed":   [{"address": 100, "type": "f32", "order": "CDAB", "value": 3.14}, ...]
               values encoded by pymodbus's own ModbusClientMixin.convert_to_registers
               (types u16 i16 u32 i32 u64 i64 f32 f64 string; word order "little" for
               CDAB/DCBA, then the bytes of each register swapped for BADC/DCBA),
               written to the holding registers of every unit;
    "missing": [5, 6]  holding/input addresses that do not exist: a request touching one
               gets exception 0x02 (illegal data address).
--delay-ms answers every request that late (a slow PLC). --count-reads-at ADDR makes holding
register ADDR count the register reads served (so a test can see the poll rate).
Prints "READY" once every listener is up; exits 0 on SIGTERM.

garbage: a TCP server that answers every request with something that is not a correct reply,
cycling through: random bytes, a reply with fewer registers than asked, a reply cut short
inside its data, a reply to another transaction, nothing at all (the connection is closed).
Prints "READY <port>".

decode: reads holding registers over Modbus TCP with pymodbus's client and decodes them with
ModbusClientMixin.convert_from_registers; --spec is a JSON list of {"address", "type",
"order"[, "length"]} (or {"address", "coil": true}); prints one JSON list of values.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import signal
import struct
import sys

from pymodbus.client import ModbusTcpClient
from pymodbus.client.mixin import ModbusClientMixin
from pymodbus.constants import ExcCodes
from pymodbus.datastore import (
    ModbusDeviceContext,
    ModbusSequentialDataBlock,
    ModbusServerContext,
)
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer

SIZE = 10000
DT = ModbusClientMixin.DATATYPE
TYPES = {
    "u16": DT.UINT16,
    "i16": DT.INT16,
    "u32": DT.UINT32,
    "i32": DT.INT32,
    "u64": DT.UINT64,
    "i64": DT.INT64,
    "f32": DT.FLOAT32,
    "f64": DT.FLOAT64,
    "string": DT.STRING,
}


def swap_bytes(regs: list[int]) -> list[int]:
    return [((r & 0xFF) << 8) | (r >> 8) for r in regs]


def encode(value, type_name: str, order: str, length: int | None = None) -> list[int]:
    """Registers for `value`, laid out by pymodbus's own helper."""
    regs = ModbusClientMixin.convert_to_registers(
        value, TYPES[type_name], word_order="little" if order in ("CDAB", "DCBA") else "big"
    )
    if type_name == "string" and length is not None:
        # A string field is padded with NULs to its length; the padding goes where the word
        # order puts the end of the text.
        pad = [0] * (length - len(regs))
        regs = pad + regs if order in ("CDAB", "DCBA") else regs + pad
    if order in ("BADC", "DCBA"):
        regs = swap_bytes(regs)
    return regs


def decode(regs: list[int], type_name: str, order: str):
    if order in ("BADC", "DCBA"):
        regs = swap_bytes(regs)
    return ModbusClientMixin.convert_from_registers(
        list(regs), TYPES[type_name], word_order="little" if order in ("CDAB", "DCBA") else "big"
    )


class Lab:
    def __init__(self, args):
        self.delay = (args.delay_ms or 0) / 1000.0
        self.count_at = args.count_reads_at
        self.missing: set[int] = set()
        self.reads = 0


class LabDevice(ModbusDeviceContext):
    """A unit whose requests can be slowed down, refused or counted."""

    def __init__(self, lab: Lab):
        registers = ModbusSequentialDataBlock(1, [0] * SIZE)
        bits = ModbusSequentialDataBlock(1, [False] * SIZE)
        super().__init__(hr=registers, ir=registers, co=bits, di=bits)
        self.lab = lab

    def _refused(self, fc: int, address: int, count: int) -> bool:
        return fc in (3, 4, 6, 16, 22, 23) and any(
            a in self.lab.missing for a in range(address, address + count)
        )

    async def async_getValues(self, func_code, address, count=1):
        if self.lab.delay:
            await asyncio.sleep(self.lab.delay)
        if self._refused(func_code, address, count):
            return ExcCodes.ILLEGAL_ADDRESS
        if self.lab.count_at is not None and func_code in (3, 4):
            self.lab.reads += 1
            self.setValues(3, self.lab.count_at, [self.lab.reads % 65536])
        return self.getValues(func_code, address, count)

    async def async_setValues(self, func_code, address, values):
        if self.lab.delay:
            await asyncio.sleep(self.lab.delay)
        if self._refused(func_code, address, len(values)):
            return ExcCodes.ILLEGAL_ADDRESS
        return self.setValues(func_code, address, values)


def apply_init(ctx: ModbusDeviceContext, spec: dict) -> None:
    for key, value in spec.get("holding", {}).items():
        values = value if isinstance(value, list) else [value]
        if ctx.setValues(3, int(key), values) is not None:
            raise ValueError(f"init: cannot write holding {key}")
    for key, value in spec.get("coils", {}).items():
        values = value if isinstance(value, list) else [value]
        if ctx.setValues(1, int(key), [bool(v) for v in values]) is not None:
            raise ValueError(f"init: cannot write coils {key}")
    for item in spec.get("typed", []):
        regs = encode(item["value"], item["type"], item.get("order", "ABCD"), item.get("length"))
        if ctx.setValues(3, int(item["address"]), regs) is not None:
            raise ValueError(f"init: cannot write {item}")


async def serve(args) -> int:
    lab = Lab(args)
    units = {uid: LabDevice(lab) for uid in args.unit_ids}
    if args.init:
        with open(args.init, encoding="utf-8") as fh:
            spec = json.load(fh)
        lab.missing = {int(a) for a in spec.get("missing", [])}
        for ctx in units.values():
            apply_init(ctx, spec)
        for uid_text, unit_spec in spec.get("units", {}).items():
            apply_init(units[int(uid_text)], unit_spec)
    context = ModbusServerContext(devices=units, single=False)
    servers = []
    if args.tcp:
        servers.append(ModbusTcpServer(context, address=("127.0.0.1", args.tcp)))
    if args.rtu_tcp:
        servers.append(
            ModbusTcpServer(
                context,
                framer=FramerType.RTU,
                address=("127.0.0.1", args.rtu_tcp),
                ignore_missing_devices=True,
            )
        )
    if args.serial:
        servers.append(
            ModbusSerialServer(
                context,
                framer=FramerType.RTU,
                port=args.serial,
                baudrate=args.baud,
                parity=args.parity,
                stopbits=args.stopbits,
                bytesize=8,
                ignore_missing_devices=True,
            )
        )
    if not servers:
        raise ValueError("serve: give at least one of --tcp, --rtu-tcp, --serial")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    for server in servers:
        await server.serve_forever(background=True)
    print("READY", flush=True)
    await stop.wait()
    for server in servers:
        await server.shutdown()
    return 0


async def garbage(args) -> int:
    rng = random.Random(5)
    served = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        try:
            while True:
                header = await reader.readexactly(7)
                tid, _proto, length, unit = struct.unpack(">HHHB", header)
                pdu = await reader.readexactly(length - 1)
                fc = pdu[0]
                count = struct.unpack(">H", pdu[3:5])[0] if len(pdu) >= 5 else 1
                kind = served[0] % 5
                served[0] += 1
                if kind == 0:
                    reply = bytes(rng.randrange(256) for _ in range(rng.randrange(3, 40)))
                elif kind == 1:
                    # Well formed, but fewer registers than asked.
                    n = max(count - 1, 0)
                    body = bytes([fc, 2 * n]) + b"\x00\x07" * n
                    reply = struct.pack(">HHHB", tid, 0, len(body) + 1, unit) + body
                elif kind == 2:
                    # The byte count promises more than the frame holds.
                    body = bytes([fc, 2 * count + 10]) + b"\x00\x01"
                    reply = struct.pack(">HHHB", tid, 0, len(body) + 1, unit) + body
                elif kind == 3:
                    body = bytes([fc, 2 * count]) + b"\x00\x02" * count
                    reply = struct.pack(">HHHB", (tid + 1) & 0xFFFF, 0, len(body) + 1, unit) + body
                else:
                    writer.close()
                    return
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {args.port}", flush=True)
    await stop.wait()
    server.close()
    return 0


def decode_cmd(args) -> int:
    client = ModbusTcpClient("127.0.0.1", port=args.port, timeout=3)
    if not client.connect():
        print("decode: cannot connect", file=sys.stderr)
        return 1
    out = []
    for item in json.loads(args.spec):
        address = int(item["address"])
        if item.get("coil"):
            rr = client.read_coils(address, count=1, device_id=args.unit)
            if rr.isError():
                raise RuntimeError(f"read coil {address}: {rr}")
            out.append(bool(rr.bits[0]))
            continue
        t = item["type"]
        n = int(item["length"]) if t == "string" else TYPES[t].value[1]
        rr = client.read_holding_registers(address, count=n, device_id=args.unit)
        if rr.isError():
            raise RuntimeError(f"read {address}+{n}: {rr}")
        out.append(decode(rr.registers, t, item.get("order", "ABCD")))
    client.close()
    print(json.dumps(out))
    return 0


def parse_unit_ids(text: str) -> list[int]:
    return [int(p) for p in text.split(",") if p.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description="Modbus peers for mes-edge tests")
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--tcp", type=int)
    s.add_argument("--rtu-tcp", type=int)
    s.add_argument("--serial")
    s.add_argument("--baud", type=int, default=19200)
    s.add_argument("--parity", default="E")
    s.add_argument("--stopbits", type=int, default=1)
    s.add_argument("--unit-ids", type=parse_unit_ids, default=[1])
    s.add_argument("--init")
    s.add_argument("--delay-ms", type=int)
    s.add_argument("--count-reads-at", type=int)
    g = sub.add_parser("garbage")
    g.add_argument("--port", type=int, required=True)
    d = sub.add_parser("decode")
    d.add_argument("--port", type=int, required=True)
    d.add_argument("--unit", type=int, default=1)
    d.add_argument("--spec", required=True)
    args = parser.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    try:
        if args.cmd == "serve":
            return asyncio.run(serve(args))
        if args.cmd == "garbage":
            return asyncio.run(garbage(args))
        return decode_cmd(args)
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"modbus_lab: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
