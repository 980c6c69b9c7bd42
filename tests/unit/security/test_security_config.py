"""Security config: safe defaults, and command allow-lists that name real devices."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.errors import ConfigError
from gateway.logformat import JsonFormatter

BASE = """\
site: {id: s1}
devices:
  - {id: barrier-1, kind: parking_barrier, location: {building: P1}}
"""


def test_defaults_are_closed(tmp_path: Path) -> None:
    p = tmp_path / "gw.yaml"
    p.write_text(BASE)
    cfg = load_config(p)
    assert cfg.api.cors_allow_origins == []
    assert cfg.commands.devices == {} and cfg.commands.rules_enabled is False
    assert cfg.api.auth.login_max_failures == 5


def test_command_allow_list_errors_name_the_device_and_action(tmp_path: Path) -> None:
    p = tmp_path / "gw.yaml"
    p.write_text(BASE + """\
commands:
  devices:
    barrier-2: {actions: [open]}
    barrier-1: {actions: [open], rule_actions: [close], roles: [viewer]}
""")
    with pytest.raises(ConfigError) as info:
        load_config(p)
    problems = info.value.problems
    assert len(problems) == 1  # field errors come first; cross-checks after they pass
    assert "commands.devices.barrier-1.roles[0]" in problems[0]
    assert "'viewer' is not allowed; expected one of 'operator', 'engineer'" in problems[0]
    p.write_text(p.read_text().replace("roles: [viewer]", "roles: [operator]"))
    with pytest.raises(ConfigError) as info:
        load_config(p)
    assert [ln.split(": ", 1)[1] for ln in info.value.problems] == [
        "commands.devices.barrier-2: unknown device 'barrier-2' (did you mean 'barrier-1'?) "
        "/ 设备不存在",
        "commands.devices.barrier-1.rule_actions[0]: rule action 'close' is not in this "
        "device's actions ['open'] / 规则指令不在允许列表中",
    ]


def test_json_log_lines_are_one_object_each() -> None:
    record = logging.LogRecord("gateway.x", logging.WARNING, __file__, 1,
                               "bus full: dropped %d readings / 丢弃", (3,), None)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    out = json.loads(line)
    assert {k: out[k] for k in ("level", "logger", "msg")} == {
        "level": "warning", "logger": "gateway.x", "msg": "bus full: dropped 3 readings / 丢弃"}
    assert out["ts"].endswith("Z")
