#!/usr/bin/env python3
"""An independent OPC UA oven controller for mes-edge's counting tests; it keeps the truth.

Written against asyncua==2.1.0 (pinned in tests/peers/requirements.txt).

Usage:
    opcua_oven.py --port 4840 [--good N] [--reject N]

Prints ``READY <port>`` once it listens; exits 0 on SIGTERM or SIGINT.
Endpoint opc.tcp://127.0.0.1:<port>/ (security None, anonymous); namespace URI
``urn:mes-edge:test-oven``, under Objects/Oven:

    GoodCount    s=Oven.GoodCount    UInt32   good parts, wraps at 2^32
    RejectCount  s=Oven.RejectCount  UInt16   rejects, wraps at 65536

The oven shows its resets only with its next part, as a fast machine read slowly does: after a
reset the counters keep showing their old values until a part is made, then jump straight to
1 (or further). Within one ``make`` the good parts come before the rejects.

stdin commands (one per line), each answered on stdout:
    make G R     -> "OK make"      makes G good parts, then R rejects (each one a write)
    reset        -> "OK reset"     the controller resets both counters; nothing shows until the
                                   next part
    restart G R  -> "OK restart <ms>"  the server stops (connections drop), the controller
                                   restarts with its counters at zero, makes G good parts and R
                                   rejects while its server comes up, and a new server starts
                                   showing them, with a new ServerStatus/StartTime (<ms>, UTC ms)
    tally        -> "TALLY <good> <rejects>"   every part made since the oven started: the truth
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from asyncua import Server, ua

NS_URI = "urn:mes-edge:test-oven"


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Oven:
    def __init__(self, port: int, good: int, reject: int) -> None:
        self.port = port
        # What the controller counts, and what its nodes show (they differ after a reset).
        self.count = {"GoodCount": good, "RejectCount": reject}
        self.made = {"GoodCount": 0, "RejectCount": 0}
        self.types = {"GoodCount": ua.VariantType.UInt32, "RejectCount": ua.VariantType.UInt16}
        self.wrap = {"GoodCount": 1 << 32, "RejectCount": 1 << 16}
        self.server: Server | None = None
        self.nodes = {}

    async def serve(self) -> int:
        """A new server showing the current counts; gives its StartTime, UTC ms."""
        server = Server()
        await server.init()
        server.set_endpoint(f"opc.tcp://127.0.0.1:{self.port}/")
        server.set_server_name("mes-edge test oven")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace(NS_URI)
        oven = await server.nodes.objects.add_object(ua.NodeId("Oven", idx), ua.QualifiedName("Oven", idx))
        for name, vtype in self.types.items():
            self.nodes[name] = await oven.add_variable(
                ua.NodeId(f"Oven.{name}", idx),
                ua.QualifiedName(name, idx),
                ua.Variant(self.count[name], vtype),
            )
        await server.start()
        self.server = server
        started = await server.get_node(ua.NodeId(ua.ObjectIds.Server_ServerStatus_StartTime)).read_value()
        return int(started.timestamp() * 1000)

    async def part(self, name: str) -> None:
        self.count[name] = (self.count[name] + 1) % self.wrap[name]
        self.made[name] += 1
        if self.server is not None:
            await self.nodes[name].write_value(ua.Variant(self.count[name], self.types[name]))

    async def make(self, good: int, rejects: int) -> None:
        for _ in range(good):
            await self.part("GoodCount")
        for _ in range(rejects):
            await self.part("RejectCount")

    def reset(self) -> None:
        # The nodes keep showing the old values: the reset shows with the next part.
        for name in self.count:
            self.count[name] = 0

    async def restart(self, good: int, rejects: int) -> int:
        await self.server.stop()
        self.server = None
        self.reset()
        await self.make(good, rejects)
        # Another process could take the port meanwhile only on a busy test machine; retry.
        for attempt in range(50):
            try:
                return await self.serve()
            except OSError:
                await asyncio.sleep(0.2)
        raise RuntimeError("the port stayed taken")


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--good", type=int, default=0)
    ap.add_argument("--reject", type=int, default=0)
    args = ap.parse_args()
    oven = Oven(args.port, args.good, args.reject)
    await oven.serve()

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    say(f"READY {args.port}")

    async def commands():
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = await reader.readline()
            if not line:
                return
            parts = line.decode().split()
            try:
                if parts[:1] == ["make"] and len(parts) == 3:
                    await oven.make(int(parts[1]), int(parts[2]))
                    say("OK make")
                elif parts == ["reset"]:
                    oven.reset()
                    say("OK reset")
                elif parts[:1] == ["restart"] and len(parts) == 3:
                    started = await oven.restart(int(parts[1]), int(parts[2]))
                    say(f"OK restart {started}")
                elif parts == ["tally"]:
                    say(f"TALLY {oven.made['GoodCount']} {oven.made['RejectCount']}")
                elif parts:
                    say(f"ERROR unknown command {line.decode().strip()!r}")
            except Exception as e:  # a test typo must not stop the oven
                say(f"ERROR {e}")

    cmd_task = asyncio.create_task(commands())
    await stop.wait()
    cmd_task.cancel()
    if oven.server is not None:
        await oven.server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
