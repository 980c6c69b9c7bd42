"""Sliding windows and the login lockout, driven by a fake clock."""

from __future__ import annotations

from gateway.clock import FakeClock
from gateway.ratelimit import LoginLimiter, SlidingWindow


def test_window_allows_count_then_waits_until_the_oldest_hit_leaves(clock: FakeClock) -> None:
    w = SlidingWindow(3, 60, clock)
    assert [w.hit("dev") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert w.hit("dev") == 60.0
    clock.advance(59)
    assert w.hit("dev") == 1.0
    assert w.hit("other") == 0.0  # keys are independent
    clock.advance(1)
    assert w.hit("dev") == 0.0


def test_login_fifth_failure_locks_the_user_for_the_lockout(clock: FakeClock) -> None:
    lim = LoginLimiter(clock, max_failures=5, window_s=900, lockout_s=600)
    for i in range(4):
        assert lim.failure("alice", f"10.0.0.{i}") == []  # four addresses: none locked
    assert lim.check("alice", "10.0.0.9") is None
    assert lim.failure("alice", "10.0.0.9") == ["user:alice"]
    locked = lim.check("ALICE", "10.0.0.77")  # names are compared case-insensitively
    assert locked is not None and locked.key == "user:alice" and locked.retry_after_s == 600
    assert lim.check("bob", "10.0.0.9") is None
    clock.advance(600)
    assert lim.check("alice", "10.0.0.9") is None
    assert (lim.lockouts, lim.failures) == (1, 5)


def test_login_one_address_guessing_many_users_is_locked(clock: FakeClock) -> None:
    lim = LoginLimiter(clock, max_failures=3, window_s=60, lockout_s=60)
    assert lim.failure("u1", "10.9.9.9") == []
    assert lim.failure("u2", "10.9.9.9") == []
    assert lim.failure("u3", "10.9.9.9") == ["addr:10.9.9.9"]
    assert lim.check("admin", "10.9.9.9") is not None
    assert lim.check("admin", "10.1.1.1") is None


def test_login_failures_outside_the_window_do_not_add_up(clock: FakeClock) -> None:
    lim = LoginLimiter(clock, max_failures=3, window_s=60, lockout_s=60)
    for _ in range(5):
        assert lim.failure("alice", f"a{_}") == []
        clock.advance(31)  # never three within 60 s


def test_login_success_clears_the_users_failures(clock: FakeClock) -> None:
    lim = LoginLimiter(clock, max_failures=3, window_s=60, lockout_s=60)
    lim.failure("alice", "a")
    lim.failure("alice", "b")
    lim.success("alice", "c")
    assert lim.failure("alice", "d") == []
