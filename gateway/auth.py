"""Local users, roles, sessions and scoped API tokens; no default password exists.

Passwords are hashed with argon2id (argon2-cffi). Session and API tokens are random
32-byte strings; only their SHA-256 is stored, so a copied database yields no credential.
Roles are ordered viewer < operator < engineer < admin; ``cloud`` stands apart and may
only read the event feed and write work-order status (``PERMISSIONS``). Sessions expire
after ``session_ttl_s``; disabling a user revokes their sessions at once. Login
rate-limiting and the audit of logins live in the API layer (``gateway.ratelimit``,
``gateway.audit``), which sees the client address.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from gateway.errors import AuthError

__all__ = ["PERMISSIONS", "ROLES", "AuthStore", "Permission", "Principal", "Role", "UserInfo",
           "allows", "role_allows"]

Role = Literal["viewer", "operator", "engineer", "admin", "cloud"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "engineer", "admin", "cloud")
USER_ROLES: tuple[Role, ...] = ("viewer", "operator", "engineer", "admin")
_RANK = {"viewer": 0, "operator": 1, "engineer": 2, "admin": 3}

Permission = Literal["events.read", "workorders.status.write"]
PERMISSIONS: dict[Permission, frozenset[Role]] = {
    # the cloud platform's scope: pull the event feed ...
    "events.read": frozenset({"cloud", "admin"}),
    # ... and report work-order progress (engineers do the same from the console)
    "workorders.status.write": frozenset({"cloud", "engineer", "admin"}),
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, password_hash TEXT NOT NULL,
    created_at REAL NOT NULL, disabled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL,
    kind TEXT NOT NULL, created_at REAL NOT NULL, expires_at REAL
);
"""


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: Role


@dataclass(frozen=True, slots=True)
class UserInfo:
    name: str
    role: Role
    created_at: float
    disabled: bool


def role_allows(have: Role, need: Role) -> bool:
    """Whether a principal with role ``have`` may use a route that needs role ``need``."""
    if need == "cloud":
        return have in ("cloud", "admin")
    if have == "cloud":
        return False
    return _RANK[have] >= _RANK[need]


def allows(have: Role, need: Role | Permission) -> bool:
    """``need`` is a role (ranked) or a named permission (``PERMISSIONS``)."""
    if need in PERMISSIONS:
        return have in PERMISSIONS[need]  # type: ignore[index]
    return role_allows(have, need)  # type: ignore[arg-type]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AuthStore:
    def __init__(self, path: Path, *, session_ttl_s: float = 12 * 3600,
                 now: Callable[[], float] = time.time) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.session_ttl_s = session_ttl_s
        self._now = now
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(SCHEMA)
        self._mutex = threading.Lock()
        self._hasher = PasswordHasher()

    def add_user(self, name: str, role: Role, password: str, *, replace: bool = True) -> None:
        """Create a user (or, with ``replace``, reset an existing one's role and password)."""
        if role not in USER_ROLES:
            raise AuthError(f"role {role!r} is not a user role; expected viewer, operator, "
                            "engineer or admin / 角色无效")
        if not name or len(name) > 64 or not name.isprintable() or name != name.strip():
            raise AuthError(f"user name {name!r} is not allowed: 1-64 printable characters, "
                            "no leading or trailing spaces / 用户名无效")
        if len(password) < 10:
            raise AuthError("password must have at least 10 characters / 密码至少 10 位")
        if password.strip().casefold() in (name.casefold(), "password12", "admin12345"):
            raise AuthError("password is too easy to guess / 密码过于简单")
        digest = self._hasher.hash(password)
        with self._mutex:
            exists = self._conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone()
            if exists and not replace:
                raise AuthError(f"user {name!r} already exists / 用户已存在")
            self._conn.execute(
                "INSERT OR REPLACE INTO users (name, role, password_hash, created_at, disabled) "
                "VALUES (?, ?, ?, ?, 0)", (name, role, digest, self._now()))
            # a reset password ends the sessions opened with the old one
            self._conn.execute("DELETE FROM tokens WHERE name = ? AND kind = 'session'", (name,))

    def users(self) -> list[UserInfo]:
        with self._mutex:
            rows = list(self._conn.execute(
                "SELECT name, role, created_at, disabled FROM users ORDER BY name"))
        return [UserInfo(n, r, c, bool(d)) for n, r, c, d in rows]

    def has_admin(self) -> bool:
        with self._mutex:
            return self._conn.execute("SELECT 1 FROM users WHERE role = 'admin' AND disabled = 0"
                                      ).fetchone() is not None

    def set_disabled(self, name: str, *, disabled: bool) -> None:
        """Disable (revoking every session at once) or re-enable a user."""
        with self._mutex:
            cur = self._conn.execute("UPDATE users SET disabled = ? WHERE name = ?",
                                     (int(disabled), name))
            if cur.rowcount == 0:
                raise AuthError(f"user {name!r} does not exist / 用户不存在")
            if disabled:
                self._conn.execute("DELETE FROM tokens WHERE name = ? AND kind = 'session'",
                                   (name,))

    def login(self, name: str, password: str) -> tuple[str, Principal]:
        with self._mutex:
            row = self._conn.execute(
                "SELECT role, password_hash FROM users WHERE name = ? AND disabled = 0",
                (name,)).fetchone()
        if row is None:
            self._hasher.hash(password)  # same cost as a wrong password: no user probing
            raise AuthError("wrong user name or password / 用户名或密码错误")
        try:
            self._hasher.verify(row[1], password)
        except (VerificationError, InvalidHashError):
            raise AuthError("wrong user name or password / 用户名或密码错误") from None
        token = secrets.token_urlsafe(32)
        with self._mutex:
            self._conn.execute("DELETE FROM tokens WHERE expires_at < ?", (self._now(),))
            self._conn.execute(
                "INSERT INTO tokens (token_hash, name, role, kind, created_at, expires_at) "
                "VALUES (?, ?, ?, 'session', ?, ?)",
                (_digest(token), name, row[0], self._now(), self._now() + self.session_ttl_s))
        return token, Principal(name, row[0])

    def add_token(self, name: str, role: Role, *, ttl_s: float | None = None) -> str:
        """A long-lived API token (e.g. for the cloud platform); shown once, stored hashed."""
        if role not in ROLES:
            raise AuthError(f"role {role!r} is unknown; expected one of {', '.join(ROLES)}")
        token = secrets.token_urlsafe(32)
        with self._mutex:
            self._conn.execute(
                "INSERT INTO tokens (token_hash, name, role, kind, created_at, expires_at) "
                "VALUES (?, ?, ?, 'api', ?, ?)",
                (_digest(token), name, role, self._now(),
                 None if ttl_s is None else self._now() + ttl_s))
        return token

    def authenticate(self, token: str) -> Principal:
        with self._mutex:
            row = self._conn.execute(
                "SELECT t.name, t.role, t.expires_at FROM tokens t LEFT JOIN users u "
                "ON u.name = t.name WHERE t.token_hash = ? AND "
                "(t.kind = 'api' OR coalesce(u.disabled, 1) = 0)",
                (_digest(token),)).fetchone()
        if row is None or (row[2] is not None and row[2] < self._now()):
            raise AuthError("invalid or expired credential / 凭据无效或已过期")
        return Principal(row[0], row[1])

    def logout(self, token: str) -> None:
        with self._mutex:
            self._conn.execute("DELETE FROM tokens WHERE token_hash = ?", (_digest(token),))

    def close(self) -> None:
        self._conn.close()
