"""Bad config files render exactly as tested (the text is an interface: installers read it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
BAD = sorted(p for p in (REPO / "tests/data/config/bad").glob("*.yaml")
             if not p.name.endswith(".part.yaml"))


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_config_renders_exact_text(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    rel = path.relative_to(REPO)
    with pytest.raises(ConfigError) as info:
        load_config(rel)
    expected = path.with_suffix(".expected.txt").read_text(encoding="utf-8")
    assert info.value.render() + "\n" == expected


def test_check_config_cli_prints_same_text_and_exits_2() -> None:
    path = "tests/data/config/bad/cross_refs.yaml"
    out = subprocess.run([sys.executable, "-m", "gateway", "check-config", path], cwd=REPO,
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stdout == (REPO / "tests/data/config/bad/cross_refs.expected.txt").read_text()


@pytest.mark.parametrize("path", ["config/gateway.example.yaml", "gateway/data/demo.yaml"])
def test_shipped_configs_are_valid(path: str) -> None:
    out = subprocess.run([sys.executable, "-m", "gateway", "check-config", path], cwd=REPO,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert "cannot read file" in info.value.render()
