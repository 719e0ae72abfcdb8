"""The Python poller of the benchmark: the script an integrator would write to bring PLC values
to MQTT. One asyncio task per device polls its register blocks every poll interval with
pymodbus, decodes the tags, and publishes each change with paho-mqtt at QoS 1 as
{"tag": name, "value": v, "ts": unix_ms} to <topic_root>/<device>/<tag>.

    python_poller.py SPEC.json      (written by mes-edge-bench; see bench/src/workload.rs)
"""

import asyncio
import json
import struct
import sys
import time

import paho.mqtt.client as mqtt
from pymodbus.client import AsyncModbusTcpClient


def decode(regs, off, kind):
    if kind == "u16":
        return regs[off]
    if kind == "u32":
        return (regs[off] << 16) | regs[off + 1]
    return struct.unpack(">f", struct.pack(">HH", regs[off], regs[off + 1]))[0]


async def poll_device(dev, period, root, mqttc):
    client = AsyncModbusTcpClient("127.0.0.1", port=dev["port"], timeout=1)
    last = {}
    next_t = time.monotonic()
    while True:
        if not client.connected:
            await client.connect()
        try:
            for b in dev["blocks"]:
                rr = await client.read_holding_registers(b["addr"], count=b["count"], device_id=1)
                if rr.isError():
                    continue
                regs = rr.registers
                now_ms = int(time.time() * 1000)
                for name, off, kind in b["tags"]:
                    v = decode(regs, off, kind)
                    if last.get(name) != v:
                        last[name] = v
                        payload = json.dumps({"tag": name, "value": v, "ts": now_ms})
                        mqttc.publish(f"{root}/{dev['name']}/{name}", payload, qos=1)
        except Exception as e:  # a device that fails is retried at the next poll
            print(f"{dev['name']}: {e}", file=sys.stderr)
        next_t += period
        delay = next_t - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            next_t = time.monotonic()


async def main():
    spec = json.load(open(sys.argv[1]))
    mqttc = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-python-poller")
    mqttc.connect("127.0.0.1", spec["mqtt_port"])
    mqttc.loop_start()
    period = spec["poll_ms"] / 1000.0
    await asyncio.gather(
        *(poll_device(d, period, spec["topic_root"], mqttc) for d in spec["devices"])
    )


if __name__ == "__main__":
    asyncio.run(main())
