"""The alarm-topic publisher: every alarm transition, in journal order, at least once.

It publishes live rows from the state store's journal feed and reads the journal itself
when it is behind (a broker outage longer than the feed, a restart). These tests drive a
real Runtime and state store with a fake broker link that records what it acknowledged,
and check the published sequence against the journal: a row lost, published out of
order, or skipped after a restart fails them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from gateway.clock import FakeClock
from gateway.errors import DeviceUnavailable
from gateway.journal import ALARM_TYPE
from gateway.runtime import ALARM_TOPIC_CURSOR_KV, FLOOD_TYPE, NOTIFICATION_TYPE, Runtime
from gateway.types import Reading
from tests.support.runtime import runtime

HIGH = {"id": "tank-high", "select": {"devices": ["tank-1"]}, "priority": "high",
        "when": {"type": "threshold", "metric": "level_pct", "above": 90}}


class FakeLink:
    """The publisher's side of the MQTT driver: up or down; records acknowledged publishes."""

    def __init__(self) -> None:
        self.up = asyncio.Event()
        self.up.set()
        self.acked: list[dict[str, Any]] = []
        self.fail_next = 0  # publishes to refuse while still looking connected (link dying)

    async def wait_connected(self) -> None:
        await self.up.wait()

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1,
                      retain: bool = False) -> None:
        await asyncio.sleep(0)  # the broker's round trip: other tasks run meanwhile
        if not self.up.is_set() or self.fail_next > 0:
            self.fail_next -= 1
            raise DeviceUnavailable("mqtt", "not connected to the broker")
        assert qos == 1
        self.acked.append({"topic": topic, **orjson.loads(payload)})

    @property
    def seqs(self) -> list[int]:
        return [m["seq"] for m in self.acked]


async def _until(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.002)
    assert predicate(), what


@contextlib.asynccontextmanager
async def _publishing(rt: Runtime, link: FakeLink) -> Any:
    rt.mqtt = link  # type: ignore[assignment]
    task = asyncio.create_task(rt._alarm_publisher(), name="alarm_topic.publisher")
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _toggle(rt: Runtime, clock: FakeClock, n: int) -> None:
    """``n`` readings alternating above and below the limit: one transition each."""
    for _ in range(n):
        clock.advance(1)
        alarm = rt.book.alarms.get("tank-high:tank-1")
        level = 50.0 if alarm is not None and alarm.condition_active else 95.0
        await rt.ingest([Reading("tank-1", "level_pct", level, clock.now(), "%")])


def _alarm_seqs(rt: Runtime) -> list[int]:
    """Every journal row the alarm topic carries (transitions; notifications and floods on
    its ``/notifications`` subtopic), in journal order."""
    return [e.seq for e in rt.state.journal_sync(0, 10_000)
            if e.type in (ALARM_TYPE, NOTIFICATION_TYPE, FLOOD_TYPE)]


@contextlib.contextmanager
def _runtime(data: Path, clock: FakeClock) -> Iterator[Runtime]:
    with runtime(data, clock=clock, rules=[HIGH]) as rt:
        yield rt


async def test_publishes_every_transition_in_journal_order(tmp_path: Path) -> None:
    clock = FakeClock()
    link = FakeLink()
    with _runtime(tmp_path / "data", clock) as rt:
        async with _publishing(rt, link):
            await _toggle(rt, clock, 30)
            await _until(lambda: link.seqs == _alarm_seqs(rt), "all published")
        transitions = [m for m in link.acked if m["topic"] == "estate/test-site/alarms"]
        assert [m["data"]["to"] for m in transitions[:3]] == [
            "active_unacknowledged", "returned_unacknowledged", "active_unacknowledged"]
        assert {m["type"] for m in transitions} == {ALARM_TYPE}
        assert len(transitions) == 30
        # the flood those 30 started goes to the notifications topic, in its place
        assert FLOOD_TYPE in {m["type"] for m in link.acked
                              if m["topic"] == "estate/test-site/alarms/notifications"}
        # what was published is the stored row, as the journal reads it back
        stored = {e.seq: e for e in rt.state.journal_sync(0, 100)}
        first = link.acked[0]
        assert (first["id"], first["data"]) == (stored[first["seq"]].event_id,
                                                dict(stored[first["seq"]].data))


async def test_broker_outage_longer_than_the_feed_loses_nothing(tmp_path: Path) -> None:
    clock = FakeClock()
    link = FakeLink()
    with _runtime(tmp_path / "data", clock) as rt:
        rt.state.feed.capacity = 4  # the outage outlasts what the feed holds
        async with _publishing(rt, link):
            await _toggle(rt, clock, 5)
            await _until(lambda: len(link.acked) == 5, "first 5 published")
            link.fail_next = 3  # the connection drops under a publish: retried, not skipped
            await _toggle(rt, clock, 2)
            await _until(lambda: link.fail_next <= 0 and len(link.acked) == 7, "retried")
            assert rt.metrics.alarm_publish_failures == 3
            link.up.clear()  # broker gone: publishes fail, the publisher waits
            await _toggle(rt, clock, 25)
            assert len(link.acked) == 7
            link.up.set()
            await _until(lambda: link.seqs[-1] == _alarm_seqs(rt)[-1], "backlog published")
            await _toggle(rt, clock, 5)  # and live again, from the feed
            await _until(lambda: link.seqs[-1] == _alarm_seqs(rt)[-1], "live again")
        assert link.seqs == _alarm_seqs(rt)  # all of them, once each, in order
        assert rt.alarm_topic_cursor == rt.state.last_seq


async def test_restart_resumes_after_the_saved_cursor(tmp_path: Path) -> None:
    clock = FakeClock()
    data = tmp_path / "data"
    first, second = FakeLink(), FakeLink()
    with _runtime(data, clock) as rt:
        async with _publishing(rt, first):
            await _toggle(rt, clock, 6)
            await _until(lambda: len(first.acked) == 6, "published before the stop")
            first.up.clear()
            await _toggle(rt, clock, 4)  # committed, not yet published when it stops
        # close() saves the cursor the publisher had not saved yet
    with _runtime(data, clock) as rt:
        assert rt.state.load_kv_sync(ALARM_TOPIC_CURSOR_KV) == first.seqs[-1]
        async with _publishing(rt, second):
            await _until(lambda: len(second.acked) == 4, "the 4 unpublished ones")
            await _toggle(rt, clock, 2)
            await _until(lambda: second.seqs[-1] == _alarm_seqs(rt)[-1], "and the new ones")
        assert first.seqs + second.seqs == _alarm_seqs(rt)


async def test_crash_before_the_cursor_is_saved_publishes_again_never_skips(
        tmp_path: Path) -> None:
    clock = FakeClock()
    data = tmp_path / "data"
    first, second = FakeLink(), FakeLink()
    with _runtime(data, clock) as rt:
        async with _publishing(rt, first):
            await _toggle(rt, clock, 6)
            await _until(lambda: len(first.acked) == 6, "published before the crash")
        rt._cursor_moved_at = None  # a crash: the unsaved cursor is not written at close
    with _runtime(data, clock) as rt:
        saved = int(rt.state.load_kv_sync(ALARM_TOPIC_CURSOR_KV) or 0)
        assert saved < first.seqs[-1]  # saved at most once a second: behind
        async with _publishing(rt, second):
            await _toggle(rt, clock, 2)
            await _until(lambda: second.seqs[-1:] == _alarm_seqs(rt)[-1:], "caught up")
        everything = _alarm_seqs(rt)
        assert second.seqs == [s for s in everything if s > saved]  # in order, from the cursor
        assert sorted(set(first.seqs + second.seqs)) == everything  # nothing lost
