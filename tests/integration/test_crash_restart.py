"""SIGKILL the gateway while devices publish QoS 1: nothing lost, nothing stored twice."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import orjson
import pytest

from drivers.simulators.publisher import SimPublisher
from tests.support.mqtt import wait_until
from tests.support.servers import gateway, stored_points, write_config

pytestmark = pytest.mark.broker

DEVICES = [{"id": f"tank-{i}", "kind": "water_tank", "location": {"building": "B1"}}
           for i in range(20)]



def test_sigkill_during_publishing_loses_and_duplicates_nothing(tmp_path: Path, broker) -> None:
    cfg = write_config(tmp_path / "gw.yaml", broker_port=broker.port, data_dir=tmp_path / "data",
                       devices=DEVICES, rules=[])
    sent: list[tuple[str, int]] = []
    stop = threading.Event()
    pace = threading.Event()  # set: ~4,000 messages/s; clear: as fast as paho goes

    def publish(pub: SimPublisher) -> None:
        i = 0
        base = time.time()
        while not stop.is_set():
            dev = DEVICES[i % len(DEVICES)]["id"]
            ts = base + i * 0.001
            pub.publish(f"estate/test-site/B1/water_tank/{dev}/telemetry",
                        orjson.dumps({"ts": ts, "level_pct": 50.0}))
            sent.append((dev, round(ts * 1000)))
            i += 1
            if i % 50 == 0 and pace.is_set():
                time.sleep(0.01)

    with gateway(tmp_path, cfg) as gw:
        pub = SimPublisher("127.0.0.1", broker.port, prefix="estate", site="test-site")
        worker = threading.Thread(target=publish, args=(pub,))
        pace.set()
        worker.start()
        try:
            time.sleep(1.0)
            gw.kill()  # 1: SIGKILL mid-stream, batches in flight and unacked
            kills = [len(sent)]
            pace.clear()  # devices keep publishing fast; the broker queues for the session
            wait_until(lambda: len(sent) > kills[0] + 30_000, what="backlog built")
            pace.set()
            gw.start()
            time.sleep(0.3)
            gw.kill()  # 2: SIGKILL while the backlog is being drained
            kills.append(len(sent))
            gw.start()
            time.sleep(1.0)
        finally:
            stop.set()
            worker.join()
            pub.flush()
            pub.close()
        total = len(sent)
        wait_until(lambda: len(stored_points(gw.data_dir / "telemetry.db")) >= total, timeout=60,
                   what="all points stored")
    stored = stored_points(tmp_path / "data" / "telemetry.db")
    missing = set(sent) - stored
    extra = stored - set(sent)
    print(f"\npublished {total} (kills after {kills}); stored {len(stored)}; "
          f"missing {len(missing)}; unexpected {len(extra)}")
    assert not missing
    assert not extra
    assert len(stored) == total == len(set(sent))
