"""One load-generator process: QoS 1 JSON telemetry for its share of the devices, paced.

Publishes through ``drivers.simulators.publisher.SimPublisher`` (paho-mqtt, the shipped
simulators' publisher) at ``--rate`` messages/s for ``--duration`` s, starting at the wall
time ``--start-at`` so that several processes start together. Every message carries three
metrics and a device time at least 1 ms after the device's previous one, so each message
is exactly three new points in the store. Writes what it did as JSON to ``--out``; when it
cannot keep the asked rate, ``sent / publish_s`` shows it (the load generator is the limit).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import socket
import struct
import time
from pathlib import Path
from typing import Any

import orjson

from drivers.simulators.publisher import SimPublisher

POINTS_PER_MESSAGE = 3


def body(kind: str, ts: float, rng: random.Random) -> dict[str, Any]:
    """Normal-range telemetry (no alarm is raised by the bench rule pack)."""
    if kind == "water_tank":
        return {"ts": ts, "level_pct": round(rng.uniform(40, 90), 2),
                "pump_running": rng.random() < 0.5,
                "outlet_pressure_mpa": round(rng.uniform(0.28, 0.32), 3)}
    if kind == "elevator":
        return {"ts": ts, "floor": rng.randint(-2, 30),
                "car_speed_mps": round(rng.uniform(-2.5, 2.5), 2),
                "load_pct": round(rng.uniform(0, 90), 1)}
    if kind == "access_gate":
        return {"ts": ts, "door_state": "closed", "door_open_s": 0.0,
                "battery_pct": round(rng.uniform(40, 100), 1)}
    return {"ts": ts, "open_s": round(rng.uniform(0, 20), 1),
            "zone_occupancy": rng.randint(0, 400), "loop_ok": True}


class RawPublisher:
    """A minimal MQTT 3.1.1 QoS 1 publisher on a plain socket (``--client raw``).

    It speaks the same protocol as paho (CONNECT, PUBLISH QoS 1, PUBACK) but encodes
    packets in a few lines and writes them in bursts, so one process can offer several
    times paho's rate: for measuring consumers beyond what the paho publishers can offer.
    """

    def __init__(self, port: int, client_id: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cid = client_id.encode()
        var = b"\x00\x04MQTT\x04\x02\x00\x3c" + struct.pack("!H", len(cid)) + cid
        self.sock.sendall(b"\x10" + _remaining(len(var)) + var)
        if self.sock.recv(4)[:2] != b"\x20\x02":
            raise ConnectionError("broker refused the connection")
        self.sock.setblocking(False)
        self.mid = 0
        self.inflight = 0
        self.published = 0
        self._out: list[bytes] = []
        self._pending = b""
        self._rx = b""

    def publish(self, topic: str, payload: bytes) -> None:
        self.mid = self.mid % 65535 + 1
        t = topic.encode()
        body = struct.pack("!H", len(t)) + t + struct.pack("!H", self.mid) + payload
        self._out.append(b"\x32" + _remaining(len(body)) + body)
        self.inflight += 1
        self.published += 1
        if self.inflight > 30_000:
            while self.inflight > 10_000:
                self.pump(block=True)

    def pump(self, *, block: bool = False) -> None:
        """Write what is queued and count the PUBACKs that have arrived."""
        if self._out:
            self._pending += b"".join(self._out)
            self._out.clear()
        while self._pending:
            try:
                n = self.sock.send(self._pending)
            except BlockingIOError:
                n = 0
            self._pending = self._pending[n:]
            self._read()
            if not n and not block:
                return
        self._read(block=block)

    def _read(self, *, block: bool = False) -> None:
        try:
            if block:
                self.sock.settimeout(0.05)
            data = self.sock.recv(1 << 16)
        except (BlockingIOError, TimeoutError):
            data = b""
        finally:
            self.sock.setblocking(False)
        self._rx += data
        n = len(self._rx) // 4  # only PUBACKs (0x40 0x02 id id) come back
        self.inflight -= n
        self._rx = self._rx[n * 4:]

    def flush(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while (self.inflight > 0 or self._out or self._pending) and time.monotonic() < deadline:
            self.pump(block=True)
        if self.inflight > 0:
            raise TimeoutError(f"{self.inflight} messages not acknowledged")

    def close(self) -> None:
        self.sock.setblocking(True)
        self.sock.sendall(b"\xe0\x00")
        self.sock.close()


def _remaining(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--devices", type=Path, required=True)
    ap.add_argument("--rate", type=float, required=True, help="messages/s for this process")
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--index", type=int, default=0)
    ap.add_argument("--of", type=int, default=1)
    ap.add_argument("--start-at", type=float, default=0.0)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--site", default="bench")
    ap.add_argument("--prefix", default="estate")
    ap.add_argument("--client", choices=("paho", "raw"), default="paho")
    args = ap.parse_args()

    mine = json.loads(args.devices.read_text())[args.index::args.of]
    topics = [(f"{args.prefix}/{args.site}/{d['location']['building']}/{d['kind']}/"
               f"{d['id']}/telemetry", d["kind"]) for d in mine]
    last = [0.0] * len(topics)
    rng = random.Random(args.index)
    cid = f"bench-load-{args.index}-{time.time_ns()}"
    pub: SimPublisher | RawPublisher = (
        RawPublisher(args.port, cid) if args.client == "raw" else
        SimPublisher("127.0.0.1", args.port, prefix=args.prefix, site=args.site, client_id=cid))
    total = int(args.rate * args.duration)
    while time.time() < args.start_at:
        time.sleep(0.002)
    t0 = time.monotonic()
    sent = 0
    i = 0
    n = len(topics)
    while sent < total:
        due = min(total, int(args.rate * (time.monotonic() - t0)) + 1)
        now = time.time()
        while sent < due:
            topic, kind = topics[i]
            ts = max(round(now, 3), round(last[i] + 0.001, 3))
            last[i] = ts
            pub.publish(topic, orjson.dumps(body(kind, ts, rng)))
            sent += 1
            i = i + 1 if i + 1 < n else 0
        if isinstance(pub, RawPublisher):
            pub.pump()
        if sent < total:
            time.sleep(0.001)
    paced_s = time.monotonic() - t0
    pub.flush(120)
    publish_s = time.monotonic() - t0
    finished = time.time()
    pub.close()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    args.out.write_text(json.dumps({
        "rate_asked": args.rate, "sent": sent, "points": sent * POINTS_PER_MESSAGE,
        "paced_s": paced_s, "publish_s": publish_s, "finished_at": finished,
        "cpu_s": ru.ru_utime + ru.ru_stime}))


if __name__ == "__main__":
    main()
