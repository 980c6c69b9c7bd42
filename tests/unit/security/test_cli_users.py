"""`estate-gateway user add/list/disable/enable`: no default user, changes audited."""

from __future__ import annotations

from pathlib import Path

import logging
from collections.abc import Iterator

import pytest

from gateway.cli import main
from gateway.store.state import StateStore


@pytest.fixture(autouse=True)
def _keep_root_logging() -> Iterator[None]:
    """main() installs its log handler on the root logger; take it away again."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_user_lifecycle_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    d = str(tmp_path)
    code, out, err = run(capsys, "user", "list", "--data-dir", d)
    assert code == 0 and "no active admin" in err  # nothing exists until the installer says
    monkeypatch.setenv("FIRST_ADMIN_PW", "correct horse battery")
    code, out, _ = run(capsys, "user", "add", "alice", "--role", "admin", "--data-dir", d,
                       "--password-env", "FIRST_ADMIN_PW")
    assert code == 0 and "saved" in out
    monkeypatch.setenv("WEAK", "admin")
    code, _, err = run(capsys, "user", "add", "bob", "--role", "viewer", "--data-dir", d,
                       "--password-env", "WEAK")
    assert code == 2 and "at least 10" in err
    assert run(capsys, "user", "disable", "alice", "--data-dir", d)[0] == 0
    code, out, err = run(capsys, "user", "list", "--data-dir", d)
    assert "alice" in out and "disabled" in out and "no active admin" in err
    assert run(capsys, "user", "enable", "alice", "--data-dir", d)[0] == 0
    assert run(capsys, "user", "disable", "nobody", "--data-dir", d)[0] == 2
    state = StateStore(tmp_path / "state.db")
    try:
        rows = [r for _, r in state.audit_sync()]
    finally:
        state.close()
    assert [(r["action"], r["target"], r["client"]) for r in rows] == [
        ("user.enable", "alice", "cli"), ("user.disable", "alice", "cli"),
        ("user.add", "alice", "cli")]
    assert all(r["actor"].startswith("cli:") for r in rows)
