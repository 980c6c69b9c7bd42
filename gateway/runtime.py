"""The running gateway: builds drivers, stores and rules from config and runs them as one group.

Data flows one way: driver → ``ingest`` (validate, store, evaluate rules) → alarm book →
state store (alarm, transition and journal row in one transaction) → journal readers
(alarm topic publisher, pull API). Background work runs in one ``asyncio.TaskGroup`` of
named tasks; a task that fails takes the process down (systemd restarts it) rather than
leaving a half-working gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from drivers.mqtt.codec import MqttCodec
from drivers.mqtt.driver import MqttDriver, MqttPublisher, MqttSettings
from drivers.profiles import builtin_profiles
from gateway.audit import AuditEntry, record
from gateway.auth import AuthStore
from gateway.clock import Clock, SystemClock
from gateway.clockwatch import StepDetector
from gateway.commands import CommandService
from gateway.config import GatewayConfig
from gateway.errors import DeviceUnavailable, StoreError
from gateway.journal import ALARM_TYPE, alarm_draft, event_draft, to_cloudevent
from gateway.ratelimit import LoginLimiter
from gateway.outbox import Outbox
from gateway.store.deadband import ReportByException, policies_from_config
from gateway.store.groupcommit import GroupCommit
from gateway.store.retention import FillWatch, TelemetryPolicy
from gateway.upstream.bridge import UpstreamBridge
from gateway.store.sqlite import TelemetryStore
from gateway.store.state import DeadLetter, StateStore, Transaction
from gateway.workorders import StatusUpdateIn, WorkOrderDesk, WorkOrderError
from gateway.types import (
    Alarm,
    Device,
    DeviceStatus,
    Event,
    JournalEntry,
    Observation,
    Priority,
    Reading,
    Value,
    WorkOrder,
    WorkOrderStatus,
)
from gateway.store.state import JournalDraft
from rules.alarms import Change
from rules.engine import Decision
from rules.mute import Maintenance
from rules.pipeline import AlarmPipeline, Outcome
from gateway.watchdog import HealthCheck, Liveness, Notifier, Watchdog, watchdog_interval_s

__all__ = ["DeviceState", "Runtime"]

log = logging.getLogger(__name__)

PIPELINE_KV = "rules.pipeline.state"
RULE_INSTANCE_KV = "rules.i:"  # one kv row per (rule, device) with state
NOTIFICATION_TYPE = "estate.alarm.notification"
STORE_FULL_RULE = "store.full"
FLOOD_TYPE = "estate.alarm.flood"
ALARM_TOPIC_CURSOR_KV = "alarm_topic.cursor"
CURSOR_SAVE_S = 1.0  # how stale the saved alarm-topic cursor may get (repeats after a crash)


@dataclass(slots=True)
class DeviceState:
    """What the console's device board shows; kept in memory, rebuilt from traffic."""

    device: Device
    last_seen: float | None = None
    online: bool | None = None
    latest: dict[str, tuple[Value, float]] = field(default_factory=dict)
    maintenance: bool = False


@dataclass
class IngestMetrics:
    observations: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    events_duplicate: int = 0
    clock_steps: int = 0
    alarm_publish_failures: int = 0
    alarms_published: int = 0
    ingest_batches: int = 0
    ingest_seconds: float = 0.0


class Runtime:
    def __init__(self, config: GatewayConfig, *, clock: Clock | None = None,
                 data_dir: Path | None = None, config_path: Path | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.clock = clock or SystemClock()
        self.site = config.site.id
        self.data_dir = Path(data_dir or config.store.path)
        self.devices = {d.id: DeviceState(d) for d in config.device_list()}
        self.metrics = IngestMetrics()
        self.influx_enabled = config.influx is not None and config.influx.enabled
        self.telemetry = TelemetryStore(self.data_dir / "telemetry.db",
                                        policy=TelemetryPolicy.from_config(config.store),
                                        outbox=self.influx_enabled)
        # readings of several batches per transaction (alarms are decided before the wait)
        self.group_commit = GroupCommit(self.telemetry.write,
                                        linger_s=config.store.batch_interval_ms / 1000,
                                        max_points=config.store.batch_max)
        self.rbe = ReportByException(policies_from_config(config.store.report_by_exception))
        self.store_fill = (FillWatch(config.store.max_bytes, config.store.fill_alarm_pct)
                           if config.store.max_bytes else None)
        self._store_acted = (0, 0)  # readings pruned for space, dropped as full, last look
        self.influx: Any = None
        self.state = StateStore(self.data_dir / "state.db",
                                dead_letter_max=config.store.retention.dead_letters)
        self.alarms = AlarmPipeline(
            config.rules, [s.device for s in self.devices.values()],
            self.state.load_alarms_sync(), handling=config.alarms,
            timezone=config.site.timezone)
        self.alarms.restore(self.state.load_kv_sync(PIPELINE_KV),
                            self.state.load_kv_prefix_sync(RULE_INSTANCE_KV))
        self.alarms.load_history(self.state.activations_since_sync(time.time() - 86_400))
        for device_id in self.alarms.maintenance.devices:
            if device_id in self.devices:
                self.devices[device_id].maintenance = True
        self.engine = self.alarms.engine
        self.book = self.alarms.book
        self.auth = AuthStore(self.data_dir / "auth.db",
                              session_ttl_s=config.api.auth.session_ttl_s)
        a = config.api.auth
        self.login_limiter = LoginLimiter(self.clock, a.login_max_failures, a.login_window_s,
                                          a.login_lockout_s)
        self.work_orders = WorkOrderDesk(self.state, config.work_orders, self.engine.rules,
                                         {i: d.device for i, d in self.devices.items()},
                                         config.site.timezone)
        self.outbox = Outbox(self.state, config.cloud.journal, list(config.cloud.consumers))
        self.upstream: UpstreamBridge | None = None
        self.upstream_link: MqttPublisher | None = None
        self.upstream_port_override: int | None = None
        self.webhook: Any = None  # gateway.upstream.webhook.Webhook when configured
        self.work_order_status_topic = (f"{config.broker.topic_prefix}/{self.site}/"
                                        "work-orders/status")
        self._lock = asyncio.Lock()
        self.clock_watch = StepDetector()
        self._dead: list[DeadLetter] = []
        self._next_work_order_tick = 0.0
        self.journal_signal = asyncio.Condition()
        self.started_at = time.time()
        self.ready = asyncio.Event()
        self.heartbeats: dict[str, float] = {}
        self.mqtt: MqttDriver | None = None
        self.modbus: list[Any] = []
        # device id → the driver that owns it (the one path device commands take)
        self.command_drivers: dict[str, Any] = {}
        self.mqtt_codec: MqttCodec | None = None
        self.alarm_topic = f"{config.broker.topic_prefix}/{self.site}/alarms"
        # the last journal row the broker acknowledged on the alarm topic (kept in kv, saved
        # CURSOR_SAVE_S after it moves and at shutdown)
        self.alarm_topic_cursor = int(self.state.load_kv_sync(ALARM_TOPIC_CURSOR_KV) or 0)
        self._cursor_moved_at: float | None = None  # when it first moved past the saved one
        self.broker_port_override: int | None = None
        self.api_port_override: int | None = None
        self.api_server: Any = None
        # name → callable yielding prometheus metric families (drivers, sinks add theirs)
        self.extra_metrics: dict[str, Any] = {}
        self.extra_metrics["alarms"] = self._alarm_metrics
        # security and operations (issue 9): the command path and the watchdog's view
        self.liveness = Liveness(self.clock)
        self.watchdog: Watchdog | None = None
        self.commands = CommandService(config.commands,
                                       {i: st.device for i, st in self.devices.items()},
                                       self.command_drivers, self.apply, self.clock)
        self.extra_metrics["cloud"] = self._cloud_metrics

    # prometheus_client is imported on the first scrape, not before the gateway is ready
    def _alarm_metrics(self) -> Any:
        from gateway.alarm_metrics import alarm_kpi_families

        return alarm_kpi_families(self.alarms.kpis(self.clock.now()))

    def _cloud_metrics(self) -> Any:
        from gateway.upstream.metrics import cloud_metrics

        return cloud_metrics(self)

    def api_url(self) -> str | None:
        """The API's address once it listens (the real port when configured as 0)."""
        server = self.api_server
        if server is None or not server.started:
            return None
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    # -- pipeline ---------------------------------------------------------------------

    def reject(self, reason: str, source: str, payload: bytes, detail: str) -> None:
        """Count one rejected input and keep it (bounded) for inspection."""
        self.metrics.rejected[reason] += 1
        if len(self._dead) < 10_000:
            self._dead.append(DeadLetter(self.clock.now(), reason, source, payload, detail))

    async def ingest(self, batch: Sequence[Observation]) -> None:
        """The driver sink: returns once the batch is stored and its alarms are decided.

        Calls may overlap (the MQTT driver starts the next batch while this one's readings
        are still being written): batches are decided in the order of the calls, because
        the first thing a call awaits is its turn at ``_lock`` (an ``asyncio.Lock`` queues
        its waiters in order, and a free one is taken without yielding).
        """
        started = time.perf_counter()
        now = self.clock.now()
        readings: list[Reading] = []
        events: list[Event] = []
        statuses: list[DeviceStatus] = []
        devices = self.devices
        for obs in batch:
            st = devices.get(obs.device_id)
            if st is None:
                continue
            st.last_seen = now
            if isinstance(obs, Reading):
                readings.append(obs)
                st.latest[obs.metric] = (obs.value, obs.at)
                if st.online is not True:
                    st.online = True
            elif isinstance(obs, Event):
                events.append(obs)
            else:
                statuses.append(obs)
                st.online = obs.online
        self.metrics.observations["reading"] += len(readings)
        self.metrics.observations["event"] += len(events)
        self.metrics.observations["status"] += len(statuses)
        # The readings join the store's open write group (``GroupCommit``: written within
        # ``store.batch_interval_ms``, several batches per transaction) while the rules run
        # and their alarms are committed (the state store's own thread): an alarm waits
        # neither for this batch's telemetry write nor for the one before it. Both are
        # done before this returns (and the driver acks); if the write fails the batch is
        # redelivered and re-evaluated, and a threshold already raised is not raised twice.
        # Rules see every reading; report-by-exception only thins what is written.
        stored = (self.rbe.filter(readings) if self.rbe.policies else readings) \
            if readings else readings
        write = self.group_commit.submit(stored) if stored else None
        try:
            async with self._lock:  # the first await: this call's turn, in call order
                if events:  # under the lock: a redelivery in the batch before is committed
                    known = await self.state.known_event_ids(e.event_id for e in events)
                    if known:
                        self.metrics.events_duplicate += len(known)
                        events = [e for e in events if e.event_id not in known]
                now = await self._rules_now()  # under the lock, on a checked time scale
                outcome = self.alarms.observe([*readings, *events, *statuses], now)
                if events or outcome or self.alarms.dirty:
                    tx = Transaction(events=events, journal=[event_draft(e) for e in events])
                    await self._commit_outcome(outcome, tx)
        finally:
            if write is not None:
                await asyncio.shield(write)  # the group is shared with other batches
        self.metrics.ingest_batches += 1
        self.metrics.ingest_seconds += time.perf_counter() - started

    async def _commit_outcome(self, outcome: Outcome, tx: Transaction,
                              audit: AuditEntry | None = None) -> None:
        """Write an alarm-pipeline step with its journal rows and state; hold ``_lock``."""
        for change in outcome.changes:
            self._add_change(tx, change)
        if audit is not None:  # right after the change it records, in the same transaction
            record(tx, audit)
        tx.alarms.extend(outcome.touched)
        for n in outcome.notifications:
            tx.journal.append(JournalDraft(NOTIFICATION_TYPE, n.at, n.group, n.as_dict()))
        for f in outcome.floods:
            tx.journal.append(JournalDraft(FLOOD_TYPE, f.at, f.position, {
                "position": f.position, "state": "start" if f.started else "end",
                "activations": f.count}))
            log.warning("alarm flood %s at position %s: %d activations / 报警泛滥", "started"
                        if f.started else "ended", f.position, f.count)
        if outcome or self.alarms.dirty:
            tx.kv.update(self.alarms.persist(meta_key=PIPELINE_KV,
                                             instance_prefix=RULE_INSTANCE_KV))
        await self._apply(tx)

    def _add_decisions(self, tx: Transaction, decisions: Sequence[Decision]) -> Transaction:
        """System alarms decided outside the rule engine (SLA, journal or store filling):
        apply each to the alarm book and add what changed to ``tx``; hold ``_lock``."""
        for d in decisions:
            change = self.book.apply(d)
            if change is not None:
                self._add_change(tx, change)
        return tx

    def _add_change(self, tx: Transaction, change: Change) -> None:
        alarm, transition = change
        tx.alarms.append(alarm)
        tx.transitions.append(transition)
        tx.journal.append(alarm_draft(alarm, transition))
        self.work_orders.on_alarm(alarm, transition.to_state, tx, transition.at)

    async def apply(self, tx: Transaction) -> list[JournalEntry]:
        """Write one state transaction and wake the journal readers (for API modules)."""
        return await self._apply(tx)

    async def _apply(self, tx: Transaction) -> list[JournalEntry]:
        entries = await self.state.apply(tx)
        if entries:
            async with self.journal_signal:
                self.journal_signal.notify_all()
        return entries

    async def operator_change(self, change: Change, audit: AuditEntry | None = None) -> Alarm:
        """Store an operator's action (already applied to the book) with its journal row,
        and its audit row in the same transaction."""
        await self._commit_outcome(self.alarms.operator(change, self.clock.now()),
                                   Transaction(), audit)
        return change[0]

    async def set_maintenance(self, device_id: str, m: Maintenance | None,
                              by: str = "system") -> None:
        """Put a device in (``m``) or out (``None``) of maintenance; re-mutes its alarms.
        The toggle is audited in the same transaction as the alarms it re-mutes."""
        async with self._lock:
            now = await self._rules_now()
            outcome = self.alarms.set_maintenance(device_id, m, now)
            self.devices[device_id].maintenance = m is not None
            audit = AuditEntry(now, by, "device.maintenance", device_id, detail={
                "maintenance": m is not None,
                "reason": m.reason if m is not None else "",
                "until": m.until if m is not None else None})
            await self._commit_outcome(outcome, Transaction(), audit)


    # -- work orders ------------------------------------------------------------------

    async def tick_work_orders(self) -> None:
        """Scheduled orders that are due, SLA alarms to raise or clear (at ``clock.now()``)."""
        async with self._lock:
            now = self.clock.now()
            tx = Transaction()
            decisions = self.work_orders.tick(now, list(self.book.alarms.values()), tx)
            self._add_decisions(tx, decisions)
            await self._apply(tx)

    async def work_order_status(self, order_id: str, status: WorkOrderStatus, by: str,
                                note: str = "") -> WorkOrder:
        """A status update from the cloud or an engineer; raises WorkOrderError."""
        async with self._lock:
            now = self.clock.now()
            tx = Transaction()
            order = self.work_orders.set_status(order_id, status, by, note, tx, now)
            self._add_decisions(tx, self.work_orders.tick(now, list(self.book.alarms.values()),
                                                          tx))
            await self._apply(tx)
        return order

    async def _work_order_message(self, payload: bytes) -> None:
        """``<prefix>/<site>/work-orders/status``: the cloud's status updates over MQTT."""
        try:
            update = StatusUpdateIn.model_validate_json(payload)
            await self.work_order_status(update.id, WorkOrderStatus(update.status),
                                         update.by, update.note)
        except (ValueError, WorkOrderError) as exc:
            self.reject("work_order_status", self.work_order_status_topic, payload,
                        str(exc)[:500])

    # -- background loops -------------------------------------------------------------

    async def _ticker(self) -> None:
        """Timers: on/off delays, auto-clear, shelve expiry; also flushes dead letters."""
        while True:
            self.heartbeats["rules.ticker"] = self.clock.monotonic()
            async with self._lock:
                now = await self._rules_now()
                outcome = self.alarms.tick(now)
                if outcome or self.alarms.dirty:
                    await self._commit_outcome(outcome, Transaction())
                    for device_id, st in self.devices.items():
                        st.maintenance = device_id in self.alarms.maintenance.devices
            if self.clock.monotonic() >= self._next_work_order_tick:
                self._next_work_order_tick = (self.clock.monotonic()
                                              + self.config.work_orders.check_interval_s)
                await self.tick_work_orders()
            if self._dead:
                letters, self._dead = self._dead, []
                try:
                    await self.state.dead_letters(letters)
                except StoreError as exc:
                    log.warning("dead letters not kept: %s", exc)
            await self.clock.sleep(0.25)

    async def _rules_now(self) -> float:
        """The time for a rules step; hold ``_lock``.

        Every step samples the clocks here, under the lock, so the step detector sees the
        samples in order and a wall-clock step (NTP correction) is found, and the rule and
        alarm timers shifted and stored, before any step runs on the new scale.
        """
        now = self.clock.now()
        delta = self.clock_watch.feed(now, self.clock.monotonic())
        if delta is not None:
            self.metrics.clock_steps += 1
            log.warning("wall clock stepped by %+.1f s; rule timers shifted / 系统时间跳变",
                        delta)
            await self._commit_outcome(self.alarms.shift_time(delta, now), Transaction())
        return now

    async def _alarm_publisher(self) -> None:
        """Publish every alarm transition from the journal, QoS 1, in order, at least once.

        Live rows come from the state store's journal feed: the rows of each committed
        (fsynced) transaction, handed over as the commit returns, so an alarm is announced
        without reading it back on a thread. A publisher behind the feed (after a restart
        or a broker outage) reads the journal itself until it has caught up.

        The cursor (the last row the broker acknowledged) is saved ``CURSOR_SAVE_S`` after it
        moves and at shutdown rather than after every publish, so its fsync does
        not queue in front of the next alarm's commit. After a crash the rows since the
        saved cursor are published again: at least once, never lost; a repeat carries the
        same CloudEvents ``id`` and ``seq``.
        """
        assert self.mqtt is not None
        feed = self.state.feed
        cursor = self.alarm_topic_cursor
        while True:
            await self.mqtt.wait_connected()
            entries = feed.after(cursor, 500)
            if entries is None:  # behind the feed: the journal is the source of truth
                entries = await asyncio.to_thread(self.state.journal_sync, cursor, 500)
                if not entries and cursor < feed.base:  # (cursor, base] holds no rows
                    cursor = self.alarm_topic_cursor = feed.base
            if not entries:
                await self._save_alarm_topic_cursor()
                await feed.wait(cursor, self._cursor_save_in())
                continue
            for entry in entries:
                # transitions on the alarm topic; grouped notifications and flood start/end
                # on <alarm topic>/notifications (what a guard's phone or post screen shows)
                topic = self.alarm_topic if entry.type == ALARM_TYPE else (
                    f"{self.alarm_topic}/notifications"
                    if entry.type in (NOTIFICATION_TYPE, FLOOD_TYPE) else None)
                if topic is not None:
                    # OPT_NON_STR_KEYS: the same text as the row read back from the journal
                    body = orjson.dumps(to_cloudevent(entry, self.site),
                                        option=orjson.OPT_NON_STR_KEYS)
                    try:
                        await self.mqtt.publish(topic, body, qos=1)
                        self.metrics.alarms_published += 1
                    except DeviceUnavailable:
                        self.metrics.alarm_publish_failures += 1
                        await self.clock.sleep(0.1)  # until the driver sees the link is down
                        break
                cursor = self.alarm_topic_cursor = entry.seq
                if self._cursor_moved_at is None:
                    self._cursor_moved_at = time.monotonic()
            await self._save_alarm_topic_cursor()

    def _cursor_save_in(self) -> float:
        """Seconds until the moved alarm-topic cursor is due to be saved (1 s if it has not)."""
        if self._cursor_moved_at is None:
            return 1.0
        return max(0.0, self._cursor_moved_at + CURSOR_SAVE_S - time.monotonic())

    async def _save_alarm_topic_cursor(self) -> None:
        """Persist the alarm-topic cursor once it has been unsaved for ``CURSOR_SAVE_S``."""
        if self._cursor_moved_at is None or self._cursor_save_in() > 0:
            return
        cursor = self.alarm_topic_cursor
        await self.state.apply(Transaction(kv={ALARM_TOPIC_CURSOR_KV: cursor}))
        if cursor == self.alarm_topic_cursor:
            self._cursor_moved_at = None

    async def _maintenance(self) -> None:
        """Retention by age and the disk budget (telemetry only; alarms and journal never)."""
        next_maintain = self.clock.monotonic() + 300
        while True:
            await self.clock.sleep(10)
            if self.clock.monotonic() >= next_maintain:
                next_maintain = self.clock.monotonic() + 300
                try:
                    report = await self.telemetry.maintain(self.clock.now())
                    log.debug("store maintenance: %s", report)
                except StoreError as exc:
                    log.error("store maintenance failed: %s / 存储维护失败", exc)
            await self.check_store_fill()

    async def check_store_fill(self) -> None:
        """Raise ``store.full`` as the telemetry store nears ``store.max_bytes``, or when the
        policy (prune_oldest / drop_new) acted since the last look; clear it when there is
        room again and the policy has stopped acting. The policy acts either way."""
        if self.store_fill is None:
            return
        used = self.telemetry.used_bytes
        acted = (self.telemetry.points_pruned_for_space, self.telemetry.points_dropped_full)
        if acted != self._store_acted:
            # the policy acted since the last look, so the budget was reached: prune_oldest
            # leaves the store at its low-water mark (90 %, as the default alarm level), and
            # a look just after a prune would otherwise miss a store that is full
            used = max(used, self.store_fill.capacity)
            self._store_acted = acted
        verdict = self.store_fill.check(used)
        if verdict is None:
            return
        action, pct = verdict
        budget = self.store_fill.capacity
        decision = Decision(
            "raise" if action == "raise" else "clear", STORE_FULL_RULE, "gateway",
            self.clock.now(), Priority.HIGH,
            f"Telemetry store {pct:.0f}% of its {budget // 1_048_576} MiB budget: "
            f"{self.config.store.on_full} is applied to readings; alarms and journal are "
            f"kept / 遥测存储已用 {pct:.0f}%", latching=False, value=round(pct, 1))
        if action == "raise":
            log.warning("telemetry store at %.0f%% of store.max_bytes / 遥测存储将满", pct)
        async with self._lock:
            await self._apply(self._add_decisions(Transaction(), [decision]))

    async def _journal_retention(self) -> None:
        """Prune the journal by age and size; raise or clear the buffer-filling alarm."""
        while True:
            try:
                await self.outbox.prune(self.clock.now())
            except StoreError as exc:
                log.error("journal retention failed: %s", exc)
            decision = self.outbox.fill_decision(self.clock.now())
            if decision is not None:
                async with self._lock:
                    await self._apply(self._add_decisions(Transaction(), [decision]))
            await self.clock.sleep(self.config.cloud.journal.prune_interval_s)

    def _cloud_tasks(self) -> dict[str, Any]:
        """The journal's readers that push: upstream MQTT bridge and work-order webhook."""
        cloud = self.config.cloud
        tasks: dict[str, Any] = {"journal.retention": self._journal_retention()}
        u = cloud.upstream
        if u is not None and u.enabled:
            self.upstream_link = MqttPublisher(MqttSettings(
                host=u.host, port=self.upstream_port_override or u.port,
                client_id=u.client_id or f"estate-gateway-{self.site}-upstream",
                username=u.username, password=u.password(), ca_file=u.ca_file,
                cert_file=u.cert_file, key_file=u.key_file, keepalive_s=u.keepalive_s,
                reconnect_min_s=u.reconnect_min_s, reconnect_max_s=u.reconnect_max_s),
                self.clock, max_inflight=u.max_inflight)
            self.upstream = UpstreamBridge(
                self.state, self.outbox, self.upstream_link, u,
                u.topic or f"{self.config.broker.topic_prefix}/{self.site}/journal", self.site,
                self.clock, self.journal_signal, self._apply)
            tasks["upstream.link"] = self.upstream_link.run()
            tasks["upstream.bridge"] = self.upstream.run()
        if cloud.webhook is not None and cloud.webhook.enabled:
            from gateway.upstream.webhook import Webhook  # httpx only when a webhook is set

            self.webhook = Webhook(self.state, self.outbox, cloud.webhook, self.site,
                                   self.clock, self.journal_signal, self._apply)
            tasks["upstream.webhook"] = self.webhook.run()
        return tasks

    # -- wiring -----------------------------------------------------------------------

    def build_mqtt(self, port: int | None = None) -> MqttDriver:
        b = self.config.broker
        base = self.config_path.parent if self.config_path else Path.cwd()
        profiles = builtin_profiles([base / d for d in self.config.profile_dirs])
        self.mqtt_codec = MqttCodec(
            prefix=b.topic_prefix, site=self.site, devices=[s.device for s in
                                                           self.devices.values()],
            profiles=profiles, max_payload_bytes=b.max_payload_bytes)
        settings = MqttSettings(
            host=b.host, port=port or b.port, client_id=b.client_id or f"estate-gateway-{self.site}",
            username=b.username, password=b.password(),
            ca_file=b.tls.ca_file if b.tls else None, cert_file=b.tls.cert_file if b.tls else None,
            key_file=b.tls.key_file if b.tls else None,
            tls_insecure=b.tls.insecure if b.tls else False, keepalive_s=b.keepalive_s,
            reconnect_min_s=b.reconnect_min_s, reconnect_max_s=b.reconnect_max_s,
            batch_max=self.config.store.batch_max)
        sink = self.liveness.watch("ingest", self.ingest)  # the watchdog sees a stuck batch
        self.mqtt = MqttDriver(settings, self.mqtt_codec, sink, self.reject, self.clock,
                               handlers={self.work_order_status_topic: self._work_order_message})
        return self.mqtt

    def build_modbus(self) -> list[Any]:
        """One driver per configured bus; polls its devices, shares one connection."""
        cfg = self.config
        bound = [(d.to_device(), d.modbus) for d in cfg.devices if d.modbus is not None]
        if not bound:
            return []
        from drivers.modbus.driver import build_drivers
        from drivers.modbus.mapfile import load_maps

        base = self.config_path.parent if self.config_path else Path.cwd()
        maps = load_maps([base / d for d in cfg.modbus_map_dirs])
        self.modbus = build_drivers(cfg.modbus_buses, bound, maps,
                                    self.liveness.watch("ingest", self.ingest))
        for drv in self.modbus:
            for device_id in drv.device_ids:
                self.command_drivers[device_id] = drv
        self.extra_metrics["modbus"] = self._modbus_metrics
        return self.modbus

    def _modbus_metrics(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        polls = CounterMetricFamily("gateway_modbus_polls", "Modbus polls, by bus and outcome",
                                    labels=["bus", "outcome"])
        failures = CounterMetricFamily("gateway_modbus_failures", "Modbus failures by reason",
                                       labels=["bus", "reason"])
        latency = GaugeMetricFamily("gateway_modbus_poll_latency_seconds",
                                    "Modbus poll latency quantiles", labels=["bus", "quantile"])
        lag = GaugeMetricFamily("gateway_modbus_schedule_lag_seconds",
                                "How late polls start, quantiles", labels=["bus", "quantile"])
        online = GaugeMetricFamily("gateway_modbus_devices", "Modbus devices by availability",
                                   labels=["bus", "state"])
        for drv in self.modbus:
            m = drv.metrics()
            bus = str(m.get("bus", drv.id))
            polls.add_metric([bus, "ok"], m.get("polls_ok", 0))
            polls.add_metric([bus, "failed"], m.get("polls", 0) - m.get("polls_ok", 0))
            for reason, n in (m.get("failures") or {}).items():
                failures.add_metric([bus, reason], n)
            for fam, key in ((latency, "poll_latency_s"), (lag, "schedule_lag_s")):
                for q, v in (m.get(key) or {}).items():
                    if v is not None:
                        fam.add_metric([bus, q], v)
            online.add_metric([bus, "online"], m.get("devices_online", 0))
            online.add_metric([bus, "offline"], m.get("devices_offline", 0))
        yield from (polls, failures, latency, lag, online)

    async def run(self, *, serve_api: bool = True) -> None:
        """Run until cancelled."""
        mqtt = self.build_mqtt(self.broker_port_override)
        if not self.auth.has_admin():
            log.warning("no admin user yet: create one with `estate-gateway user add NAME "
                        "--role admin` / 尚无管理员账户")
        for device_id, st in self.devices.items():
            if st.device.transport == "mqtt":
                self.command_drivers[device_id] = mqtt
        modbus = self.build_modbus()
        try:
            await self._run_tasks(mqtt, modbus, serve_api)
        finally:
            await self.group_commit.close()  # groups not written were not acknowledged

    async def _run_tasks(self, mqtt: MqttDriver, modbus: list[Any], serve_api: bool) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(mqtt.run(), name="driver[mqtt]")
            for drv in modbus:
                tg.create_task(drv.run(), name=f"driver[{drv.id}]")
            tg.create_task(self._ticker(), name="rules.ticker")
            tg.create_task(self._alarm_publisher(), name="alarm_topic.publisher")
            tg.create_task(self._maintenance(), name="store.maintenance")
            if self.influx_enabled:
                from gateway.store.influx import InfluxSink

                assert self.config.influx is not None
                self.influx = InfluxSink(self.telemetry, self.config.influx, site=self.site,
                                         devices={k: v.device for k, v in self.devices.items()},
                                         clock=self.clock)
                tg.create_task(self.influx.run(), name="store.influx")
            watchdog = self._watchdog()
            if watchdog is not None:
                tg.create_task(watchdog.run(self.ready), name="service.watchdog")
            for name, coro in self._cloud_tasks().items():
                tg.create_task(coro, name=name)
            if serve_api and self.config.api.enabled:
                from gateway.api.server import serve

                tg.create_task(serve(self), name="api")
            await mqtt.wait_connected()
            self.ready.set()
            log.info("gateway ready: site %s, %d devices, %d rules / 网关已就绪", self.site,
                     len(self.devices), len(self.engine.rules))

    def _watchdog(self) -> Watchdog | None:
        """systemd's notify/watchdog protocol, when the process runs under systemd."""
        notifier = Notifier.from_env()
        if not notifier.enabled:
            return None
        health = HealthCheck(self.clock, self.config.watchdog, self.liveness, self.heartbeats)
        self.watchdog = Watchdog(notifier, health, self.clock, watchdog_interval_s())
        return self.watchdog

    def close(self) -> None:
        if self._cursor_moved_at is not None:  # not saved yet: save it at shutdown
            with contextlib.suppress(StoreError):
                self.state.apply_sync(Transaction(kv={ALARM_TOPIC_CURSOR_KV:
                                                      self.alarm_topic_cursor}))
                self._cursor_moved_at = None
        self.telemetry.close()
        self.state.close()
        self.auth.close()

    # -- views for the API ------------------------------------------------------------

    def alarm_list(self) -> list[Alarm]:
        return sorted(self.book.alarms.values(), key=lambda a: (int(a.priority),
                                                                -a.last_raised_at))

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.mqtt is None or self.mqtt.connected else "degraded",
            "mqtt_connected": bool(self.mqtt and self.mqtt.connected),
            "uptime_s": round(time.time() - self.started_at, 1),
            "journal_seq": self.state.last_seq,
        }
