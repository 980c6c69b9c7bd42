"""Users, sessions that expire, disabled users, and the permission table."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.auth import ROLES, AuthStore, allows
from gateway.errors import AuthError


class Now:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def now() -> Now:
    return Now()


@pytest.fixture
def store(tmp_path: Path, now: Now) -> AuthStore:
    s = AuthStore(tmp_path / "auth.db", session_ttl_s=3600, now=now)
    yield s
    s.close()


def test_a_new_store_has_no_user_and_no_admin(store: AuthStore) -> None:
    assert store.users() == []
    assert not store.has_admin()
    with pytest.raises(AuthError):
        store.login("admin", "admin")


def test_session_expires_after_its_ttl(store: AuthStore, now: Now) -> None:
    store.add_user("alice", "operator", "correct horse battery")
    token, who = store.login("alice", "correct horse battery")
    assert (who.name, who.role) == ("alice", "operator")
    now.t += 3599
    assert store.authenticate(token).name == "alice"
    now.t += 2
    with pytest.raises(AuthError, match="expired"):
        store.authenticate(token)


def test_disabling_a_user_ends_their_sessions_and_logins(store: AuthStore) -> None:
    store.add_user("bob", "engineer", "correct horse battery")
    token, _ = store.login("bob", "correct horse battery")
    store.set_disabled("bob", disabled=True)
    with pytest.raises(AuthError):
        store.authenticate(token)
    with pytest.raises(AuthError):
        store.login("bob", "correct horse battery")
    assert [(u.name, u.disabled) for u in store.users()] == [("bob", True)]
    store.set_disabled("bob", disabled=False)
    assert store.login("bob", "correct horse battery")[1].role == "engineer"
    with pytest.raises(AuthError, match="does not exist"):
        store.set_disabled("nobody", disabled=True)


@pytest.mark.parametrize(("name", "password", "message"), [
    ("carol", "short", "at least 10"),
    ("carol", "carol", "at least 10"),
    ("password12", "password12", "too easy"),
    (" carol", "correct horse battery", "not allowed"),
])
def test_weak_passwords_and_bad_names_are_refused(store: AuthStore, name: str,
                                                  password: str, message: str) -> None:
    with pytest.raises(AuthError, match=message):
        store.add_user(name, "viewer", password)


def test_cloud_is_a_token_role_not_a_user_role(store: AuthStore) -> None:
    with pytest.raises(AuthError, match="not a user role"):
        store.add_user("platform", "cloud", "correct horse battery")  # type: ignore[arg-type]
    token = store.add_token("platform", "cloud")
    assert store.authenticate(token).role == "cloud"


def test_add_without_replace_refuses_an_existing_user(store: AuthStore) -> None:
    store.add_user("dave", "viewer", "correct horse battery")
    with pytest.raises(AuthError, match="already exists"):
        store.add_user("dave", "admin", "another long password", replace=False)


def test_permission_table() -> None:
    table = {need: sorted(r for r in ROLES if allows(r, need))
             for need in ("viewer", "operator", "engineer", "admin", "cloud", "events.read",
                          "workorders.status.write")}
    assert table == {
        "viewer": ["admin", "engineer", "operator", "viewer"],
        "operator": ["admin", "engineer", "operator"],
        "engineer": ["admin", "engineer"],
        "admin": ["admin"],
        "cloud": ["admin", "cloud"],
        "events.read": ["admin", "cloud"],
        "workorders.status.write": ["admin", "cloud", "engineer"],
    }
