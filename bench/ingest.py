"""Ingest benchmark: the highest rate each consumer sustains with zero loss (a step search).

    python -m bench.ingest [--devices 200] [--duration 10] [--processes 2] [--rates ...]

For each consumer (mosquitto_sub, a bare paho subscriber that parses the JSON, the gateway
with the rule pack and the embedded store) a fresh mosquitto is started and QoS 1
telemetry from ``--devices`` devices is published at increasing rates by ``--processes``
publisher processes. A step passes when everything published was consumed (the gateway:
every point stored) within ``--grace`` seconds of the last PUBACK, the broker dropped
nothing, and the publishers kept the asked rate. Between the last pass and the first
failure the search bisects ``--refine`` times. The ratio of the gateway's figure to the
bare subscriber's (the ceiling) is reported, as is which process was the limit.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench import harness as h

DEFAULT_RATES = (5_000, 10_000, 15_000, 20_000, 25_000, 30_000, 40_000, 50_000)


class Consumer:
    name = ""
    unit = "messages"
    pid = 0

    def start(self, broker: h.Broker, workdir: Path, device_list: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def count(self) -> int:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def extra(self) -> dict[str, Any]:
        return {}

    def pause(self) -> None:
        """Go away, keeping the broker session (messages queue up meanwhile)."""
        raise NotImplementedError

    def resume(self) -> None:
        raise NotImplementedError


class MosquittoSub(Consumer):
    name = "mosquitto_sub"

    def start(self, broker: h.Broker, workdir: Path, device_list: list[dict[str, Any]]) -> None:
        self.broker = broker
        self.client_id = f"bench-msub-{time.time_ns()}"
        self._spawn()
        _wait_subscribed(broker, self)

    def _spawn(self) -> None:
        self.proc = subprocess.Popen(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(self.broker.port), "-q", "1",
             "-c", "-t", f"{h.PREFIX}/#", "-i", self.client_id], stdout=subprocess.PIPE)
        self.pid = self.proc.pid
        self.counter = h.LineCounter(self.proc.stdout)
        self.counter.start()

    def pause(self) -> None:
        self.stop()

    def resume(self) -> None:
        self._spawn()

    def count(self) -> int:
        return self.counter.count

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class BareSub(Consumer):
    name = "paho bare subscriber"

    def start(self, broker: h.Broker, workdir: Path, device_list: list[dict[str, Any]]) -> None:
        self.broker = broker
        self.client_id = f"bench-bare-{time.time_ns()}"
        self._spawn()

    def pause(self) -> None:
        self.stop()

    def resume(self) -> None:
        self._spawn()

    def _spawn(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.bare_sub", "--port", str(self.broker.port),
             "--topic", f"{h.PREFIX}/#", "--client-id", self.client_id],
            stdout=subprocess.PIPE, cwd=h.REPO, text=True)
        self.pid = self.proc.pid
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("bare subscriber did not subscribe")
        self._count = 0
        threading.Thread(target=self._follow, daemon=True).start()

    def _follow(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._count = int(line)

    def count(self) -> int:
        time.sleep(0.03)  # let the next report arrive
        return self._count

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class GatewayConsumer(Consumer):
    name = "gateway (rules + store)"
    unit = "points"

    def start(self, broker: h.Broker, workdir: Path, device_list: list[dict[str, Any]]) -> None:
        data = workdir / "data"
        cfg = h.write_config(workdir / "gateway.yaml", broker_port=broker.port, data_dir=data,
                             device_list=device_list, rules=h.rule_pack())
        self.gw = h.Gateway(cfg, data, workdir / "gateway.log")
        self.gw.make_token()
        self.gw.start()
        assert self.gw.proc is not None
        self.pid = self.gw.proc.pid

    def count(self) -> int:
        return self.gw.points_written()

    def pause(self) -> None:
        self.gw.stop()

    def resume(self) -> None:
        self.gw.start()
        assert self.gw.proc is not None
        self.pid = self.gw.proc.pid

    def stop(self) -> None:
        self.gw.stop()

    def extra(self) -> dict[str, Any]:
        m = self.gw.metrics()
        return {"peak_rss_mb": round(h.peak_rss_mb(self.pid), 1),
                "messages_in": int(m.get("gateway_mqtt_messages_in_total", 0)),
                "points_written": int(m.get("gateway_store_points_written_total", 0))}


def _wait_subscribed(broker: h.Broker, consumer: Consumer) -> None:
    """Publish probes until the consumer has seen one; then its count is the baseline."""
    import paho.mqtt.client as paho

    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"bench-probe-{time.time_ns()}")
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    deadline = time.monotonic() + 10
    while consumer.count() == 0 and time.monotonic() < deadline:
        c.publish(f"{h.PREFIX}/probe", b"{}", qos=1).wait_for_publish(5)
        time.sleep(0.05)
    c.disconnect()
    c.loop_stop()
    if consumer.count() == 0:
        raise TimeoutError(f"{consumer.name} did not subscribe")


def step(consumer: Consumer, broker: h.Broker, device_list: list[dict[str, Any]], rate: float,
         args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    base = consumer.count()
    dropped0 = broker.dropped()
    cpu0 = {"consumer": h.cpu_s(consumer.pid), "broker": h.cpu_s(broker.proc.pid),
            "machine": h.machine_busy_s()}
    t0 = time.monotonic()
    loads, _ = h.run_load(broker.port, device_list, rate=rate, duration=args.duration,
                          processes=args.processes, workdir=workdir / "load",
                          client=args.client)
    sent = sum(r.sent for r in loads)
    expected = sum(r.points if consumer.unit == "points" else r.sent for r in loads)
    finished = max(r.finished_at for r in loads)
    got = consumer.count() - base
    while got < expected and time.time() < finished + args.grace:
        time.sleep(0.02)
        got = consumer.count() - base
    sustained = got >= expected
    drain_s = max(0.0, time.time() - finished) if sustained else None
    deadline = time.time() + args.drain_timeout
    while got < expected and time.time() < deadline:
        time.sleep(0.1)
        got = consumer.count() - base
    if got >= expected and drain_s is None:
        drain_s = time.time() - finished
    wall = time.monotonic() - t0
    publish_s = max(r.publish_s for r in loads)
    achieved = sent / max(r.paced_s for r in loads)
    dropped = broker.dropped() - dropped0
    loadgen_limited = achieved < 0.97 * rate
    if loadgen_limited:
        verdict = "loadgen-limit"
    elif sustained and got == expected and dropped == 0:
        verdict = "pass"
    else:
        verdict = "FAIL"
    cpu_wall = time.monotonic() - t0
    cpu = {"consumer": h.cpu_s(consumer.pid) - cpu0["consumer"],
           "broker": h.cpu_s(broker.proc.pid) - cpu0["broker"],
           "loadgen": sum(r.cpu_s for r in loads)}
    # what other processes on the machine used meanwhile (they share our 2 cores)
    cpu["other"] = max(0.0, h.machine_busy_s() - cpu0["machine"] - sum(cpu.values()))
    return {"rate_asked": rate, "rate_achieved": round(achieved), "sent": sent,
            "expected": expected, "consumed": got, "lost": max(0, expected - got),
            "dropped_by_broker": dropped, "sustained": sustained,
            "drain_s": None if drain_s is None else round(drain_s, 2), "verdict": verdict,
            "cpu_s": {k: round(v, 2) for k, v in cpu.items()},
            # share of one core over the whole step (publishers' start-up to drained)
            "cpu_pct": {k: round(100 * v / cpu_wall) for k, v in cpu.items()},
            "consumer_cpu_us_per_message": round(1e6 * cpu["consumer"] / max(1, sent), 1),
            "step_wall_s": round(wall, 1)}


def drain(consumer: Consumer, broker: h.Broker, device_list: list[dict[str, Any]],
          args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Capacity without a load generator: how fast the consumer empties a queued backlog.

    The consumer goes away (its session stays), ``--drain`` messages are queued at the
    broker, and the consumer comes back; the rate is counted from its first report after
    coming back until the backlog is gone, so the load generator cannot be the limit.
    """
    consumer.pause()
    loads, _ = h.run_load(broker.port, device_list, rate=args.drain / 5, duration=5,
                          processes=args.processes, workdir=workdir / "load",
                          client=args.client)
    expected = sum(r.points if consumer.unit == "points" else r.sent for r in loads)
    consumer.resume()
    cpu0 = h.cpu_s(consumer.pid)
    threads0 = h.thread_cpu_s(consumer.pid)
    machine0 = h.machine_busy_s()
    t0 = time.monotonic()
    got0 = consumer.count()
    got = got0
    deadline = t0 + 300
    while got < expected and time.monotonic() < deadline:
        time.sleep(0.02)
        got = consumer.count()
    took = time.monotonic() - t0
    cpu = h.cpu_s(consumer.pid) - cpu0
    threads = {k: v - threads0[k] for k, v in h.thread_cpu_s(consumer.pid).items()}
    other = max(0.0, h.machine_busy_s() - machine0 - cpu)
    per = 3 if consumer.unit == "points" else 1
    drained = max(1, (got - got0) / per)
    rate = (got - got0) / per / took
    out = {"messages": sum(r.sent for r in loads), "rate": round(rate),
           "cpu_us_per_message": round(1e6 * cpu / drained, 1),
           # the event loop's thread against the rest (the store's writer thread, for the
           # gateway): which one is the limit
           "cpu_us_per_message_by_thread": {k: round(1e6 * v / drained, 1)
                                            for k, v in threads.items()},
           "cpu_pct": round(100 * cpu / took),
           "other_processes_cpu_pct": round(100 * other / took), "complete": got >= expected}
    by_thread = ", ".join(f"{k} {v}" for k, v in out["cpu_us_per_message_by_thread"].items())
    print(f"  {consumer.name:<24} backlog of {out['messages']:,} drained at {rate:,.0f} msg/s, "
          f"{out['cpu_us_per_message']} us CPU/msg ({by_thread}), {out['cpu_pct']}% of a "
          f"core; other processes {out['other_processes_cpu_pct']}%", flush=True)
    return out


def search(consumer: Consumer, device_list: list[dict[str, Any]], args: argparse.Namespace,
           root: Path) -> dict[str, Any]:
    workdir = root / consumer.name.split()[0]
    steps: list[dict[str, Any]] = []
    with h.broker(workdir / "broker", max_inflight=args.max_inflight) as broker:
        consumer.start(broker, workdir, device_list)
        try:
            cpu_start = h.cpu_s(consumer.pid)
            best, worst = 0.0, None
            for rate in args.rates:
                s = step(consumer, broker, device_list, rate, args, workdir)
                steps.append(s)
                _print_step(consumer, s)
                if s["verdict"] != "pass":
                    worst = s
                    break
                best = rate
            for _ in range(args.refine if worst is not None else 0):
                rate = round((best + worst["rate_asked"]) / 2, -2)
                if rate in (best, worst["rate_asked"]):
                    break
                s = step(consumer, broker, device_list, rate, args, workdir)
                steps.append(s)
                _print_step(consumer, s)
                if s["verdict"] == "pass":
                    best = rate
                else:
                    worst = s
            capacity = drain(consumer, broker, device_list, args, workdir) if args.drain else None
            extra = consumer.extra()
            total_cpu = h.cpu_s(consumer.pid) - cpu_start
            dropped_total = broker.dropped()
        finally:
            consumer.stop()
    if worst is None:
        limit = "not reached (raise --rates)"
    elif worst["verdict"] == "loadgen-limit":
        limit = (f"load generator: {args.processes} publisher process(es) reached "
                 f"{worst['rate_achieved']:,}/s of {worst['rate_asked']:,}/s asked")
    else:
        limit = f"{consumer.name}: backlog at {worst['rate_asked']:,}/s"
    return {"consumer": consumer.name, "unit": consumer.unit, "max_sustained_rate": best,
            "limit": limit, "first_non_pass": worst, "backlog_drain": capacity, "consumer_cpu_s_total": round(total_cpu, 1),
            "broker_dropped_total": dropped_total, "steps": steps, **extra}


def _print_step(consumer: Consumer, s: dict[str, Any]) -> None:
    c = s["cpu_pct"]
    print(f"  {consumer.name:<24} {s['rate_asked']:>8,.0f}/s asked {s['rate_achieved']:>8,}/s "
          f"sent  lost {s['lost']:<7,} dropped {s['dropped_by_broker']:<4} "
          f"drain {s['drain_s']}s  {s['consumer_cpu_us_per_message']} us/msg  "
          f"cpu% consumer {c['consumer']} broker {c['broker']} "
          f"loadgen {c['loadgen']} other {c['other']}  -> {s['verdict']}", flush=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per step")
    ap.add_argument("--grace", type=float, default=1.0,
                    help="seconds after the last PUBACK by which all must be consumed")
    ap.add_argument("--drain-timeout", type=float, default=30.0)
    ap.add_argument("--processes", type=int, default=2, help="publisher processes")
    ap.add_argument("--client", choices=("paho", "raw"), default="raw",
                    help="publisher: paho (the shipped simulators' client) or a raw-socket "
                    "MQTT writer that can offer more than paho on this machine")
    ap.add_argument("--max-inflight", type=int, default=1000,
                    help="mosquitto max_inflight_messages (the shipped config: 1000)")
    ap.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")],
                    default=list(DEFAULT_RATES))
    ap.add_argument("--refine", type=int, default=2, help="bisection steps after a failure")
    ap.add_argument("--drain", type=int, default=100_000,
                    help="messages in the backlog-drain capacity test (0: skip it)")
    ap.add_argument("--consumers", default="mosquitto_sub,paho,gateway")
    ap.add_argument("--out", type=Path, default=None, help="results directory")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args(argv)
    wanted = args.consumers.split(",")
    consumers: list[Consumer] = []
    if "mosquitto_sub" in wanted:
        if shutil.which("mosquitto_sub"):
            consumers.append(MosquittoSub())
        else:
            print("mosquitto_sub not installed (apt-get install mosquitto-clients): skipped")
    if "paho" in wanted:
        consumers.append(BareSub())
    if "gateway" in wanted:
        consumers.append(GatewayConsumer())
    device_list = h.devices(args.devices)
    root = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    print(f"ingest: {args.devices} devices, QoS 1, {args.processes} {args.client} publisher "
          "processes, "
          f"{args.duration:g} s per step, work dir {root}")
    results = {}
    try:
        for c in consumers:
            results[c.name] = search(c, device_list, args, root)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    ceiling = results.get(BareSub.name, {}).get("max_sustained_rate") or 0
    gw = results.get(GatewayConsumer.name)
    rows = []
    for name, r in results.items():
        ratio = r["max_sustained_rate"] / ceiling if ceiling else float("nan")
        cap = r["backlog_drain"]["rate"] if r["backlog_drain"] else "-"
        rows.append([name, int(r["max_sustained_rate"]), f"{ratio:.2f}", cap, r["limit"]])
    print()
    print(h.table(rows, ["consumer", "max zero-loss msg/s", "x ceiling", "backlog drain msg/s",
                         "what limited the search"]))
    summary: dict[str, Any] = {"ceiling_bare_subscriber": ceiling}
    if gw is not None:
        summary |= {"gateway": gw["max_sustained_rate"],
                    "gateway_vs_ceiling": round(gw["max_sustained_rate"] / ceiling, 3)
                    if ceiling else None,
                    "gateway_peak_rss_mb": gw.get("peak_rss_mb"),
                    "gateway_cpu_s_total": gw["consumer_cpu_s_total"]}
        print(f"gateway: peak RSS {gw.get('peak_rss_mb')} MB, CPU {gw['consumer_cpu_s_total']} s "
              f"over the search")
    if MosquittoSub.name in results:
        summary["mosquitto_sub"] = results[MosquittoSub.name]["max_sustained_rate"]
    data = {"params": {k: v for k, v in vars(args).items() if k != "out"},
            "summary": summary, "consumers": results}
    path = h.save("ingest", data, args.out)
    print(f"wrote {path}")
    return data


if __name__ == "__main__":
    main()
