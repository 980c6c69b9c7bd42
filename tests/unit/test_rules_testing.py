"""`estate-gateway rules test`: the shipped packs pass; a wrong expectation fails readably."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from rules.testing import run_files

REPO = Path(__file__).resolve().parents[2]
PACK_TESTS = sorted(str(p) for p in (REPO / "rules/packs/tests").glob("*.test.yaml"))

WRONG = """\
rule_files: [pack:water_tank]
devices:
  - {id: tank-1, kind: water_tank, location: {building: B1}}
tests:
  - name: expects the low-level alarm too early
    input:
      - {at: 0, device: tank-1, metric: level_pct, value: 15}
    expect:
      - at: 10
        alarms: [{alarm: water.level_low:tank-1, state: active_unacknowledged}]
      - at: 30
        alarms: [{alarm: water.level_low:tank-1, state: active_acknowledged, priority: high}]
"""


def test_every_kind_has_a_pack_with_tests() -> None:
    packs = {p.stem for p in (REPO / "rules/packs").glob("*.yaml")}
    tested = {Path(p).name.removesuffix(".test.yaml") for p in PACK_TESTS}
    assert packs == tested == {"water_tank", "elevator", "access_gate", "parking_barrier",
                               "generic"}


def test_shipped_packs_pass_their_tests() -> None:
    out = io.StringIO()
    assert run_files(PACK_TESTS, out) == 0, out.getvalue()
    assert "0 failed" in out.getvalue()


def test_wrong_expectation_fails_with_a_readable_diff(tmp_path: Path) -> None:
    f = tmp_path / "wrong.test.yaml"
    f.write_text(WRONG)
    out = io.StringIO()
    assert run_files([str(f)], out) == 1
    assert out.getvalue() == f"""\
FAIL {f}: expects the low-level alarm too early
  at 10 s:
    --- expected
    +++ got
    @@ -1 +1 @@
    -water.level_low:tank-1: state=active_unacknowledged
    +water.level_low:tank-1: (no such alarm)
  at 30 s:
    --- expected
    +++ got
    @@ -1 +1 @@
    -water.level_low:tank-1: state=active_acknowledged, priority=high
    +water.level_low:tank-1: state=active_unacknowledged, priority=medium
0 passed, 1 failed / 通过 0，失败 1
"""


def test_cli_exit_codes(tmp_path: Path) -> None:
    f = tmp_path / "wrong.test.yaml"
    f.write_text(WRONG)
    bad = tmp_path / "bad.test.yaml"
    bad.write_text("devices: []\ntests: []\n")

    def run(path: Path | str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gateway", "rules", "test", str(path)],
                              capture_output=True, text=True, cwd=REPO)

    assert run(PACK_TESTS[0]).returncode == 0
    wrong = run(f)
    assert wrong.returncode == 1 and "+water.level_low:tank-1" in wrong.stdout
    broken = run(bad)
    assert broken.returncode == 2 and "devices: List should have at least 1 item" in broken.stdout


def test_packs_pass_check_config_against_the_vocabulary(tmp_path: Path) -> None:
    """Every metric and event a pack names exists for its kinds (guards vocabulary drift)."""
    from gateway.config import load_config

    cfg = tmp_path / "gw.yaml"
    cfg.write_text("""\
site: {id: t}
include: [pack:water_tank, pack:elevator, pack:access_gate, pack:parking_barrier, pack:generic]
devices:
  - {id: tank-1, kind: water_tank, location: {building: B1}}
  - {id: lift-1, kind: elevator, location: {building: B1}}
  - {id: door-1, kind: access_gate, location: {building: B1}, tags: [rooftop]}
  - {id: bar-1, kind: parking_barrier, location: {building: P1}}
  - {id: pm-1, kind: generic, location: {building: B1}}
""")
    loaded = load_config(cfg)
    assert len(loaded.rules) >= 45
    assert {r.priority for r in loaded.rules} == {"emergency", "high", "medium", "low"}
