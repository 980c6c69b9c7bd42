"""Prometheus exposition of the counters an operator asks about, read at scrape time.

The hot path only bumps plain integers; this collector turns them into metric families
when /metrics is scraped, so counting costs nothing per message.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
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
        t = rt.telemetry
        yield CounterMetricFamily("gateway_store_points_written", "Readings stored",
                                  value=t.points_written)
        yield CounterMetricFamily("gateway_store_duplicates", "Redelivered readings ignored",
                                  value=t.duplicates_ignored)
        yield GaugeMetricFamily("gateway_store_last_write_seconds",
                                "Duration of the last telemetry commit", value=t.last_write_s)
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
        for name, collect in rt.extra_metrics.items():
            yield from collect()


def render_metrics(runtime: Runtime) -> tuple[bytes, str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_RuntimeCollector(runtime))
    return generate_latest(registry), CONTENT_TYPE_LATEST
