"""A Sparkplug B host application for the tests, built on pysparkplug (PyPI), not on mes-edge.

Subscribes to spBv1.0/#, decodes every message with pysparkplug (aliases resolved against the
births it saw) and prints one JSON line per message on stdout. Takes commands as JSON lines on
stdin:
  {"cmd": "state", "online": true}       publish its STATE (retained), as a primary host does
                                         ("timestamp": ms to send an old one; "port": p on
                                          that server only)
  {"cmd": "rebirth", "group": g, "node": n}   ("count": k sends k requests at once)
  {"cmd": "dcmd", "group": g, "node": n, "device": d, "name": m, "datatype": "UINT32", "value": v}
                                         ("retain": true to leave it on the broker;
                                          "pad": k for a STRING value of k bytes;
                                          "count": k to send it k times)
  {"cmd": "kick", "client_id": c}        connect as client c and leave: the broker drops the
                                         session that had that id (a broken connection)
With --host-id it announces itself online at start, with an offline STATE as its will.
--port may be given more than once: the host then has a session on each of those MQTT servers
(Sparkplug's multiple MQTT servers, each with its own STATE will and birth), and every line it
prints names the server ("server": port) the message came through.
"""

import argparse
import json
import sys
import threading

import paho.mqtt.client as paho
import pysparkplug as psp


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def on_message(port, message):
    t = message.topic
    p = message.payload
    line = {
        "type": str(t.message_type),
        "group": t.group_id,
        "node": t.edge_node_id,
        "device": t.device_id,
        "host": t.sparkplug_host_id,
        "server": port,
    }
    if isinstance(p, psp.State):
        line.update(online=p.online, timestamp=p.timestamp)
    else:
        line["seq"] = getattr(p, "seq", None)
        line["timestamp"] = p.timestamp
        # NDEATH carries its bdSeq apart; DDEATH carries no metric at all.
        if hasattr(p, "metrics"):
            metrics = p.metrics
        elif hasattr(p, "bd_seq_metric"):
            metrics = (p.bd_seq_metric,)
        else:
            metrics = ()
        line["metrics"] = [
            {
                "name": m.name,
                "alias": m.alias,
                "datatype": m.datatype.name,
                "value": m.value,
                "timestamp": m.timestamp,
                "is_historical": m.is_historical,
                "is_null": m.is_null,
            }
            for m in metrics
        ]
    out(line)


def state_message(host_id, online, timestamp=None):
    if timestamp is None:
        timestamp = psp.get_current_timestamp()
    return psp.Message(
        topic=psp.Topic(message_type=psp.MessageType.STATE, sparkplug_host_id=host_id),
        payload=psp.State(timestamp=timestamp, online=online),
        qos=psp.QoS.AT_LEAST_ONCE,
        retain=True,
    )


def kick(port, client_id):
    """Takes over `client_id` for a moment: the broker closes the connection that held it."""
    done = threading.Event()
    c = paho.Client(client_id=client_id, clean_session=True)
    c.on_connect = lambda *_: done.set()
    c.connect("127.0.0.1", port)
    c.loop_start()
    done.wait(10)
    c.disconnect()
    c.loop_stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True, action="append")
    ap.add_argument("--host-id")
    args = ap.parse_args()

    clients = {}
    for port in args.port:
        one = len(args.port) == 1
        client = psp.Client(client_id="sparkplug-test-host" if one else f"sparkplug-test-host-{port}")
        # Sparkplug 3.0: the will and the birth of one session carry the same timestamp.
        connect_ts = psp.get_current_timestamp()
        if args.host_id:
            client.set_will(state_message(args.host_id, False, connect_ts))
        connected = threading.Event()
        client.subscribe(psp.Topic(group_id=psp.MULTI_LEVEL_WILDCARD), psp.QoS.AT_LEAST_ONCE,
                         lambda _c, m, port=port: on_message(port, m))
        client.connect("127.0.0.1", port=port, blocking=False, callback=lambda _c, e=connected: e.set())
        connected.wait(10)
        if args.host_id:
            client.publish(state_message(args.host_id, True, connect_ts))
        clients[port] = client
    client = clients[args.port[0]]
    out({"type": "READY"})

    for raw in sys.stdin:
        cmd = json.loads(raw)
        now = psp.get_current_timestamp()
        if cmd["cmd"] == "state":
            for port, c in clients.items():
                if cmd.get("port", port) == port:
                    c.publish(state_message(args.host_id, cmd["online"], cmd.get("timestamp")))
        elif cmd["cmd"] == "rebirth":
            metric = psp.Metric(timestamp=now, name="Node Control/Rebirth",
                                datatype=psp.DataType.BOOLEAN, value=True)
            for _ in range(cmd.get("count", 1)):
                client.publish(psp.Message(
                    topic=psp.Topic(message_type=psp.MessageType.NCMD, group_id=cmd["group"],
                                    edge_node_id=cmd["node"]),
                    payload=psp.NCmd(timestamp=now, metrics=(metric,)),
                    qos=psp.QoS.AT_MOST_ONCE, retain=False), include_dtypes=True)
        elif cmd["cmd"] == "kick":
            kick(args.port[0], cmd["client_id"])
        elif cmd["cmd"] == "dcmd":
            value = "x" * cmd["pad"] if "pad" in cmd else cmd["value"]
            metric = psp.Metric(timestamp=now, name=cmd["name"],
                                datatype=psp.DataType[cmd["datatype"]], value=value)
            for _ in range(cmd.get("count", 1)):
                client.publish(psp.Message(
                    topic=psp.Topic(message_type=psp.MessageType.DCMD, group_id=cmd["group"],
                                    edge_node_id=cmd["node"], device_id=cmd["device"]),
                    payload=psp.DCmd(timestamp=now, metrics=(metric,)),
                    qos=psp.QoS.AT_LEAST_ONCE if cmd.get("retain") else psp.QoS.AT_MOST_ONCE,
                    retain=cmd.get("retain", False)), include_dtypes=True)
        out({"type": "DONE", "cmd": cmd["cmd"]})


if __name__ == "__main__":
    main()
