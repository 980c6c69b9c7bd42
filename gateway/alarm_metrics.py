"""Prometheus families for the alarm KPIs (EEMUA 191), from the plain dict the pipeline computes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

__all__ = ["alarm_kpi_families"]


def alarm_kpi_families(kpi: dict[str, Any]) -> Iterator[Metric]:
    rate = GaugeMetricFamily("gateway_alarm_activations_10min",
                             "Alarm activations in the last 10 minutes, by operator position",
                             labels=["position"])
    for position, n in kpi["activations_10min_by_position"].items():
        rate.add_metric([position], n)
    yield rate
    yield GaugeMetricFamily("gateway_alarm_activations_24h", "Alarm activations in 24 h",
                            value=kpi["activations_24h"])
    yield CounterMetricFamily("gateway_alarm_floods", "Alarm floods started (>limit per 10 min)",
                              value=kpi["floods_total"])
    flooding = GaugeMetricFamily("gateway_alarm_flooding", "1 while a position is in flood",
                                 labels=["position"])
    for position in kpi["flooding_positions"]:
        flooding.add_metric([position], 1)
    yield flooding
    yield GaugeMetricFamily("gateway_alarm_chattering",
                            "Alarms with 3+ activations within a minute (last hour)",
                            value=len(kpi["chattering"]))
    yield GaugeMetricFamily("gateway_alarm_standing", "Alarms active for over 24 h",
                            value=len(kpi["standing"]))
    yield CounterMetricFamily("gateway_alarm_notifications", "Grouped notifications sent",
                              value=kpi["notifications_total"])
    top = GaugeMetricFamily("gateway_alarm_top_activations",
                            "Activations in 24 h of the 10 most frequent alarms",
                            labels=["alarm_id"])
    for row in kpi["top10"]:
        top.add_metric([row["alarm_id"]], row["activations_24h"])
    yield top
