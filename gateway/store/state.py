"""The state database: events, alarms and their transitions, the journal, dead letters.

Everything here is a record somebody may be held to, so it is written with
``synchronous=FULL``: a commit that returned survives a power cut. A state change and its
journal rows are written in one transaction (``apply``), so the outside world never sees
an alarm the box forgot, nor misses one it remembers.

The journal's ``seq`` is ``AUTOINCREMENT``: gateway-wide, monotonic, never reused even
after pruning, and independent of the wall clock (an NTP step cannot reorder it).

Each committed transaction's journal rows are also handed to ``feed`` (``gateway/feed.py``)
on the caller's event loop, in commit order, once the ``COMMIT`` has returned: live readers
(the alarm topic, the console stream) take them from there instead of reading them back.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from gateway.errors import StoreError
from gateway.feed import JournalFeed
from gateway.store.sqlite import SingleWriter, connect
from gateway.types import (
    Alarm,
    AlarmState,
    AlarmTransition,
    Event,
    JournalEntry,
    Priority,
)

if TYPE_CHECKING:
    from gateway.audit import AuditEntry

__all__ = ["Apply", "DeadLetter", "JournalDraft", "StateStore", "Transaction"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    at REAL NOT NULL,
    received_at REAL NOT NULL,
    attributes TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_device_at ON events (device_id, at);
CREATE TABLE IF NOT EXISTS alarms (
    alarm_id TEXT PRIMARY KEY,
    rule_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    state TEXT NOT NULL,
    priority INTEGER NOT NULL,
    message TEXT NOT NULL,
    first_raised_at REAL NOT NULL,
    last_raised_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    count INTEGER NOT NULL,
    condition_active INTEGER NOT NULL,
    value,
    latching INTEGER NOT NULL,
    acked_by TEXT, acked_at REAL,
    shelved_until REAL, shelved_by TEXT, shelve_reason TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alarm_transitions (
    id INTEGER PRIMARY KEY,
    alarm_id TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    at REAL NOT NULL,
    by TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alarm_transitions_alarm ON alarm_transitions (alarm_id, id);
-- start-up reads the last day's activations (alarm KPIs): a seek, not a scan of the years
CREATE INDEX IF NOT EXISTS alarm_transitions_at ON alarm_transitions (at);
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    time REAL NOT NULL,
    subject TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    reason TEXT NOT NULL,
    source TEXT NOT NULL,
    payload BLOB NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    audit_id TEXT NOT NULL UNIQUE,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    client TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_actor ON audit (actor, id);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
"""

ALARM_COLUMNS = (
    "alarm_id", "rule_id", "device_id", "state", "priority", "message", "first_raised_at",
    "last_raised_at", "updated_at", "count", "condition_active", "value", "latching",
    "acked_by", "acked_at", "shelved_until", "shelved_by", "shelve_reason",
    "active_since", "annunciated_at", "escalation", "grp", "suppressed_by",
)
# columns added after the first release: (name, declaration) added by ALTER TABLE on open
ALARM_COLUMNS_ADDED = (
    ("active_since", "REAL"), ("annunciated_at", "REAL"),
    ("escalation", "INTEGER NOT NULL DEFAULT 0"), ("grp", "TEXT NOT NULL DEFAULT 'console'"),
    ("suppressed_by", "TEXT"),
)


@dataclass(frozen=True, slots=True)
class JournalDraft:
    """A journal row before it has its ``seq``."""

    type: str
    time: float
    subject: str
    data: dict[str, Any]
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass(frozen=True, slots=True)
class DeadLetter:
    at: float
    reason: str
    source: str
    payload: bytes
    detail: str


@dataclass(slots=True)
class Transaction:
    """What one ``apply`` writes atomically."""

    events: list[Event] = field(default_factory=list)
    alarms: list[Alarm] = field(default_factory=list)
    transitions: list[AlarmTransition] = field(default_factory=list)
    journal: list[JournalDraft] = field(default_factory=list)
    kv: dict[str, Any] = field(default_factory=dict)
    audit: list[AuditEntry] = field(default_factory=list)  # gateway.audit.record adds these
    # rows of tables other modules own (work orders, consumers): (sql, params), in order
    statements: list[tuple[str, Sequence[Any]]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.events or self.alarms or self.transitions or self.journal or self.kv
                    or self.audit or self.statements)


Apply = Callable[[Transaction], Awaitable[list[JournalEntry]]]
"""Writes one transaction (``StateStore.apply`` or ``Runtime.apply``)."""


def _alarm_row(a: Alarm) -> tuple[Any, ...]:
    return (a.alarm_id, a.rule_id, a.device_id, a.state.value, int(a.priority), a.message,
            a.first_raised_at, a.last_raised_at, a.updated_at, a.count, int(a.condition_active),
            a.value, int(a.latching), a.acked_by, a.acked_at, a.shelved_until, a.shelved_by,
            a.shelve_reason, a.active_since, a.annunciated_at, a.escalation, a.group,
            a.suppressed_by)


def alarm_from_row(row: Sequence[Any]) -> Alarm:
    d = dict(zip(ALARM_COLUMNS, row, strict=True))
    d["state"] = AlarmState(d["state"])
    d["priority"] = Priority(d["priority"])
    d["condition_active"] = bool(d["condition_active"])
    d["latching"] = bool(d["latching"])
    d["group"] = d.pop("grp")
    return Alarm(**d)


class StateStore:
    def __init__(self, path: Path, *, dead_letter_max: int = 10_000) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.dead_letter_max = dead_letter_max
        self._writer = SingleWriter("store.state")
        self._conn: sqlite3.Connection = self._writer.call(self._open)
        self._read_local = threading.local()
        self._dead_since_trim = 0
        self._seq_before = 0  # the journal's seq when the last transaction began
        self.last_seq = self._writer.call(self._max_seq)
        self.feed = JournalFeed(self.last_seq)

    def _open(self) -> sqlite3.Connection:
        try:
            conn = connect(self.path, synchronous="FULL")
            conn.executescript(SCHEMA)
            have = {r[1] for r in conn.execute("PRAGMA table_info(alarms)")}
            for name, decl in ALARM_COLUMNS_ADDED:
                if name not in have:
                    conn.execute(f"ALTER TABLE alarms ADD COLUMN {name} {decl}")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open state store: {exc}") from exc
        return conn

    def _max_seq(self) -> int:
        row = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name='journal'").fetchone()
        return int(row[0]) if row else 0

    # -- writing ----------------------------------------------------------------------

    async def apply(self, tx: Transaction) -> list[JournalEntry]:
        """Write everything in ``tx`` in one transaction; returns the journal rows with seq.

        Events already stored (same ``event_id``, a QoS 1 redelivery) are skipped together
        with nothing else: their alarms were decided when they first arrived.
        """
        if not tx:
            return []
        return await self._writer.run(self._apply_and_announce, tx,
                                      asyncio.get_running_loop())

    def apply_sync(self, tx: Transaction) -> list[JournalEntry]:
        return self._writer.call(self._apply_sync, tx)

    def _apply_and_announce(self, tx: Transaction, loop: asyncio.AbstractEventLoop
                            ) -> list[JournalEntry]:
        """Commit on the writer thread, then queue the rows for the feed on ``loop``.

        Queued from this one thread right after each commit, so the feed receives
        transactions in commit order, and before the caller resumes: a reader is woken
        without waiting for the coroutine that wrote the rows to be scheduled.
        """
        out = self._apply_sync(tx)
        if out:
            loop.call_soon_threadsafe(self.feed.add, self._seq_before, out)
        return out

    def _apply_sync(self, tx: Transaction) -> list[JournalEntry]:
        conn = self._conn
        out: list[JournalEntry] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            if tx.journal:  # under the write lock: every row after it is this transaction's
                row = conn.execute(
                    "SELECT seq FROM sqlite_sequence WHERE name = 'journal'").fetchone()
                self._seq_before = int(row[0]) if row else 0
            if tx.events:
                conn.executemany(
                    "INSERT OR IGNORE INTO events (event_id, device_id, kind, at, received_at, "
                    "attributes) VALUES (?, ?, ?, ?, ?, ?)",
                    [(e.event_id, e.device_id, e.kind, e.at, e.received_at,
                      orjson.dumps(dict(e.attributes)).decode()) for e in tx.events])
            if tx.alarms:
                conn.executemany(
                    f"INSERT OR REPLACE INTO alarms ({', '.join(ALARM_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(ALARM_COLUMNS))})",
                    [_alarm_row(a) for a in tx.alarms])
            if tx.transitions:
                conn.executemany(
                    "INSERT INTO alarm_transitions (alarm_id, from_state, to_state, at, by, "
                    "reason) VALUES (?, ?, ?, ?, ?, ?)",
                    [(t.alarm_id, t.from_state.value, t.to_state.value, t.at, t.by, t.reason)
                     for t in tx.transitions])
            for sql, params in tx.statements:
                conn.execute(sql, params)
            for draft in tx.journal:
                data = orjson.dumps(draft.data, option=orjson.OPT_NON_STR_KEYS).decode()
                cur = conn.execute(
                    "INSERT OR IGNORE INTO journal (event_id, type, time, subject, data) "
                    "VALUES (?, ?, ?, ?, ?) RETURNING seq",
                    (draft.event_id, draft.type, draft.time, draft.subject, data))
                row = cur.fetchone()
                if row is not None:
                    out.append(JournalEntry(row[0], draft.event_id, draft.type, draft.time,
                                            draft.subject, draft.data))
            if tx.audit:
                conn.executemany(
                    "INSERT OR IGNORE INTO audit (audit_id, at, actor, action, target, outcome, "
                    "client, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(a.audit_id, a.at, a.actor, a.action, a.target, a.outcome, a.client,
                      orjson.dumps(dict(a.detail)).decode()) for a in tx.audit])
            for key, value in tx.kv.items():
                conn.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)",
                             (key, orjson.dumps(value).decode()))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"{self.path}: state write failed: {exc}") from exc
        if out:
            self.last_seq = out[-1].seq
        return out

    def known_event_ids_sync(self, ids: Iterable[str]) -> set[str]:
        ids = list(ids)
        if not ids:
            return set()
        found: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            q = f"SELECT event_id FROM events WHERE event_id IN ({','.join('?' * len(chunk))})"
            found.update(r[0] for r in self._reader().execute(q, chunk))
        return found

    async def known_event_ids(self, ids: Iterable[str]) -> set[str]:
        return await self._writer.run(self.known_event_ids_sync, list(ids))

    async def dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        await self._writer.run(self._dead_sync, letters)

    def _dead_sync(self, letters: Sequence[DeadLetter]) -> None:
        conn = self._conn
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO dead_letters (at, reason, source, payload, detail) VALUES (?,?,?,?,?)",
            [(d.at, d.reason, d.source[:512], d.payload[:4096], d.detail[:512])
             for d in letters])
        self._dead_since_trim += len(letters)
        if self._dead_since_trim >= max(10, self.dead_letter_max // 10):
            conn.execute("DELETE FROM dead_letters WHERE id <= (SELECT max(id) FROM "
                         "dead_letters) - ?", (self.dead_letter_max,))
            self._dead_since_trim = 0
        conn.execute("COMMIT")

    # -- reading ----------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._read_local, "conn", None)
        if conn is None:
            conn = connect(self.path, synchronous="FULL", readonly=True)
            self._read_local.conn = conn
        return conn

    def load_alarms_sync(self) -> list[Alarm]:
        cur = self._reader().execute(f"SELECT {', '.join(ALARM_COLUMNS)} FROM alarms")
        return [alarm_from_row(r) for r in cur]

    def load_kv_sync(self, key: str) -> Any:
        row = self._reader().execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return orjson.loads(row[0]) if row else None

    def load_kv_prefix_sync(self, prefix: str) -> dict[str, Any]:
        """Every kv entry whose key starts with ``prefix`` (prefix removed)."""
        cur = self._reader().execute(
            "SELECT key, value FROM kv WHERE key >= ? AND key < ?", (prefix, prefix + "\uffff"))
        return {k[len(prefix):]: orjson.loads(v) for k, v in cur}

    def transitions_sync(self, alarm_id: str) -> list[AlarmTransition]:
        cur = self._reader().execute(
            "SELECT alarm_id, from_state, to_state, at, by, reason FROM alarm_transitions "
            "WHERE alarm_id = ? ORDER BY id", (alarm_id,))
        return [AlarmTransition(a, AlarmState(f), AlarmState(t), at, by, r)
                for a, f, t, at, by, r in cur]

    def activations_since_sync(self, since: float) -> list[tuple[str, float]]:
        """(alarm id, time) of every activation (annunciated raise) since ``since``."""
        cur = self._reader().execute(
            # INDEXED BY: without statistics SQLite prefers scanning the whole table in id
            # order (no sort) to seeking the last day (measured: 96 ms vs 6 ms at 1M rows)
            "SELECT alarm_id, at FROM alarm_transitions INDEXED BY alarm_transitions_at "
            "WHERE at >= ? AND to_state = ? AND from_state IN (?, ?, ?) ORDER BY id", (since, AlarmState.ACTIVE_UNACK.value,
                                                         AlarmState.NORMAL.value,
                                                         AlarmState.RTN_UNACK.value,
                                                         AlarmState.LATCHED.value))
        return [(a, at) for a, at in cur]

    def journal_sync(self, after: int, limit: int) -> list[JournalEntry]:
        cur = self._reader().execute(
            "SELECT seq, event_id, type, time, subject, data FROM journal WHERE seq > ? "
            "ORDER BY seq LIMIT ?", (after, limit))
        return [JournalEntry(s, e, t, tm, sub, orjson.loads(d)) for s, e, t, tm, sub, d in cur]

    def journal_bounds_sync(self) -> tuple[int, int]:
        row = self._reader().execute("SELECT min(seq), max(seq) FROM journal").fetchone()
        return (row[0] or 0, row[1] or 0)

    def dead_letters_sync(self, limit: int = 100) -> list[DeadLetter]:
        cur = self._reader().execute(
            "SELECT at, reason, source, payload, detail FROM dead_letters ORDER BY id DESC "
            "LIMIT ?", (limit,))
        return [DeadLetter(at, r, s, bytes(p), d) for at, r, s, p, d in cur]

    def events_sync(self, device_id: str | None, limit: int = 100) -> list[Event]:
        if device_id is None:
            cur = self._reader().execute(
                "SELECT event_id, device_id, kind, at, received_at, attributes FROM events "
                "ORDER BY at DESC LIMIT ?", (limit,))
        else:
            cur = self._reader().execute(
                "SELECT event_id, device_id, kind, at, received_at, attributes FROM events "
                "WHERE device_id = ? ORDER BY at DESC LIMIT ?", (device_id, limit))
        return [Event(d, k, at, eid, orjson.loads(attrs), rcv)
                for eid, d, k, at, rcv, attrs in cur]

    def audit_sync(self, *, before: int | None = None, limit: int = 100,
                   actor: str | None = None, action: str | None = None
                   ) -> list[tuple[int, dict[str, Any]]]:
        """Audit rows, newest first, as (id, entry dict); ``before`` pages backwards."""
        where, args = [], []
        if before is not None:
            where.append("id < ?")
            args.append(before)
        if actor is not None:
            where.append("actor = ?")
            args.append(actor)
        if action is not None:
            where.append("action = ?")
            args.append(action)
        sql = ("SELECT id, audit_id, at, actor, action, target, outcome, client, detail "
               "FROM audit" + (f" WHERE {' AND '.join(where)}" if where else "") +
               " ORDER BY id DESC LIMIT ?")
        cur = self._reader().execute(sql, (*args, limit))
        return [(i, {"audit_id": aid, "at": at, "actor": who, "action": act, "target": tgt,
                     "outcome": out, "client": cl, "detail": orjson.loads(det)})
                for i, aid, at, who, act, tgt, out, cl, det in cur]

    def count_sync(self, table: str) -> int:
        if table not in ("events", "alarms", "alarm_transitions", "journal", "dead_letters",
                         "audit"):
            raise ValueError(table)
        return int(self._reader().execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    # -- for modules that own their own tables (work orders, journal consumers) -------

    def ensure_schema_sync(self, script: str) -> None:
        """Create another module's tables (``CREATE ... IF NOT EXISTS``) in this database."""
        self._writer.call(self._conn.executescript, script)

    def query_sync(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A read on this thread's read-only connection (never blocks the writer)."""
        return self._reader().execute(sql, params).fetchall()

    async def run_write(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(conn, *args)`` on the writer thread (maintenance such as pruning)."""
        return await self._writer.run(fn, self._conn, *args)

    def close(self) -> None:
        try:
            self._writer.call(self._conn.close)
        finally:
            self._writer.close()
