"""The shipped config/mosquitto.conf and mosquitto.acl, run by a real mosquitto: anonymous
clients are refused, the gateway reads every device, a device writes only its own topics."""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from tests.support.mqtt import wait_until
from tests.support.servers import REPO, free_port, wait_port

pytestmark = pytest.mark.broker


@pytest.fixture
def shipped_broker() -> Iterator[int]:
    for tool in ("mosquitto", "mosquitto_passwd"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install mosquitto)")
    d = Path(tempfile.mkdtemp(prefix="mq-shipped-"))
    d.chmod(0o755)  # mosquitto started as root drops to its own user
    port = free_port()
    conf = (REPO / "config/mosquitto.conf").read_text()
    assert "listener 1883 127.0.0.1\n" in conf
    conf = (conf.replace("listener 1883 127.0.0.1", f"listener {port} 127.0.0.1")
            .replace("/var/lib/mosquitto/", f"{d}/")
            .replace("/etc/mosquitto/estate.passwd", f"{d}/estate.passwd")
            .replace("/etc/mosquitto/estate.acl", f"{d}/estate.acl"))
    (d / "mosquitto.conf").write_text(conf + f"log_dest file {d}/mosquitto.log\n")
    shutil.copy(REPO / "config/mosquitto.acl", d / "estate.acl")
    pw = d / "estate.passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pw), "gateway", "gw-secret-1"],
                   check=True, capture_output=True)
    subprocess.run(["mosquitto_passwd", "-b", str(pw), "tank-1", "tank-secret-1"], check=True,
                   capture_output=True)
    for f in d.iterdir():
        f.chmod(0o644)
    proc = subprocess.Popen(["mosquitto", "-c", str(d / "mosquitto.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        shutil.rmtree(d, ignore_errors=True)


class Client:
    def __init__(self, port: int, user: str | None, password: str | None) -> None:
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"t-{user}")
        if user:
            self.c.username_pw_set(user, password)
        self.connected = threading.Event()
        self.refused = threading.Event()
        self.subscribed = threading.Event()
        self.got: list[str] = []
        self.c.on_connect = self._on_connect
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        self.c.on_message = lambda c, u, m: self.got.append(m.topic)
        self.c.loop_start()  # first: connect() after it reuses its socket pair (no leak)
        self.c.connect("127.0.0.1", port)

    def _on_connect(self, c: object, u: object, flags: object, rc: paho.ReasonCode,
                    props: object = None) -> None:
        (self.refused if rc.is_failure else self.connected).set()

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def test_anonymous_clients_are_refused(shipped_broker: int) -> None:
    c = Client(shipped_broker, None, None)
    try:
        assert c.refused.wait(10)
    finally:
        c.close()


def test_gateway_reads_devices_and_devices_write_only_their_own_topics(
        shipped_broker: int) -> None:
    gw = Client(shipped_broker, "gateway", "gw-secret-1")
    dev = Client(shipped_broker, "tank-1", "tank-secret-1")
    try:
        assert gw.connected.wait(10) and dev.connected.wait(10)
        gw.c.subscribe("estate/#", qos=1)
        assert gw.subscribed.wait(10)
        own = "estate/s1/B1/water_tank/tank-1/telemetry"
        other = "estate/s1/B1/water_tank/tank-2/telemetry"
        alarms = "estate/s1/alarms"
        for topic in (other, alarms, own):  # the last one is allowed: once it arrives,
            dev.c.publish(topic, b"{}", qos=1).wait_for_publish(10)  # the others were seen
        wait_until(lambda: own in gw.got, timeout=10, what="the device's own reading")
        assert gw.got == [own]
    finally:
        gw.close()
        dev.close()
