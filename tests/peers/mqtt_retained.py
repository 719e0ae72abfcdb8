"""Prints the retained message of one topic, as an MQTT 5 subscriber (paho-mqtt) reads it:
{"payload": str, "user_properties": {name: value}}; exits 1 if none arrives within 5 s.

Usage: mqtt_retained.py PORT TOPIC
"""
import json
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes  # noqa: F401 (properties come with the message)

port, topic = int(sys.argv[1]), sys.argv[2]
got = threading.Event()
result = {}


def on_connect(client, userdata, flags, reason, properties=None):
    client.subscribe(topic, qos=1)


def on_message(client, userdata, msg):
    if not msg.retain or got.is_set():
        return
    props = getattr(msg.properties, "UserProperty", None) or []
    result["payload"] = msg.payload.decode("utf-8", "replace")
    result["user_properties"] = dict(props)
    got.set()


client = mqtt.Client(protocol=mqtt.MQTTv5)
client.on_connect = on_connect
client.on_message = on_message
client.connect("127.0.0.1", port)
client.loop_start()
ok = got.wait(5)
client.loop_stop()
client.disconnect()
if not ok:
    print(f"no retained message on {topic} within 5 s", file=sys.stderr)
    sys.exit(1)
print(json.dumps(result))
