"""The operator console in a real browser (Debian's chromium, headless, via Playwright for
Python) against a real gateway process and mosquitto, fed by simulated devices.

One gateway serves the whole module. Every page is checked for console errors at the end
of each test. Set ``ESTATE_SCREENSHOT_DIR=docs/screenshots`` to refresh the committed
screenshots; otherwise they go to a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from drivers.simulators.publisher import SimPublisher
from tests.support.mqtt import wait_until
from tests.support.servers import REPO, GatewayProcess, free_port, mosquitto, write_config

pytestmark = [pytest.mark.browser, pytest.mark.broker]

CHROMIUM = "/usr/bin/chromium"
SITE = "test-site"
PASSWORD = "console-test-pw-1"
DEVICES = [
    {"id": "lift-b3-2", "kind": "elevator", "location": {"building": "B3"},
     "name": "3号楼2号梯"},
    {"id": "door-b3-roof", "kind": "access_gate",
     "location": {"building": "B3", "floor": 18, "zone": "rooftop"}, "name": "3号楼天台门"},
    {"id": "gate-north", "kind": "access_gate", "location": {"building": "gate-north"},
     "name": "北门门禁"},
    {"id": "tank-b1", "kind": "water_tank", "location": {"building": "B1", "zone": "pump-room"},
     "name": "1号楼生活水箱"},
    {"id": "barrier-p1-in", "kind": "parking_barrier", "location": {"building": "P1"},
     "name": "地库入口道闸"},
]
RULES = [
    {"id": "elevator-entrapment", "name": "电梯困人 / Passenger trapped",
     "select": {"kind": "elevator"}, "priority": "emergency", "latch": True,
     "when": {"type": "event", "event": "elevator.entrapment"}},
    {"id": "door-forced-open", "name": "门被强行打开 / Door forced open",
     "select": {"kind": "access_gate"}, "priority": "emergency", "latch": True,
     "when": {"type": "event", "event": "door.forced_open"}},
    {"id": "tank-level-low", "name": "水箱低水位 / Tank level low",
     "select": {"kind": "water_tank"}, "priority": "high",
     "when": {"type": "threshold", "metric": "level_pct", "below": 20, "clear": 25,
              "for_s": 0}},
    {"id": "barrier-open-too-long", "name": "道闸抬杆超时 / Barrier open too long",
     "select": {"kind": "parking_barrier"}, "priority": "medium",
     "when": {"type": "threshold", "metric": "open_s", "above": 300, "clear": 0, "for_s": 0}},
]


def _skip_without_browser() -> Any:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Debian's chromium is not installed at {CHROMIUM} "
                    "(apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright for Python is not installed (pip install playwright)")
    if shutil.which("mosquitto") is None:
        pytest.skip("Debian's mosquitto is not installed (apt-get install mosquitto)")
    return sync_playwright


class Estate:
    """The module's gateway, broker, simulated devices and browser."""

    def __init__(self, gw: GatewayProcess, pub: SimPublisher, browser: Any) -> None:
        self.gw = gw
        self.pub = pub
        self.browser = browser
        self.errors: list[str] = []
        self.seq = 0

    def topic(self, device_id: str, channel: str) -> str:
        dev = next(d for d in DEVICES if d["id"] == device_id)
        return f"estate/{SITE}/{dev['location']['building']}/{dev['kind']}/{device_id}/{channel}"

    def event(self, device_id: str, kind: str, **attrs: Any) -> float:
        """Publish a device event; returns the time just before publishing."""
        self.seq += 1
        body = {"ts": time.time(), "id": f"{device_id}-test-{self.seq}", "event": kind,
                "attrs": attrs}
        started = time.time()
        self.pub.publish(self.topic(device_id, "event"), orjson.dumps(body), wait=True)
        return started

    def telemetry(self, device_id: str, ts: float, **values: Any) -> None:
        self.pub.publish(self.topic(device_id, "telemetry"),
                         orjson.dumps({"ts": ts, **values}), wait=True)

    def page(self, *, user: str = "op1", locale: str = "en-US",
             viewport: tuple[int, int] = (1920, 1080)) -> Any:
        ctx = self.browser.new_context(locale=locale, timezone_id="Europe/London",
                                       viewport={"width": viewport[0], "height": viewport[1]})
        page = ctx.new_page()
        page.on("console", lambda m: m.type == "error" and self.errors.append(
            f"{page.url}: {m.text}"))
        page.on("pageerror", lambda e: self.errors.append(f"{page.url}: {e}"))
        page.goto(f"{self.gw.url}/console/")
        page.fill("#login-user", user)
        page.fill("#login-pass", PASSWORD)
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("#live-dot.on", timeout=10_000)
        return page

    def raise_alarm(self, device_id: str, kind: str, alarm_id: str) -> None:
        """Make sure ``alarm_id`` is open (so each test also runs on its own)."""
        self.event(device_id, kind)
        wait_until(lambda: alarm_id in {a["alarm_id"] for a in
                                        self.gw.get("/api/v1/alarms").json()},
                   timeout=10, what=f"{alarm_id} open")

    def alarm(self, alarm_id: str) -> dict[str, Any]:
        return self.gw.get(f"/api/v1/alarms/{alarm_id}").json()


def _add_user(data_dir: Path, name: str, role: str) -> None:
    subprocess.run([sys.executable, "-m", "gateway", "user", "add", name, "--role", role,
                    "--data-dir", str(data_dir), "--password-env", "TEST_PW"],
                   check=True, capture_output=True, cwd=REPO,
                   env={**os.environ, "PYTHONPATH": str(REPO), "TEST_PW": PASSWORD})


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estate]:
    sync_playwright = _skip_without_browser()
    tmp = tmp_path_factory.mktemp("console")
    (tmp / "broker").mkdir()
    with mosquitto(tmp / "broker") as broker:
        data = tmp / "data"
        data.mkdir()
        cfg = write_config(tmp / "gw.yaml", broker_port=broker.port, data_dir=data,
                           devices=DEVICES, rules=RULES, site=SITE,
                           extra={"site": {"id": SITE, "name": "阳光花园 Sunny Garden",
                                           "timezone": "Asia/Shanghai"},
                                  # a low flood threshold, so the banner shows in this scene
                                  "console": {"flood_alarms": 3, "flood_window_s": 600}})
        for name, role in (("op1", "operator"), ("op2", "operator"), ("guard", "viewer")):
            _add_user(data, name, role)
        gw = GatewayProcess(cfg, data, free_port(), tmp / "gateway.log")
        gw.token = gw.make_token("admin")
        gw.start()
        pub = SimPublisher("127.0.0.1", broker.port, prefix="estate", site=SITE,
                           client_id="console-test-sim")
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=CHROMIUM,
                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
                try:
                    yield Estate(gw, pub, browser)
                finally:
                    browser.close()
        finally:
            pub.close()
            gw.stop()


@pytest.fixture
def no_console_errors(estate: Estate) -> Iterator[None]:
    estate.errors.clear()
    yield
    assert estate.errors == [], "the console logged errors"


def test_alarm_appears_live_and_acknowledging_in_the_page_changes_the_api(
        estate: Estate, no_console_errors: None) -> None:
    page = estate.page()
    page.evaluate("window.__notReloaded = true")
    started = estate.event("lift-b3-2", "elevator.entrapment", floor=7)
    row = page.wait_for_selector('tr[data-alarm-id="elevator-entrapment:lift-b3-2"]',
                                 timeout=5_000)
    seen = time.time()
    arrived_ms = page.evaluate("window.__console.lastAlarmAt")
    latency = arrived_ms / 1000 - started
    print(f"\nalarm publish → DOM: {latency * 1000:.0f} ms (test observed "
          f"{(seen - started) * 1000:.0f} ms)")
    assert page.evaluate("window.__notReloaded") is True  # never reloaded
    assert page.evaluate("window.__console.snapshots") == 1  # pushed, not refetched
    assert latency < 2.0
    assert "Passenger trapped" in row.inner_text()
    assert row.get_attribute("data-state") == "active_unacknowledged"
    # emergency priority sounds (WebAudio), and the time is shown in the site's zone
    assert page.evaluate("window.__console.soundLog.some(s => s.priority === 1)")
    alarm = estate.alarm("elevator-entrapment:lift-b3-2")
    raised = datetime.fromisoformat(alarm["last_raised_at"].replace("Z", "+00:00"))
    assert raised.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%H:%M:%S") in row.inner_text()

    # silencing stops the sound but is not acknowledging
    page.click("#silence")
    assert page.inner_text("#silence").startswith("Silenced")
    assert estate.alarm("elevator-entrapment:lift-b3-2")["state"] == "active_unacknowledged"
    assert row.get_attribute("data-state") == "active_unacknowledged"

    row.query_selector('button[data-action="ack"]').click()
    wait_until(lambda: estate.alarm("elevator-entrapment:lift-b3-2")["state"]
               == "active_acknowledged", timeout=5, what="acknowledged in the API")
    alarm = estate.alarm("elevator-entrapment:lift-b3-2")
    assert alarm["acked_by"] == "op1"
    assert alarm["transitions"][-1]["by"] == "op1"
    page.wait_for_selector('tr[data-alarm-id="elevator-entrapment:lift-b3-2"]'
                           '[data-state="active_acknowledged"]', timeout=5_000)
    page.context.close()


def test_shelving_hides_the_alarm_for_the_chosen_time(estate: Estate,
                                                      no_console_errors: None) -> None:
    page = estate.page()
    estate.event("door-b3-roof", "door.forced_open")
    estate.event("gate-north", "door.forced_open")
    roof = 'tr[data-alarm-id="door-forced-open:door-b3-roof"]'
    north = 'tr[data-alarm-id="door-forced-open:gate-north"]'
    page.wait_for_selector(roof, timeout=5_000)
    page.wait_for_selector(north, timeout=5_000)
    # shelve from the page: reason and duration in the dialog
    page.click(f'{roof} button[data-action="shelve"]')
    page.fill("#dlg-reason", "contractor repairing the roof door")
    page.select_option("#dlg-minutes", "15")
    before = time.time()
    page.click("#dialog [data-submit]")
    page.wait_for_selector(roof, state="detached", timeout=5_000)
    alarm = estate.alarm("door-forced-open:door-b3-roof")
    assert alarm["state"] == "shelved"
    assert alarm["shelve_reason"] == "contractor repairing the roof door"
    until = datetime.fromisoformat(alarm["shelved_until"].replace("Z", "+00:00")).timestamp()
    assert 15 * 60 - 5 < until - before < 15 * 60 + 5
    assert "1" in page.inner_text("#alarm-footer")  # "1 shelved (hidden)"
    # a short shelve ends by itself: the alarm comes back without a reload
    r = estate.gw.post("/api/v1/alarms/door-forced-open:gate-north/shelve",
                       {"reason": "checking", "minutes": 0.05})
    assert r.status_code == 200, r.text
    page.wait_for_selector(north, state="detached", timeout=5_000)
    hidden_at = time.monotonic()
    page.wait_for_selector(north, timeout=10_000)
    assert time.monotonic() - hidden_at > 1.5  # stayed hidden for (about) its 3 s
    assert estate.alarm("door-forced-open:gate-north")["state"] == "active_unacknowledged"
    page.context.close()


def test_language_switch_shows_glossary_labels(estate: Estate, no_console_errors: None) -> None:
    estate.raise_alarm("lift-b3-2", "elevator.entrapment", "elevator-entrapment:lift-b3-2")
    page = estate.page(locale="en-US")
    assert page.inner_text("nav a[data-route=alarms]").startswith("Alarms")
    page.click("#lang-switch")
    page.wait_for_selector("nav a[data-route=alarms]:has-text('报警')")
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    nav = page.inner_text("nav")
    assert "设备" in nav and "交接班" in nav
    rows = page.inner_text("#alarm-rows")
    assert "紧急" in rows and "电梯困人" in rows and "载人电梯" in rows
    page.goto(f"{estate.gw.url}/console/#/devices")  # the choice is remembered
    page.wait_for_selector(".card")
    assert "道闸" in page.inner_text("#board")
    page.context.close()
    zh = estate.page(locale="zh-CN")  # a new browser chooses by its language
    assert zh.inner_text("nav a[data-route=alarms]").startswith("报警")
    zh.context.close()


def test_a_guard_on_a_phone_sees_alarms_but_no_operator_actions(
        estate: Estate, no_console_errors: None) -> None:
    estate.raise_alarm("lift-b3-2", "elevator.entrapment", "elevator-entrapment:lift-b3-2")
    page = estate.page(user="guard", locale="zh-CN", viewport=(390, 844))
    page.wait_for_selector('tr[data-alarm-id="elevator-entrapment:lift-b3-2"]')
    assert page.query_selector("button[data-action=ack], button[data-action=shelve]") is None
    assert page.query_selector("button[data-action=device]") is not None
    assert page.is_hidden("#duty-banner")  # a viewer is never asked to take the shift
    page.context.close()


def test_shift_handover_is_confirmed_by_the_outgoing_and_accepted_by_the_incoming(
        estate: Estate, no_console_errors: None) -> None:
    estate.raise_alarm("gate-north", "door.forced_open", "door-forced-open:gate-north")
    out = estate.page(user="op1")
    assert out.is_visible("#duty-banner")  # nobody on duty: the operator is asked to start
    out.click("#duty-banner")
    out.click('[data-shift="start"]')
    out.wait_for_selector("#handover-form")
    assert out.inner_text("#shift-timer").startswith("On duty op1 0:00:0")
    open_ids = estate.gw.get("/api/v1/shifts/current").json()["open_alarms"]
    assert open_ids  # the alarms raised by the tests above
    for box in out.query_selector_all('#handover-form input[type="checkbox"]'):
        box.check()
    out.fill("#handover-form textarea[name=note]", "roof door contractor until 18:00")
    out.click("#handover-form button[type=submit]")
    out.wait_for_selector('[data-shift="withdraw"]')

    inc = estate.page(user="op2")
    inc.goto(f"{estate.gw.url}/console/#/shift")
    inc.wait_for_selector("#accept-form")
    assert "roof door contractor" in inc.inner_text("#accept-form")
    for box in inc.query_selector_all('#accept-form input[type="checkbox"]'):
        box.check()
    inc.click("#accept-form button[type=submit]")
    inc.wait_for_selector("#handover-form")  # op2 is now on duty
    state = estate.gw.get("/api/v1/shifts/current").json()
    assert state["current"]["operator"] == "op2"
    assert state["pending"] is None
    history = estate.gw.get("/api/v1/shifts/history").json()
    assert history[0]["from_operator"] == "op1" and history[0]["accepted_by"] == "op2"
    assert sorted(history[0]["alarms"]) == sorted(open_ids)
    # recorded in the journal the cloud reads
    types = [e["type"] for e in estate.gw.get("/api/v1/events", limit=5000).json()["events"]]
    assert {"estate.shift.started", "estate.shift.handover_offered",
            "estate.shift.handover_accepted"} <= set(types)
    # the outgoing console learns of it live
    out.wait_for_selector("#shift-timer:has-text('op2')", timeout=5_000)
    out.context.close()
    inc.context.close()


def test_screenshots_of_alarms_board_and_device_page(estate: Estate, no_console_errors: None,
                                                     tmp_path: Path) -> None:
    out_dir = Path(os.environ.get("ESTATE_SCREENSHOT_DIR") or tmp_path)
    if not out_dir.is_absolute():
        out_dir = REPO / out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for i in range(40):  # a tank draining over the last 40 minutes, then low
        estate.telemetry("tank-b1", now - (40 - i) * 60, level_pct=round(62 - i * 1.2, 1),
                         pump_running=False, outlet_pressure_mpa=0.3, ph=7.2)
    estate.telemetry("barrier-p1-in", now, barrier_state="open", open_s=420.0,
                     zone_occupancy=61, zone_capacity=109, loop_ok=True)
    estate.event("lift-b3-2", "elevator.entrapment", floor=7)
    estate.event("door-b3-roof", "door.forced_open")
    estate.telemetry("lift-b3-2", now, mode="normal", floor=7, direction="idle",
                     door_state="closed", car_speed_mps=0.0, in_service=False)
    wait_until(lambda: {"tank-level-low:tank-b1", "barrier-open-too-long:barrier-p1-in"}
               <= {a["alarm_id"] for a in estate.gw.get("/api/v1/alarms").json()},
               timeout=10, what="tank and barrier alarms")
    shots = []
    for lang, locale in (("zh", "zh-CN"), ("en", "en-US")):
        page = estate.page(user="op2", locale=locale)  # on duty after the handover test
        page.wait_for_selector('tr[data-alarm-id="tank-level-low:tank-b1"]')
        page.mouse.move(0, 0)
        flood = page.wait_for_selector("#flood:not([hidden])", timeout=5_000).inner_text()
        assert ("报警泛滥" if lang == "zh" else "Alarm flood") in flood
        shots.append(out_dir / f"alarms-{lang}.png")
        page.screenshot(path=shots[-1])
        page.click("nav a[data-route=devices]")
        page.wait_for_selector('.card[data-device-id="tank-b1"]')
        shots.append(out_dir / f"devices-{lang}.png")
        page.screenshot(path=shots[-1])
        page.click('.card[data-device-id="tank-b1"]')
        page.wait_for_selector("#chart svg path.line")
        assert page.query_selector('#latest tr[data-metric="level_pct"]') is not None
        shots.append(out_dir / f"device-{lang}.png")
        page.screenshot(path=shots[-1])
        page.context.close()
    phone = estate.page(user="op2", locale="zh-CN", viewport=(390, 844))
    phone.wait_for_selector('tr[data-alarm-id="tank-level-low:tank-b1"]')
    shots.append(out_dir / "alarms-phone-zh.png")
    phone.screenshot(path=shots[-1], full_page=True)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll
    phone.context.close()
    for shot in shots:
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
