"""The alarm topic across a broker outage and a gateway crash: every transition, in order.

A real mosquitto (persistence on) and the real gateway process. Transitions committed while
the broker is down (operator acknowledgements through the API) are published once it is
back, from the journal feed; transitions committed while it is down and followed by a
SIGKILL are published by the restarted gateway, read from the journal after its saved
cursor. What a subscriber with a persistent session received is checked against the
journal: nothing lost, nothing out of order (a repeat after a crash would be allowed:
at least once).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import orjson
import paho.mqtt.client as paho
import pytest

from drivers.simulators.publisher import SimPublisher
from tests.support.mqtt import wait_until
from tests.support.servers import Mosquitto, gateway, write_config

pytestmark = pytest.mark.broker

TANKS = [{"id": f"tank-{i}", "kind": "water_tank", "location": {"building": "B1"}}
         for i in range(1, 4)]
HIGH = {"id": "tank-high", "select": {"kind": "water_tank"}, "priority": "high",
        "when": {"type": "threshold", "metric": "level_pct", "above": 90}}
ALARMS = "estate/test-site/alarms"


class PersistentCollector:
    """A subscriber whose session survives the broker's restart (clean session off)."""

    def __init__(self, port: int) -> None:
        self.seqs: list[int] = []
        self._lock = threading.Lock()
        ready = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="alarm-watch",
                                  clean_session=False)
        self.client.on_connect = lambda c, *a: c.subscribe(ALARMS, qos=1)
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert ready.wait(10), "collector did not subscribe"

    def _on_message(self, client: object, userdata: object, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.seqs.append(orjson.loads(msg.payload)["seq"])

    def received(self) -> list[int]:
        with self._lock:
            return list(self.seqs)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _journal_alarm_seqs(data: Path) -> list[int]:
    with sqlite3.connect(f"file:{data / 'state.db'}?mode=ro", uri=True) as conn:
        return [r[0] for r in conn.execute(
            "SELECT seq FROM journal WHERE type = 'estate.alarm.transition' ORDER BY seq")]


def _saved_cursor(data: Path) -> int | None:
    with sqlite3.connect(f"file:{data / 'state.db'}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT value FROM kv WHERE key = 'alarm_topic.cursor'").fetchone()
    return int(row[0]) if row else None


def _raise_all(pub: SimPublisher, level: float) -> None:
    for tank in TANKS:
        time.sleep(0.002)  # readings are keyed by device time (ms)
        pub.publish(f"estate/test-site/B1/water_tank/{tank['id']}/telemetry",
                    orjson.dumps({"ts": time.time(), "level_pct": level}), wait=True)


def test_alarm_topic_survives_broker_outage_and_gateway_crash(tmp_path: Path,
                                                              broker: Mosquitto) -> None:
    data = tmp_path / "data"
    cfg = write_config(tmp_path / "gw.yaml", broker_port=broker.port, data_dir=data,
                       devices=TANKS, rules=[HIGH])
    watch = PersistentCollector(broker.port)
    try:
        with gateway(tmp_path, cfg) as gw:
            pub = SimPublisher("127.0.0.1", broker.port, prefix="estate", site="test-site")
            try:
                _raise_all(pub, 95.0)
                _raise_all(pub, 50.0)  # three raised, three returned (unacknowledged)
                wait_until(lambda: len(watch.received()) == 6, what="6 transitions heard")
            finally:
                pub.close()
            broker.stop()  # the outage: the operator acknowledges meanwhile
            for tank in TANKS:
                r = gw.post(f"/api/v1/alarms/tank-high:{tank['id']}/ack")
                assert r.status_code == 200, r.text
            assert len(_journal_alarm_seqs(data)) == 9  # committed, not yet published
            broker.start()
            wait_until(lambda: len(watch.received()) >= 9, timeout=30,
                       what="the acknowledgements published after the outage")
            assert watch.received() == _journal_alarm_seqs(data)  # all, once, in order
            # raised again and heard; the gateway saves its cursor within a second
            pub = SimPublisher("127.0.0.1", broker.port, prefix="estate", site="test-site")
            try:
                _raise_all(pub, 96.0)
            finally:
                pub.close()
            wait_until(lambda: len(watch.received()) == 12, what="3 more raised and heard")
            wait_until(lambda: _saved_cursor(data) == watch.received()[-1],
                       what="cursor saved")
            # acknowledged while the broker is down, then the gateway is killed: these
            # three are only in the journal, and the restarted gateway must read them there
            broker.stop()
            for tank in TANKS:
                assert gw.post(f"/api/v1/alarms/tank-high:{tank['id']}/ack").status_code == 200
            gw.kill()
            broker.start()
            gw.start()
            wait_until(lambda: watch.received()[-1:] == _journal_alarm_seqs(data)[-1:],
                       timeout=30, what="everything published after the restart")
        heard = watch.received()
        journal = _journal_alarm_seqs(data)
        assert sorted(set(heard)) == journal  # nothing lost
        # in order, except that a crash may repeat what followed the saved cursor
        first_repeat = next((i for i in range(1, len(heard)) if heard[i] <= heard[i - 1]),
                            len(heard))
        assert heard[:first_repeat] == journal[:first_repeat]
        if first_repeat < len(heard):  # resumed from the saved cursor, then in order again
            resumed = heard[first_repeat]
            assert heard[first_repeat:] == [seq for seq in journal if seq >= resumed]
    finally:
        watch.close()
