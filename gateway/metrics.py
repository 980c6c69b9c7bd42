"""Prometheus exposition of the counters an operator asks about, read at scrape time.

The hot path only bumps plain integers; this collector turns them into metric families
when /metrics is scraped, so counting costs nothing per message.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from drivers.mqtt.codec import REASONS
from gateway.types import AlarmState

if TYPE_CHECKING:
    from collections.abc import Iterable

    from gateway.runtime import Runtime

__all__ = ["render_metrics"]


class _RuntimeCollector(Collector):
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    def collect(self) -> Iterable[Metric]:
        rt = self.rt
        m = rt.metrics
        obs = CounterMetricFamily("gateway_observations", "Observations accepted, by type",
                                  labels=["type"])
        for t in ("reading", "event", "status"):
            obs.add_metric([t], m.observations[t])
        yield obs
        rej = CounterMetricFamily("gateway_rejected", "Inputs rejected, by reason",
                                  labels=["reason"])
        for reason in sorted(set(REASONS) | set(m.rejected)):
            rej.add_metric([reason], m.rejected[reason])
        yield rej
        if rt.mqtt is not None:
            mm = rt.mqtt.metrics
            yield CounterMetricFamily("gateway_mqtt_messages_in", "MQTT messages received",
                                      value=mm.messages_in)
            yield GaugeMetricFamily("gateway_mqtt_connected", "1 while connected to the broker",
                                    value=1 if mm.connected else 0)
            yield CounterMetricFamily("gateway_mqtt_reconnects", "Broker connections made",
                                      value=mm.connects)
            yield GaugeMetricFamily("gateway_mqtt_last_batch", "Messages in the last batch",
                                    value=mm.last_batch_size)
            yield CounterMetricFamily("gateway_clock_skew_corrected",
                                      "Messages whose device time was replaced",
                                      value=mm.skew_corrected)
        yield CounterMetricFamily("gateway_events_duplicate", "Redelivered events ignored",
                                  value=m.events_duplicate)
        yield CounterMetricFamily("gateway_clock_steps",
                                  "Steps of the gateway's wall clock; rule timers were shifted",
                                  value=m.clock_steps)
        t = rt.telemetry
        yield CounterMetricFamily("gateway_store_points_written", "Readings stored",
                                  value=t.points_written)
        yield CounterMetricFamily("gateway_store_duplicates", "Redelivered readings ignored",
                                  value=t.duplicates_ignored)
        yield GaugeMetricFamily("gateway_store_last_write_seconds",
                                "Duration of the last telemetry commit", value=t.last_write_s)
        g = rt.group_commit
        yield CounterMetricFamily("gateway_store_write_transactions",
                                  "Telemetry transactions (each holds the readings of one or "
                                  "more ingest batches: store.batch_interval_ms)",
                                  value=g.transactions)
        yield CounterMetricFamily("gateway_store_write_batches", "Ingest batches handed to the "
                                  "telemetry writer", value=g.batches)
        yield GaugeMetricFamily("gateway_store_write_waiting",
                                "Readings handed to the telemetry writer, not yet committed",
                                value=g.waiting)
        yield CounterMetricFamily("gateway_store_points_dropped_full",
                                  "Readings refused because the store was full (on_full: drop_new)",
                                  value=t.points_dropped_full)
        yield CounterMetricFamily("gateway_store_points_pruned_for_space",
                                  "Oldest readings deleted to keep within store.max_bytes",
                                  value=t.points_pruned_for_space)
        yield GaugeMetricFamily("gateway_store_used_bytes", "Telemetry database bytes in use",
                                value=t.used_bytes)
        yield CounterMetricFamily("gateway_store_report_by_exception_suppressed",
                                  "Readings not written: within deadband and max silence",
                                  value=rt.rbe.suppressed)
        if rt.influx is not None:
            im = rt.influx.metrics
            for key in ("written", "batches", "retries", "rejected"):
                if isinstance(im.get(key), int | float):
                    yield CounterMetricFamily(f"gateway_influx_{key}", f"InfluxDB sink: {key}",
                                              value=im[key])
            if isinstance(im.get("backlog"), int | float):
                yield GaugeMetricFamily("gateway_influx_backlog",
                                        "Readings waiting for InfluxDB", value=im["backlog"])
        yield CounterMetricFamily("gateway_ingest_seconds", "Time spent in ingest",
                                  value=m.ingest_seconds)
        states: Counter[str] = Counter(a.state.value for a in rt.book.alarms.values())
        alarms = GaugeMetricFamily("gateway_alarms", "Alarms by state", labels=["state"])
        for s in AlarmState:
            alarms.add_metric([s.value], states[s.value])
        yield alarms
        yield CounterMetricFamily("gateway_alarm_topic_published",
                                  "Alarm transitions published on the alarm topic",
                                  value=m.alarms_published)
        yield GaugeMetricFamily("gateway_journal_seq", "Newest journal sequence number",
                                value=rt.state.last_seq)
        yield CounterMetricFamily("gateway_rule_evaluations", "Rule evaluations",
                                  value=rt.engine.evaluations)
        yield from _operations(rt)
        for name, collect in rt.extra_metrics.items():
            yield from collect()


def _operations(rt: Runtime) -> Iterable[Metric]:
    """Queue depths, ingest latency, journal backlog, logins, commands, the watchdog."""
    from gateway.watchdog import BUCKETS_S

    if rt.mqtt is not None:
        yield GaugeMetricFamily("gateway_mqtt_queue_depth",
                                "Messages received from the broker, not yet in a batch",
                                value=rt.mqtt.queued)
    yield GaugeMetricFamily("gateway_dead_letter_queue_depth",
                            "Rejected inputs waiting to be written to the dead-letter table",
                            value=len(rt._dead))
    for name, (counts, total) in sorted(rt.liveness.durations.items()):
        cumulative, buckets = 0, []
        for bound, n in zip([*map(str, BUCKETS_S), "+Inf"], counts, strict=True):
            cumulative += n
            buckets.append((bound, cumulative))
        yield HistogramMetricFamily(f"gateway_{name}_batch_seconds",
                                    f"Time one {name} batch spent in store writes and rules",
                                    buckets=buckets, sum_value=total[0])
    busy = rt.liveness.busy_for("ingest")
    yield GaugeMetricFamily("gateway_ingest_busy_seconds",
                            "Age of the batch being ingested now (0 when idle)",
                            value=busy or 0.0)
    cursor = rt.alarm_topic_cursor
    backlog = GaugeMetricFamily("gateway_journal_backlog",
                                "Journal rows a reader has not consumed yet", labels=["reader"])
    backlog.add_metric(["alarm_topic"], max(0, rt.state.last_seq - cursor))
    yield backlog
    yield CounterMetricFamily("gateway_login_failures", "Failed logins",
                              value=rt.login_limiter.failures)
    yield CounterMetricFamily("gateway_login_lockouts",
                              "Login lockouts started (per user name or client address)",
                              value=rt.login_limiter.lockouts)
    cmds = CounterMetricFamily("gateway_commands", "Device commands, by result",
                               labels=["result"])
    for result in ("ok", "failed", "denied", "rate_limited"):
        cmds.add_metric([result], rt.commands.results[result])
    yield cmds
    if rt.watchdog is not None:
        yield GaugeMetricFamily("gateway_watchdog_healthy",
                                "1 while the watchdog finds every loop healthy",
                                value=1 if rt.watchdog.healthy else 0)


def render_metrics(runtime: Runtime) -> tuple[bytes, str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_RuntimeCollector(runtime))
    return generate_latest(registry), CONTENT_TYPE_LATEST
