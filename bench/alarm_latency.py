"""Alarm latency: publish-to-alarm-visible under background telemetry load.

    python -m bench.alarm_latency [--background 5000] [--duration 30] [--interval 0.1]

The gateway runs with the bench rule pack plus ``probe-high`` (a probe tank's level above
90 %, no delay). While ``--processes`` publishers send ``--background`` messages/s of
telemetry, a probe client publishes the probe tank's level alternately at 95 % (raises the
alarm) and 50 % (returns it to normal), one at a time, and times each until the matching
alarm transition arrives on the gateway's alarm topic (QoS 1). If the console's live stream
(``/api/v1/stream``, server-sent events, opened with a ticket from
``/api/v1/stream/ticket``) exists, the same transitions are timed there too.
The reference is the same probe measured with no background load (the ceiling of this run).

Probing starts once the console stream is connected, after one uncounted raise/clear
pair: the first probe used to coincide with the stream's set-up (and the probe device's
first reading and alarm), and with ~100 idle probes that one was the idle p99. Its
latency is kept in the JSON as ``warmup_ms``. The CPU the whole machine used during the
load phase is recorded beside the gateway's, because on a shared machine it decides the
tail more than anything measured here.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as paho

from bench import harness as h

PROBE = {"id": "probe-tank", "kind": "water_tank", "location": {"building": "PROBE"}}
PROBE_TOPIC = f"{h.PREFIX}/{h.SITE}/PROBE/water_tank/probe-tank/telemetry"
PROBE_RULE = {"id": "probe-high", "select": {"devices": ["probe-tank"]}, "priority": "high",
              "when": {"type": "threshold", "metric": "level_pct", "above": 90}}


class Watcher:
    """Arrival times of the probe's alarm transitions on the alarm topic and the stream."""

    def __init__(self, port: int, gw: h.Gateway) -> None:
        self.mqtt: list[float] = []
        self.stream: list[float] = []
        self.stream_status = "not checked"
        self.stream_ready = threading.Event()  # connected, or failed for good
        ready = threading.Event()
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-alarm-watch")
        c.on_connect = lambda cl, *a: cl.subscribe(f"{h.PREFIX}/{h.SITE}/alarms", qos=1)
        c.on_subscribe = lambda *a: ready.set()
        c.on_message = self._on_alarm
        c.connect("127.0.0.1", port)
        c.loop_start()
        ready.wait(10)
        self.client = c
        self._stop = threading.Event()
        self._sse = threading.Thread(target=self._follow_stream, args=(gw,), daemon=True)
        self._sse.start()

    def _on_alarm(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        now = time.monotonic()
        with contextlib.suppress(ValueError, KeyError, TypeError):
            if orjson.loads(msg.payload)["data"]["alarm"]["device_id"] == "probe-tank":
                self.mqtt.append(now)

    def _follow_stream(self, gw: h.Gateway) -> None:
        """The console's live feed: a single-use ticket, then Server-Sent Events."""
        auth = {"Authorization": f"Bearer {gw.token}"}
        try:
            r = httpx.post(f"{gw.url}/api/v1/stream/ticket", headers=auth, timeout=5)
            if r.status_code != 200:
                self.stream_status = f"/api/v1/stream/ticket answered {r.status_code}"
                self.stream_ready.set()
                return
            ticket = r.json()["ticket"]
            with httpx.stream("GET", f"{gw.url}/api/v1/stream", params={"ticket": ticket},
                              headers={"Accept": "text/event-stream"},
                              timeout=httpx.Timeout(5, read=None)) as r:
                if r.status_code != 200:
                    self.stream_status = f"/api/v1/stream answered {r.status_code}"
                    self.stream_ready.set()
                    return
                self.stream_status = "measured"
                event = ""
                for line in r.iter_lines():
                    if self._stop.is_set():
                        return
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:") and event == "snapshot":
                        self.stream_ready.set()  # the first frame: the stream is live
                    elif line.startswith("data:") and event == "alarm" and "probe-tank" in line:
                        self.stream.append(time.monotonic())
                    elif not line:
                        event = ""
        except httpx.HTTPError as exc:
            if not self._stop.is_set():
                self.stream_status = f"stream failed: {exc}"
        finally:
            self.stream_ready.set()

    def close(self) -> None:
        self._stop.set()
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class ProbeState:
    """What the probe tank was last sent, carried from one phase to the next: a phase that
    began with 95 % after one that ended with 95 % measured no transition (a miss)."""

    high: bool = True
    last_ts: float = 0.0


def probe(port: int, watcher: Watcher, state: ProbeState, *, seconds: float,
          interval: float, timeout: float = 2.0, max_probes: int | None = None
          ) -> dict[str, list[float]]:
    """Alternate 95 % / 50 % on the probe tank; latency of each transition, in ms."""
    pub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-alarm-probe")
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    out: dict[str, list[float]] = {"mqtt": [], "stream": []}
    missed = 0
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end and (max_probes is None or max_probes > 0):
            if max_probes is not None:
                max_probes -= 1
            n_mqtt, n_stream = len(watcher.mqtt), len(watcher.stream)
            ts = max(round(time.time(), 3), state.last_ts + 0.001)
            state.last_ts = ts
            body = orjson.dumps({"ts": ts, "level_pct": 95.0 if state.high else 50.0})
            sent = time.monotonic()
            pub.publish(PROBE_TOPIC, body, qos=1)
            deadline = sent + timeout
            while len(watcher.mqtt) == n_mqtt and time.monotonic() < deadline:
                time.sleep(0.0002)
            if len(watcher.mqtt) > n_mqtt:
                out["mqtt"].append((watcher.mqtt[n_mqtt] - sent) * 1000)
            else:
                missed += 1
            if watcher.stream_status == "measured":
                while len(watcher.stream) == n_stream and time.monotonic() < deadline:
                    time.sleep(0.0002)
                if len(watcher.stream) > n_stream:
                    out["stream"].append((watcher.stream[n_stream] - sent) * 1000)
            state.high = not state.high
            time.sleep(interval)
    finally:
        pub.disconnect()
        pub.loop_stop()
    out["missed"] = [float(missed)]
    return out


def summarise(lat: list[float]) -> dict[str, Any]:
    if not lat:  # e.g. no console stream: null, not NaN, in the JSON
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    return {"n": len(lat), "p50_ms": round(h.pct(lat, 50), 2), "p99_ms": round(h.pct(lat, 99), 2),
            "max_ms": round(max(lat), 2)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--background", type=float, default=5000, help="messages/s")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of probing under load")
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of probing without load")
    ap.add_argument("--interval", type=float, default=0.1, help="pause between probes (s)")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--client", choices=("paho", "raw"), default="paho")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-alarm-"))
    device_list = [*h.devices(args.devices), PROBE]
    print(f"alarm latency: {args.devices} devices, background {args.background:,.0f} msg/s "
          f"({args.processes} {args.client} publishers), work dir {root}")
    try:
        with h.broker(root / "broker") as broker:
            data = root / "data"
            cfg = h.write_config(root / "gateway.yaml", broker_port=broker.port, data_dir=data,
                                 device_list=device_list, rules=[*h.rule_pack(), PROBE_RULE])
            gw = h.Gateway(cfg, data, root / "gateway.log")
            gw.make_token()
            gw.start()
            assert gw.proc is not None
            watcher = Watcher(broker.port, gw)
            try:
                watcher.stream_ready.wait(10)
                tank = ProbeState()
                warmup = probe(broker.port, watcher, tank, seconds=10, interval=args.interval,
                               max_probes=2)
                idle = probe(broker.port, watcher, tank, seconds=args.idle,
                             interval=args.interval)
                load_out: dict[str, Any] = {}

                def load() -> None:
                    load_out["r"], _ = h.run_load(
                        broker.port, h.devices(args.devices), rate=args.background,
                        duration=args.duration + 3, processes=args.processes,
                        workdir=root / "load", client=args.client)

                t = threading.Thread(target=load)
                t.start()
                time.sleep(1.0 + 0.2 * args.processes + 2.0)  # publishers start, then settle
                cpu0, busy0, t0 = h.cpu_s(gw.proc.pid), h.machine_busy_s(), time.monotonic()
                busy = probe(broker.port, watcher, tank, seconds=args.duration,
                             interval=args.interval)
                gw_cpu = h.cpu_s(gw.proc.pid) - cpu0  # over the probing window only
                window = time.monotonic() - t0
                machine_pct = 100 * (h.machine_busy_s() - busy0) / window
                t.join()
                loads = load_out["r"]
                achieved = sum(r.sent for r in loads) / max(r.paced_s for r in loads)
                dropped = broker.dropped()
                stream_status = watcher.stream_status
            finally:
                watcher.close()
                gw.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    res = {"idle_mqtt": summarise(idle["mqtt"]), "load_mqtt": summarise(busy["mqtt"]),
           "idle_stream": summarise(idle["stream"]), "load_stream": summarise(busy["stream"]),
           "missed_under_load": int(busy["missed"][0]), "stream": stream_status,
           "background_achieved": round(achieved), "gateway_cpu_s_under_load": round(gw_cpu, 1),
           "gateway_cpu_pct_under_load": round(100 * gw_cpu / window, 1),
           "machine_cpu_pct_under_load": round(machine_pct, 1),
           "machine_cores": os.cpu_count(),
           "warmup_ms": [round(x, 2) for x in warmup["mqtt"]],
           # every probe, so several runs can be pooled before taking percentiles
           "latencies_ms": {k: [round(x, 2) for x in v[key]] for k, v, key in (
               ("idle_mqtt", idle, "mqtt"), ("load_mqtt", busy, "mqtt"),
               ("idle_stream", idle, "stream"), ("load_stream", busy, "stream"))},
           "broker_dropped": dropped}
    rows = [["alarm topic, idle", *_cols(res["idle_mqtt"])],
            [f"alarm topic, {achieved:,.0f}/s", *_cols(res["load_mqtt"])]]
    if stream_status == "measured":
        rows += [["console stream, idle", *_cols(res["idle_stream"])],
                 [f"console stream, {achieved:,.0f}/s", *_cols(res["load_stream"])]]
    print(h.table(rows, ["path", "probes", "p50 ms", "p99 ms", "max ms"]))
    print(f"console stream: {stream_status}; missed under load: {res['missed_under_load']}; "
          f"broker dropped: {dropped}; warm-up (not counted): {res['warmup_ms']} ms")
    print(f"CPU under load: gateway {res['gateway_cpu_pct_under_load']} %, whole machine "
          f"{res['machine_cpu_pct_under_load']} % of {100 * (os.cpu_count() or 1)} %")
    p99_idle, p99_load = res["idle_mqtt"]["p99_ms"], res["load_mqtt"]["p99_ms"]
    res["p99_vs_idle"] = round(p99_load / p99_idle, 2) if p99_idle and p99_load else None
    path = h.save("alarm_latency", {"params": {k: v for k, v in vars(args).items()
                                               if k != "out"}, "summary": res}, args.out)
    print(f"wrote {path}")
    return res


def _cols(s: dict[str, Any]) -> list[Any]:
    return [s["n"], s["p50_ms"], s["p99_ms"], s["max_ms"]]


if __name__ == "__main__":
    main()
