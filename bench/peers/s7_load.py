"""One Siemens S7 CPU of bench scenario S9: python-snap7's pure-Python server (pinned in
bench/peers/requirements.txt), an implementation of the CPU side written by others, holding one
DB with the tags of the scenario's layout. It changes `per_tick` tags every `tick_ms`, in turn,
and counts what its readers read, as the Modbus load server does for S2 (bench/src/load_server.rs):
every byte of the DB, whatever items and requests a tool reads it in.

    s7_load.py SPEC.json      (written by mes-edge-bench; see bench/src/s9_rig.rs)

SPEC: {"port", "db", "size", "tick_ms", "per_tick", "tags": [[offset, kind, initial, step]]}
with kind word, dword or real.

Prints `READY <port>` once listening. stdin, one command a line: `reset` clears the counts,
`report` prints `REPORT [{json}]`, a list of one DeviceReport (load_server.rs prints one a
device): `reads` are read requests (PDUs), `registers_read` bytes, `cycles` reads of the DB's
first byte, and `tag_register_reads_min|max` the fewest and most reads of one byte of the tags.
"""

import json
import struct
import sys
import threading
import time

from snap7.server import Server
from snap7.type import SrvArea

FORMATS = {"word": ">H", "dword": ">I", "real": ">f"}
LIMITS = {"word": 1 << 16, "dword": 1 << 32}


class Counts:
    """What the readers read since the last reset."""

    def __init__(self, size):
        self.size = size
        self.reset()

    def reset(self):
        self.started = time.monotonic()
        self.requests = 0
        self.bytes = 0
        # Reads of each byte as a difference array: a read of any length costs two additions.
        self.diff = [0] * (self.size + 1)
        self.cycle_starts = []

    def item(self, start, length):
        end = min(start + length, self.size)
        if start >= end:
            return
        self.diff[start] += 1
        self.diff[end] -= 1
        self.bytes += end - start
        if start == 0:
            self.cycle_starts.append(time.monotonic())

    def report(self, tag_bytes):
        per_byte, run = [], 0
        for d in self.diff[: self.size]:
            run += d
            per_byte.append(run)
        used = [per_byte[b] for b in tag_bytes]
        starts = list(self.cycle_starts)
        return {
            "seconds": time.monotonic() - self.started,
            "reads": self.requests,
            "registers_read": self.bytes,
            "cycles": len(starts),
            "tag_register_reads_min": min(used, default=0),
            "tag_register_reads_max": max(used, default=0),
            "intervals_ms": [(b - a) * 1e3 for a, b in zip(starts, starts[1:])],
        }


def main():
    spec = json.load(open(sys.argv[1]))
    db = bytearray(spec["size"])
    tags = spec["tags"]
    values = [t[2] for t in tags]
    for (offset, kind, _, _), v in zip(tags, values):
        struct.pack_into(FORMATS[kind], db, offset, v)
    tag_bytes = sorted(
        {b for offset, kind, _, _ in tags for b in range(offset, offset + struct.calcsize(FORMATS[kind]))}
    )
    counts = Counts(spec["size"])

    server = Server(log=False)
    server.register_area(SrvArea.DB, spec["db"], db)

    def on_read(event):
        if int(event.EvtParam2) == spec["db"]:
            counts.item(int(event.EvtParam3), int(event.EvtParam4))

    server.set_read_events_callback(on_read)
    # The read events name items; the requests that carry them are counted around the server's
    # handler of a read request (python-snap7 3.3.0's Server._handle_read_area, one call per PDU).
    handle = server._handle_read_area

    def counted(request, client_address):
        counts.requests += 1
        return handle(request, client_address)

    server._handle_read_area = counted
    server.host = "127.0.0.1"
    server.start(tcp_port=spec["port"])

    def drift():
        # One struct.pack_into per change: a single call under the GIL, so a reader's copy of
        # the DB (also one call) never sees half a value.
        tick, per_tick, turn = spec["tick_ms"] / 1000.0, spec["per_tick"], 0
        next_t = time.monotonic()
        while True:
            next_t += tick
            time.sleep(max(0.0, next_t - time.monotonic()))
            for _ in range(per_tick):
                i = turn % len(tags)
                turn += 1
                offset, kind, _, step = tags[i]
                v = values[i] + step
                if kind in LIMITS:
                    v %= LIMITS[kind]
                values[i] = v
                struct.pack_into(FORMATS[kind], db, offset, v)

    threading.Thread(target=drift, daemon=True).start()
    print(f"READY {spec['port']}", flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "reset":
            counts.reset()
        elif cmd == "report":
            print("REPORT " + json.dumps([counts.report(tag_bytes)]), flush=True)
    server.stop()


if __name__ == "__main__":
    main()
