"""The Python poller of bench scenario S9: the script an integrator would write to bring Siemens
S7 values to MQTT, as python_poller.py is for Modbus in S2. One thread per CPU reads its DB every
poll interval with python-snap7's client (Client.db_read, which splits a read the agreed PDU
cannot carry into several requests), decodes the tags with snap7.util, and publishes each change
with paho-mqtt at QoS 1 as {"tag": name, "value": v, "ts": unix_ms} to <topic_root>/<device>/<tag>.

    s7_poller.py SPEC.json      (written by mes-edge-bench; see bench/src/s9_rig.rs)

SPEC: {"devices": [{"name", "port", "db", "size", "tags": [[name, offset, kind]]}], "poll_ms",
"mqtt_port", "topic_root"}, kind word, dword or real.
"""

import json
import sys
import threading
import time

import paho.mqtt.client as mqtt
from snap7 import util
from snap7.client import Client

GETTERS = {"word": util.get_word, "dword": util.get_dword, "real": util.get_real}


def poll_device(dev, period, root, mqttc):
    client = Client()
    last = {}
    next_t = time.monotonic()
    while True:
        try:
            if not client.get_connected():
                client.connect("127.0.0.1", 0, 1, dev["port"])
            data = client.db_read(dev["db"], 0, dev["size"])
            now_ms = int(time.time() * 1000)
            for name, off, kind in dev["tags"]:
                v = GETTERS[kind](data, off)
                if last.get(name) != v:
                    last[name] = v
                    payload = json.dumps({"tag": name, "value": v, "ts": now_ms})
                    mqttc.publish(f"{root}/{dev['name']}/{name}", payload, qos=1)
        except Exception as e:  # a CPU that fails is connected again at the next poll
            print(f"{dev['name']}: {e}", file=sys.stderr)
            client.disconnect()
        next_t += period
        delay = next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_t = time.monotonic()


def main():
    spec = json.load(open(sys.argv[1]))
    mqttc = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-s7-python-poller")
    mqttc.connect("127.0.0.1", spec["mqtt_port"])
    mqttc.loop_start()
    period = spec["poll_ms"] / 1000.0
    threads = [
        threading.Thread(target=poll_device, args=(d, period, spec["topic_root"], mqttc), daemon=True)
        for d in spec["devices"]
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
