"""Prometheus families for the cloud link: journal size and pruning, bridge and webhook."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from gateway.runtime import Runtime

__all__ = ["cloud_metrics"]


def cloud_metrics(rt: Runtime) -> Iterator[Metric]:
    ob = rt.outbox
    yield GaugeMetricFamily("gateway_journal_entries", "Entries in the journal (the outbox)",
                            value=ob.entries)
    yield CounterMetricFamily("gateway_journal_pruned", "Journal entries pruned",
                              value=ob.pruned_total)
    yield CounterMetricFamily("gateway_journal_forced_pruned",
                              "Entries pruned by the size bound before every consumer had "
                              "acknowledged them", value=ob.forced_total)
    acks = GaugeMetricFamily("gateway_journal_consumer_acked_seq",
                             "Highest seq each consumer acknowledged", labels=["consumer"])
    for name, seq in sorted(ob.acks.items()):
        acks.add_metric([name], seq)
    yield acks
    if rt.upstream is not None:
        m = rt.upstream.metrics
        yield GaugeMetricFamily("gateway_upstream_connected", "1 while the cloud broker is up",
                                value=1 if rt.upstream_link and rt.upstream_link.connected
                                else 0)
        yield GaugeMetricFamily("gateway_upstream_backlog", "Journal entries not yet sent",
                                value=m.backlog)
        yield CounterMetricFamily("gateway_upstream_published", "Entries published upstream",
                                  value=m.published)
        yield CounterMetricFamily("gateway_upstream_replayed", "Entries sent as replay",
                                  value=m.replayed)
        yield CounterMetricFamily("gateway_upstream_live_ahead",
                                  "Live alarms sent ahead of a replay", value=m.live_ahead)
        yield CounterMetricFamily("gateway_upstream_lost",
                                  "Entries pruned before they could be sent", value=m.lost)
    if rt.webhook is not None:
        w = rt.webhook.metrics
        yield CounterMetricFamily("gateway_webhook_delivered", "Work-order changes accepted",
                                  value=w.delivered)
        yield CounterMetricFamily("gateway_webhook_retries", "Webhook attempts retried",
                                  value=w.retries)
        yield CounterMetricFamily("gateway_webhook_refused",
                                  "Work-order changes refused for good (4xx) and skipped",
                                  value=w.refused)
    orders = GaugeMetricFamily("gateway_work_orders", "Work orders not yet closed",
                               labels=["status"])
    counts: dict[str, int] = {}
    for o in rt.work_orders.orders.values():
        counts[o.status.value] = counts.get(o.status.value, 0) + 1
    for status, n in sorted(counts.items()):
        orders.add_metric([status], n)
    yield orders
