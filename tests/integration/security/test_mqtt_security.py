"""The MQTT driver against a real mosquitto that refuses anonymous clients: a password file
(mosquitto_passwd) on one listener, mutual TLS (certificates made here with openssl) on
another. Readings flow with the right credentials; the wrong ones never connect."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
import paho.mqtt.client as paho
import pytest

from drivers.mqtt.codec import MqttCodec
from drivers.mqtt.driver import MqttDriver, MqttSettings
from drivers.profiles import builtin_profiles
from gateway.clock import SystemClock
from gateway.types import Device, DeviceKind, Location, Observation, Reading
from tests.support.servers import free_port, wait_port

pytestmark = pytest.mark.broker

TANK = Device("tank-1", DeviceKind.WATER_TANK, Location("B1"), "mqtt", "native")
TOPIC = "estate/test-site/B1/water_tank/tank-1/telemetry"
GW_PASSWORD = "gateway-secret-1"
DEV_PASSWORD = "device-secret-1"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(d: Path) -> None:
    """A CA, a broker certificate for 127.0.0.1 and a client certificate for the gateway."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=estate-test-ca", "-keyout", "ca.key", "-out", "ca.crt", cwd=d)
    for name, cn, ext in (("broker", "127.0.0.1", "subjectAltName=IP:127.0.0.1"),
                          ("gateway", "estate-gateway", "extendedKeyUsage=clientAuth")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}", "-keyout",
                 f"{name}.key", "-out", f"{name}.csr", cwd=d)
        (d / f"{name}.ext").write_text(ext + "\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out",
                 f"{name}.crt", cwd=d)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=rogue", "-keyout", "rogue.key", "-out", "rogue.crt", cwd=d)


@dataclass
class SecureBroker:
    plain_port: int
    tls_port: int
    dir: Path


@pytest.fixture
def secure_broker() -> Iterator[SecureBroker]:
    for tool in ("mosquitto", "mosquitto_passwd", "openssl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install mosquitto openssl)")
    # started as root, mosquitto drops to its own user: it must be able to reach the files,
    # and pytest's tmp_path lives under a 0700 directory
    d = Path(tempfile.mkdtemp(prefix="mq-secure-"))
    d.chmod(0o755)
    make_pki(d)
    pw = d / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pw), "gateway", GW_PASSWORD],
                   check=True, capture_output=True)
    subprocess.run(["mosquitto_passwd", "-b", str(pw), "device", DEV_PASSWORD], check=True,
                   capture_output=True)
    for f in d.iterdir():
        f.chmod(0o644)  # mosquitto may drop to its own user
    b = SecureBroker(free_port(), free_port(), d)
    conf = d / "mosquitto.conf"
    conf.write_text(
        "per_listener_settings true\n"
        f"listener {b.plain_port} 127.0.0.1\nallow_anonymous false\npassword_file {pw}\n"
        f"listener {b.tls_port} 127.0.0.1\nallow_anonymous false\n"
        f"cafile {d}/ca.crt\ncertfile {d}/broker.crt\nkeyfile {d}/broker.key\n"
        "require_certificate true\nuse_identity_as_username true\n"
        f"log_dest file {d}/mosquitto.log\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_port(b.plain_port)
        wait_port(b.tls_port)
        yield b
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        shutil.rmtree(d, ignore_errors=True)


def publish_reading(port: int, level: float) -> None:
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="device-tank-1")
    c.username_pw_set("device", DEV_PASSWORD)
    c.loop_start()  # first: connect() after it reuses its socket pair (no leak)
    c.connect("127.0.0.1", port)
    try:
        c.publish(TOPIC, orjson.dumps({"ts": time.time(), "level_pct": level}),
                  qos=1).wait_for_publish(10)
    finally:
        c.disconnect()
        c.loop_stop()


@contextlib.asynccontextmanager
async def running(settings: MqttSettings) -> AsyncIterator[tuple[MqttDriver, asyncio.Queue]]:
    got: asyncio.Queue[Observation] = asyncio.Queue()

    async def sink(batch: Sequence[Observation]) -> None:
        for o in batch:
            got.put_nowait(o)

    codec = MqttCodec(prefix="estate", site="test-site", devices=[TANK],
                      profiles=builtin_profiles(), max_payload_bytes=65536)
    driver = MqttDriver(settings, codec, sink, lambda *a: None, SystemClock())
    task = asyncio.create_task(driver.run(), name="driver[mqtt]")
    try:
        yield driver, got
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _reading(got: asyncio.Queue, port: int, level: float) -> Reading:
    await asyncio.to_thread(publish_reading, port, level)
    async with asyncio.timeout(10):
        while True:
            o = await got.get()
            if isinstance(o, Reading) and o.value == level:
                return o


async def test_driver_with_password_receives_readings(secure_broker: SecureBroker) -> None:
    settings = MqttSettings("127.0.0.1", secure_broker.plain_port, "gw-pw", username="gateway",
                            password=GW_PASSWORD, reconnect_min_s=0.1, reconnect_max_s=0.5)
    async with running(settings) as (driver, got):
        async with asyncio.timeout(10):
            await driver.wait_connected()
        reading = await _reading(got, secure_broker.plain_port, 42.0)
        assert (reading.device_id, reading.metric) == ("tank-1", "level_pct")


async def _refused(settings: MqttSettings, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="drivers.mqtt.driver")
    async with running(settings) as (driver, _):
        # a TLS handshake the broker aborts surfaces only at the client's 10 s connect timeout
        async with asyncio.timeout(30):
            while not any("unreachable" in r.getMessage() for r in caplog.records):
                await asyncio.sleep(0.05)
        assert not driver.connected
        assert driver.metrics.connects == 0


async def test_driver_with_wrong_password_is_refused(secure_broker: SecureBroker,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    await _refused(MqttSettings("127.0.0.1", secure_broker.plain_port, "gw-bad",
                                username="gateway", password="not-the-password",
                                reconnect_min_s=0.1, reconnect_max_s=0.5), caplog)


async def test_anonymous_driver_is_refused(secure_broker: SecureBroker,
                                           caplog: pytest.LogCaptureFixture) -> None:
    await _refused(MqttSettings("127.0.0.1", secure_broker.plain_port, "gw-anon",
                                reconnect_min_s=0.1, reconnect_max_s=0.5), caplog)


async def test_driver_with_client_certificate_over_tls(secure_broker: SecureBroker) -> None:
    d = secure_broker.dir
    settings = MqttSettings("127.0.0.1", secure_broker.tls_port, "gw-tls",
                            ca_file=str(d / "ca.crt"), cert_file=str(d / "gateway.crt"),
                            key_file=str(d / "gateway.key"), reconnect_min_s=0.1,
                            reconnect_max_s=0.5)
    async with running(settings) as (driver, got):
        async with asyncio.timeout(10):
            await driver.wait_connected()
        reading = await _reading(got, secure_broker.plain_port, 17.5)
        assert reading.device_id == "tank-1"


async def test_driver_with_an_untrusted_certificate_is_refused(
        secure_broker: SecureBroker, caplog: pytest.LogCaptureFixture) -> None:
    d = secure_broker.dir
    await _refused(MqttSettings("127.0.0.1", secure_broker.tls_port, "gw-rogue",
                                ca_file=str(d / "ca.crt"), cert_file=str(d / "rogue.crt"),
                                key_file=str(d / "rogue.key"), reconnect_min_s=0.1,
                                reconnect_max_s=0.5), caplog)
