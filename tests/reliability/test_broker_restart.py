"""Mosquitto (persistence on) restarted under QoS 1 load: the gateway reconnects, loses nothing."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import orjson
import paho.mqtt.client as paho
import pytest

from tests.support.mqtt import wait_until
from tests.support.servers import gateway, stored_points, write_config

pytestmark = pytest.mark.broker

DEVICES = [{"id": f"lift-{i}", "kind": "elevator", "location": {"building": "B2"}}
           for i in range(10)]



def test_broker_restart_under_load_reconnects_fast_and_loses_nothing(tmp_path: Path,
                                                                     broker) -> None:
    cfg = write_config(tmp_path / "gw.yaml", broker_port=broker.port, data_dir=tmp_path / "data",
                       devices=DEVICES, rules=[])
    # devices keep their own persistent session: their unacknowledged messages are resent
    pub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="devices", clean_session=False)
    pub.max_inflight_messages_set(100)
    pub.max_queued_messages_set(0)
    pub.reconnect_delay_set(0.1, 0.5)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    sent: list[tuple[str, int]] = []
    stop = threading.Event()

    def publish() -> None:
        i = 0
        base = time.time()
        while not stop.is_set():
            dev = DEVICES[i % len(DEVICES)]["id"]
            ts = base + i * 0.001
            pub.publish(f"estate/test-site/B2/elevator/{dev}/telemetry",
                        orjson.dumps({"ts": ts, "floor": i % 30 + 1}), qos=1)
            sent.append((dev, round(ts * 1000)))
            i += 1
            if i % 20 == 0:
                time.sleep(0.01)  # ~2,000 messages/s

    with gateway(tmp_path, cfg) as gw:
        worker = threading.Thread(target=publish)
        worker.start()
        try:
            time.sleep(1.0)
            broker.stop()  # SIGTERM: mosquitto writes its persistence file and exits
            down_at = len(sent)
            time.sleep(2.0)
            broker.start()
            back = time.monotonic()

            def connected() -> bool:
                try:
                    return bool(httpx.get(f"{gw.url}/healthz", timeout=1).json()["mqtt_connected"])
                except httpx.HTTPError:
                    return False

            wait_until(connected, timeout=30, what="gateway reconnected")
            reconnect_s = time.monotonic() - back
            time.sleep(1.0)
        finally:
            stop.set()
            worker.join()
        wait_until(lambda: not pub._out_messages, timeout=30, what="devices' messages acked")
        pub.disconnect()
        pub.loop_stop()
        total = len(sent)
        try:
            wait_until(lambda: len(stored_points(gw.data_dir / "telemetry.db")) >= total, timeout=30,
                       what="all messages stored")
        except TimeoutError:
            stored = stored_points(gw.data_dir / "telemetry.db")
            lost = [i for i, s in enumerate(sent) if s not in stored]
            print("LOST", len(lost), lost[:5], lost[-5:], "down_at", down_at, "total", total)
            print(open(broker.workdir / "mosquitto.log").read()[-3000:])
            raise
    stored = stored_points(tmp_path / "data" / "telemetry.db")
    lost = set(sent) - stored
    print(f"\ninjected: broker restart after {down_at} of {total} QoS 1 messages; "
          f"gateway reconnected {reconnect_s:.2f} s after the broker returned; "
          f"stored {len(stored)}; lost {len(lost)}")
    assert not lost
    assert len(stored) == total
    assert reconnect_s < 5.0, "the backoff cap (reconnect_max_s: 5) bounds the reconnect time"
