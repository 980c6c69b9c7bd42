"""``estate-gateway rules test FILE``: rule unit tests in YAML, like ``promtool test rules``.

A test file names rule files (or shipped packs), devices, and test cases; each case feeds
readings, events, status changes and operator actions at given times (seconds from the
start) and states which alarms, in which states, exist at given times. The same
``AlarmPipeline`` as the running gateway evaluates them on a simulated clock::

    rule_files: [pack:water_tank]          # or paths relative to this file
    timezone: Asia/Shanghai                 # default UTC
    start: "2026-01-05T08:00:00+08:00"      # default 2026-01-05T00:00:00Z (a Monday)
    devices:
      - {id: tank-1, kind: water_tank, location: {building: B1}}
    tests:
      - name: level low after 30 s
        input:
          - {at: 0, device: tank-1, metric: level_pct, values: "50 30 15x4", every_s: 10}
          - {at: 5, device: tank-1, event: pump.fault, attrs: {pump: "1"}}
          - {at: 6, device: tank-1, status: offline}
          - {at: 90, ack: water.level_low:tank-1, by: op-li}
          - {at: 95, maintenance: tank-1}           # in maintenance; add end: true to end it
        expect:
          - at: 59
            alarms: []                      # no alarm other than normal
          - at: 61
            alarms:
              - {alarm: water.level_low:tank-1, state: active_unacknowledged, priority: medium}

Only the fields an expectation gives are compared; ``alarms`` lists every alarm not in
``normal`` state. A failed expectation prints a unified diff (expected → got).
"""

from __future__ import annotations

import difflib
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gateway.types import (
    Alarm,
    AlarmState,
    Device,
    DeviceKind,
    DeviceStatus,
    Event,
    Location,
    Observation,
    Priority,
    Reading,
    Value,
)
from rules.alarms import AlarmActionError, Change
from rules.config import AlarmHandlingConfig, RuleConfig
from rules.mute import Maintenance
from rules.pipeline import AlarmPipeline

__all__ = ["run_files"]

PACK_PREFIX = "pack:"
DEFAULT_START = "2026-01-05T00:00:00+00:00"
MAX_STEPS = 500_000
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86_400, None: 1}


def _seconds(v: float | str) -> float:
    if isinstance(v, int | float):
        return float(v)
    m = _DURATION.match(v.strip())
    if not m:
        raise ValueError(f"{v!r} is not a time: use seconds or 90s / 10m / 2h / 1d")
    return float(m.group(1)) * _UNITS[m.group(2)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class DeviceIn(_Strict):
    id: str
    kind: DeviceKind
    location: dict[str, str | int] = Field(default_factory=lambda: {"building": "B1"})
    tags: list[str] = Field(default_factory=list)

    def to_device(self) -> Device:
        loc = self.location
        return Device(self.id, self.kind, Location(str(loc.get("building", "B1")),
                                                   None if loc.get("floor") is None
                                                   else str(loc["floor"]),
                                                   None if loc.get("zone") is None
                                                   else str(loc["zone"])),
                      "mqtt", "native", tags=tuple(self.tags))


class InputIn(_Strict):
    at: float | str
    device: str | None = None
    metric: str | None = None
    value: Value | None = None
    values: str | list[Value] | None = None
    every_s: float | str = 1
    event: str | None = None
    attrs: dict[str, Value] = Field(default_factory=dict)
    status: Literal["online", "offline"] | None = None
    ack: str | None = None
    reset: str | None = None
    shelve: str | None = None
    unshelve: str | None = None
    comment: str | None = None
    text: str = ""
    minutes: float = 60
    by: str = "test-operator"
    maintenance: str | None = None
    end: bool = False  # with ``maintenance``: take the device out of maintenance

    @model_validator(mode="after")
    def _one_thing(self) -> InputIn:
        kinds = [self.metric is not None, self.event is not None, self.status is not None,
                 *(x is not None for x in (self.ack, self.reset, self.shelve, self.unshelve,
                                           self.comment, self.maintenance))]
        if sum(kinds) != 1:
            raise ValueError("each input is one of: metric (+ value/values), event, status, "
                             "ack, reset, shelve, unshelve, comment, maintenance")
        if (self.metric or self.event or self.status) and not self.device:
            raise ValueError("a reading, event or status needs 'device'")
        if self.metric is not None and (self.value is None) == (self.values is None):
            raise ValueError("a reading needs 'value' or 'values'")
        return self


class AlarmExpect(_Strict):
    alarm: str
    state: AlarmState | None = None
    priority: Literal["emergency", "high", "medium", "low"] | None = None
    count: int | None = None
    group: str | None = None


class ExpectIn(_Strict):
    at: float | str
    alarms: list[AlarmExpect]


class CaseIn(_Strict):
    name: str
    input: list[InputIn] = Field(default_factory=list)
    expect: list[ExpectIn] = Field(min_length=1)


class TestFileIn(_Strict):
    rule_files: list[str] = Field(default_factory=list)
    rules: list[RuleConfig] = Field(default_factory=list)
    timezone: str = "UTC"
    start: str = DEFAULT_START
    alarms: AlarmHandlingConfig = Field(default_factory=AlarmHandlingConfig)
    devices: list[DeviceIn] = Field(min_length=1)
    tests: list[CaseIn] = Field(min_length=1)


def _series(spec: str | list[Value]) -> list[Value]:
    """``"50 30 15x4"`` → [50, 30, 15, 15, 15, 15]; words stay strings (``open closed``)."""
    if isinstance(spec, list):
        return spec
    out: list[Value] = []
    for word in spec.split():
        m = re.match(r"^(.+?)x(\d+)$", word)
        value, times = (m.group(1), int(m.group(2))) if m else (word, 1)
        parsed: Value
        if value in ("true", "false"):
            parsed = value == "true"
        else:
            try:
                parsed = float(value)
            except ValueError:
                parsed = value
        out.extend([parsed] * times)
    return out


def _rule_path(base: Path, name: str) -> Path:
    if name.startswith(PACK_PREFIX):
        return Path(__file__).parent / "packs" / f"{name.removeprefix(PACK_PREFIX)}.yaml"
    p = Path(name)
    return p if p.is_absolute() else base.parent / p


class TestFileError(Exception):
    pass


def load_test_file(path: Path) -> tuple[TestFileIn, list[RuleConfig]]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TestFileError(f"{path}: cannot read: {exc} / 无法读取") from exc
    try:
        spec = TestFileIn.model_validate(data)
    except ValidationError as exc:
        raise TestFileError(_render(path, exc)) from exc
    rules = list(spec.rules)
    for name in spec.rule_files:
        rp = _rule_path(path, name)
        try:
            rdata = yaml.safe_load(rp.read_text(encoding="utf-8")) or {}
            rules += [RuleConfig.model_validate(r) for r in rdata.get("rules", [])]
        except OSError as exc:
            raise TestFileError(f"{path}: rule file {name!r}: {exc.strerror} / 无法读取") from exc
        except ValidationError as exc:
            raise TestFileError(_render(rp, exc)) from exc
    return spec, rules


def _render(path: Path, exc: ValidationError) -> str:
    lines = [f"{path}: {exc.error_count()} problem(s) / 处错误"]
    for e in exc.errors(include_url=False):
        where = ".".join(str(p) for p in e["loc"])
        lines.append(f"  {where}: {e['msg']}")
    return "\n".join(lines)


# -- running -----------------------------------------------------------------------------

def _inputs(case: CaseIn, start: float) -> list[tuple[float, int, InputIn, Value | None]]:
    timed: list[tuple[float, int, InputIn, Value | None]] = []
    for i, inp in enumerate(case.input):
        t0 = start + _seconds(inp.at)
        if inp.metric is not None and inp.values is not None:
            step = _seconds(inp.every_s)
            for k, v in enumerate(_series(inp.values)):
                timed.append((t0 + k * step, i, inp, v))
        else:
            timed.append((t0, i, inp, inp.value))
    timed.sort(key=lambda x: (x[0], x[1]))
    return timed


def _observation(inp: InputIn, value: Value | None, now: float, n: int) -> Observation:
    assert inp.device is not None
    if inp.metric is not None:
        assert value is not None
        return Reading(inp.device, inp.metric, value, now)
    if inp.event is not None:
        return Event(inp.device, inp.event, now, f"test-{n}", dict(inp.attrs))
    return DeviceStatus(inp.device, inp.status == "online", now)


def _operator(p: AlarmPipeline, inp: InputIn, now: float) -> Change | None:
    book = p.book
    if inp.maintenance is not None:
        m = None if inp.end else Maintenance(inp.maintenance, inp.by, now, inp.text or "test")
        p.set_maintenance(inp.maintenance, m, now)
        return None
    if inp.ack is not None:
        return book.acknowledge(inp.ack, inp.by, now, inp.text)
    if inp.reset is not None:
        return book.reset(inp.reset, inp.by, now, inp.text)
    if inp.shelve is not None:
        return book.shelve(inp.shelve, inp.by, now, now + inp.minutes * 60,
                           inp.text or "test")
    if inp.unshelve is not None:
        return book.unshelve(inp.unshelve, inp.by, now)
    assert inp.comment is not None
    return book.comment(inp.comment, inp.by, now, inp.text or "note")


def _describe(alarm: Alarm, want: AlarmExpect | None) -> str:
    fields = [f"state={alarm.state.value}"]
    if want is None or want.priority is not None:
        fields.append(f"priority={Priority(alarm.priority).name.lower()}")
    if want is None or want.count is not None:
        fields.append(f"count={alarm.count}")
    if want is not None and want.group is not None:
        fields.append(f"group={alarm.group}")
    return f"{alarm.alarm_id}: {', '.join(fields)}"


def _expected_line(want: AlarmExpect) -> str:
    fields = [f"state={want.state.value}" if want.state else "state=*"]
    if want.priority is not None:
        fields.append(f"priority={want.priority}")
    if want.count is not None:
        fields.append(f"count={want.count}")
    if want.group is not None:
        fields.append(f"group={want.group}")
    return f"{want.alarm}: {', '.join(fields)}"


def _check(p: AlarmPipeline, exp: ExpectIn) -> list[str]:
    """Diff lines, empty when the alarms match."""
    wants = {w.alarm: w for w in exp.alarms}
    actual = {a.alarm_id: a for a in p.book.alarms.values()
              if a.state != AlarmState.NORMAL or a.alarm_id in wants}
    expected_lines = sorted(_expected_line(w) for w in exp.alarms)
    got_lines = []
    for aid, alarm in sorted(actual.items()):
        want = wants.get(aid)
        line = _describe(alarm, want)
        if want is not None and want.state is None:
            line = line.replace(f"state={alarm.state.value}", "state=*", 1)
        got_lines.append(line)
    for aid, want in wants.items():
        if aid not in actual:  # never raised: normal, if that is all the test asks
            plain = want.state == AlarmState.NORMAL and want.priority is None and \
                want.count is None and want.group is None
            got_lines.append(_expected_line(want) if plain else f"{aid}: (no such alarm)")
    got_lines.sort()
    if got_lines == expected_lines:
        return []
    return list(difflib.unified_diff(expected_lines, got_lines, "expected", "got", lineterm="",
                                     n=len(expected_lines) + len(got_lines)))


def run_case(spec: TestFileIn, rules: list[RuleConfig], case: CaseIn) -> list[str]:
    """Run one case; returns its failure report (empty when it passes)."""
    start = datetime.fromisoformat(spec.start).timestamp()
    devices = [d.to_device() for d in spec.devices]
    p = AlarmPipeline(rules, devices, handling=spec.alarms, timezone=spec.timezone)
    inputs = _inputs(case, start)
    expects = sorted(((start + _seconds(e.at), e) for e in case.expect), key=lambda x: x[0])
    end = max([t for t, *_ in inputs] + [t for t, _ in expects])
    marks = sorted({t for t, *_ in inputs} | {t for t, _ in expects})
    failures: list[str] = []
    now = start
    p.engine.start(now)
    i = e = steps = 0
    while now <= end:
        batch: list[Observation] = []
        while i < len(inputs) and inputs[i][0] <= now:
            _, _, inp, value = inputs[i]
            if inp.device is not None:
                batch.append(_observation(inp, value, now, i))
            else:
                if batch:
                    p.observe(batch, now)
                    batch = []
                try:
                    change = _operator(p, inp, now)
                except AlarmActionError as exc:
                    failures.append(f"  at {now - start:g} s: {exc}")
                    change = None
                if change is not None:
                    p.operator(change, now)
            i += 1
        if batch:
            p.observe(batch, now)
        p.tick(now)
        while e < len(expects) and expects[e][0] <= now:
            diff = _check(p, expects[e][1])
            if diff:
                failures.append(f"  at {expects[e][0] - start:g} s:")
                failures.extend(f"    {line}" for line in diff)
            e += 1
        # next step: the next whole second, or an input/expectation mark before it
        nxt = now + 1.0
        for m in marks:
            if now < m < nxt:
                nxt = m
                break
        now = nxt
        steps += 1
        if steps > MAX_STEPS:
            failures.append(f"  test runs over {MAX_STEPS} steps; shorten it")
            break
    return failures


def run_files(paths: list[str], out: Any = None) -> int:
    """Run every case of every file; 0 when all pass, 1 on a failure, 2 on a bad file."""
    import sys

    out = out or sys.stdout
    failed = passed = 0
    for name in paths:
        path = Path(name)
        try:
            spec, rules = load_test_file(path)
        except TestFileError as exc:
            print(str(exc), file=out)
            return 2
        for case in spec.tests:
            report = run_case(spec, rules, case)
            if report:
                failed += 1
                print(f"FAIL {path}: {case.name}", file=out)
                for line in report:
                    print(line, file=out)
            else:
                passed += 1
                print(f"ok   {path}: {case.name}", file=out)
    print(f"{passed} passed, {failed} failed / 通过 {passed}，失败 {failed}", file=out)
    return 1 if failed else 0
