"""Local users, roles, sessions and scoped API tokens; no default password exists.

Passwords are hashed with argon2id (argon2-cffi). Session and API tokens are random
32-byte strings; only their SHA-256 is stored, so a copied database yields no credential.
Roles are ordered viewer < operator < engineer < admin; ``cloud`` stands apart and may
only read the event feed and write work-order status.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from gateway.errors import AuthError

__all__ = ["ROLES", "AuthStore", "Principal", "Role", "role_allows"]

Role = Literal["viewer", "operator", "engineer", "admin", "cloud"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "engineer", "admin", "cloud")
_RANK = {"viewer": 0, "operator": 1, "engineer": 2, "admin": 3}

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


def role_allows(have: Role, need: Role) -> bool:
    if need == "cloud":
        return have in ("cloud", "admin")
    if have == "cloud":
        return False
    return _RANK[have] >= _RANK[need]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AuthStore:
    def __init__(self, path: Path, *, session_ttl_s: float = 12 * 3600) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.session_ttl_s = session_ttl_s
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(SCHEMA)
        self._mutex = threading.Lock()
        self._hasher = PasswordHasher()

    def add_user(self, name: str, role: Role, password: str) -> None:
        if role not in ROLES or role == "cloud":
            raise AuthError(f"role {role!r} is not a user role; expected viewer, operator, "
                            "engineer or admin / 角色无效")
        if len(password) < 10:
            raise AuthError("password must have at least 10 characters / 密码至少 10 位")
        with self._mutex:
            self._conn.execute(
                "INSERT OR REPLACE INTO users (name, role, password_hash, created_at) "
                "VALUES (?, ?, ?, ?)", (name, role, self._hasher.hash(password), time.time()))

    def users(self) -> list[tuple[str, str]]:
        with self._mutex:
            return list(self._conn.execute("SELECT name, role FROM users ORDER BY name"))

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
            self._conn.execute(
                "INSERT INTO tokens (token_hash, name, role, kind, created_at, expires_at) "
                "VALUES (?, ?, ?, 'session', ?, ?)",
                (_digest(token), name, row[0], time.time(), time.time() + self.session_ttl_s))
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
                (_digest(token), name, role, time.time(),
                 None if ttl_s is None else time.time() + ttl_s))
        return token

    def authenticate(self, token: str) -> Principal:
        with self._mutex:
            row = self._conn.execute(
                "SELECT name, role, expires_at FROM tokens WHERE token_hash = ?",
                (_digest(token),)).fetchone()
        if row is None or (row[2] is not None and row[2] < time.time()):
            raise AuthError("invalid or expired credential / 凭据无效或已过期")
        return Principal(row[0], row[1])

    def logout(self, token: str) -> None:
        with self._mutex:
            self._conn.execute("DELETE FROM tokens WHERE token_hash = ?", (_digest(token),))

    def close(self) -> None:
        self._conn.close()
