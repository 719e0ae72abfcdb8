"""The OPC UA load server of bench S4: two UInt32 counters (ns=urn:mes-edge:bench;s=Bench.Good
and s=Bench.Scrap) that each step by one at a random moment every 150-350 ms, independently.
Prints `READY <port>` once listening and `CHANGE 0 <tag> <value> <unix_ns>` after each write,
the moment the new value is in the server's address space.

    opcua_load.py PORT      (asyncua, pinned in bench/peers/requirements.txt)
"""

import asyncio
import logging
import random
import sys
import time

from asyncua import Server, ua


async def step(node, tag, seed):
    rng = random.Random(seed)
    value = 100000
    while True:
        await asyncio.sleep(rng.uniform(0.150, 0.350))
        value += 1
        await node.write_value(ua.Variant(value, ua.VariantType.UInt32))
        print(f"CHANGE 0 {tag} {value} {time.time_ns()}", flush=True)


async def main():
    logging.basicConfig(level=logging.ERROR)
    port = int(sys.argv[1])
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    idx = await server.register_namespace("urn:mes-edge:bench")
    bench = await server.nodes.objects.add_object(idx, "Bench")
    good = await bench.add_variable(ua.NodeId("Bench.Good", idx), "Good", ua.Variant(100000, ua.VariantType.UInt32))
    scrap = await bench.add_variable(ua.NodeId("Bench.Scrap", idx), "Scrap", ua.Variant(100000, ua.VariantType.UInt32))
    async with server:
        print(f"READY {port}", flush=True)
        await asyncio.gather(step(good, 0, 1), step(scrap, 1, 2))


if __name__ == "__main__":
    asyncio.run(main())
