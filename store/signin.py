"""Sign-in throttling: repeated failures lock a username, or a client address, out for a while.

``SignInThrottle`` counts failed sign-ins per username and per client address, in memory (a
restart forgets them, which is fine for a local app: restarting is slower than the backoff). After
``free`` failures in a row a key is locked: attempts are refused without checking the password
until the delay passes, and each further failure doubles the delay up to ``max_delay_s``. A
failure streak is forgotten ``window_s`` after its last failure; ``window_s`` is longer than the
longest delay so that a capped lockout ending does not hand out a fresh set of free guesses.

A success clears the username's streak but not the address's: otherwise one valid account would
let its owner reset the address counter between guesses at other usernames.

Memory is bounded: each table keeps at most ``max_entries`` keys, dropping the least recently
failed (preferring ones not locked), so spraying random usernames cannot grow it without limit.

``sign_in`` is the one call the UI needs: throttle, authenticate, audit.
"""
from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

from store.audit import AuditLog
from store.users import UserStore
from vocabulary import EventKind

MAX_KEY = 64  # usernames are at most 64 characters; IPv6 text is at most 45
_EVICT_SCAN = 16  # how many of the oldest entries to look at for one that is not locked


@dataclass
class _Streak:
    failures: int = 0
    last_failure: float = 0.0
    locked_until: float = 0.0


@dataclass(frozen=True)
class _Limit:
    free: int
    base_delay_s: float


class _Table:
    """One key space (usernames or addresses): an LRU of failure streaks."""

    def __init__(self, limit: _Limit, window_s: float, max_delay_s: float, max_entries: int):
        self.limit, self.window_s, self.max_delay_s, self.max_entries = limit, window_s, max_delay_s, max_entries
        self.streaks: OrderedDict[str, _Streak] = OrderedDict()

    def wait(self, key: str | None, now: float) -> float:
        streak = self.streaks.get(key) if key is not None else None
        return max(0.0, streak.locked_until - now) if streak else 0.0

    def fail(self, key: str | None, now: float) -> bool:
        """Count a failure; True when it is the one that starts this streak's lockout."""
        if key is None:
            return False
        streak = self.streaks.get(key)
        if streak is None:
            self._make_room(now)
            streak = self.streaks[key] = _Streak()
        elif self._stale(streak, now):
            streak.failures = 0
        self.streaks.move_to_end(key)
        streak.failures += 1
        streak.last_failure = now
        over = streak.failures - self.limit.free
        if over >= 0:
            delay = min(self.limit.base_delay_s * 2 ** min(over, 32), self.max_delay_s)
            streak.locked_until = max(streak.locked_until, now + delay)
        return over == 0

    def clear(self, key: str | None) -> None:
        if key is not None:
            self.streaks.pop(key, None)

    def _stale(self, streak: _Streak, now: float) -> bool:
        return streak.locked_until <= now and now - streak.last_failure > self.window_s

    def _make_room(self, now: float) -> None:
        # Oldest first: drop stale streaks from the front (cheap, amortised over inserts) ...
        while self.streaks:
            oldest = next(iter(self.streaks))
            if not self._stale(self.streaks[oldest], now):
                break
            del self.streaks[oldest]
        if len(self.streaks) < self.max_entries:
            return
        # ... then, when still full, the oldest unlocked one near the front, else simply the oldest.
        victim = next((k for k in itertools.islice(self.streaks, _EVICT_SCAN)
                       if self.streaks[k].locked_until <= now), next(iter(self.streaks)))
        del self.streaks[victim]


def _username_key(username: object) -> str | None:
    # None (the guard's address-only check) and a blank name share no key, so five blank attempts
    # cannot lock every sign-in.
    text = username.strip().lower()[:MAX_KEY] if isinstance(username, str) else ""
    return text or None


def _address_key(address: object) -> str | None:
    if address is None:
        return None  # no address known (CLI, tests): only the username is throttled
    text = str(address).strip()[:MAX_KEY]
    return text or None


class SignInThrottle:
    """Thread-safe per-username and per-address failure counting with exponential backoff.

    ``clock`` is injectable for tests; it must be monotonic (wall-clock jumps would unlock early
    or lock for hours).
    """

    def __init__(self, *, user_free: int = 5, address_free: int = 20, base_delay_s: float = 30.0,
                 max_delay_s: float = 900.0, window_s: float = 3600.0, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic):
        if user_free < 1 or address_free < 1 or max_entries < 1:
            raise ValueError("free attempts and max_entries must be at least 1")
        self._clock = clock
        self._lock = threading.Lock()
        self._users = _Table(_Limit(user_free, base_delay_s), window_s, max_delay_s, max_entries)
        self._addresses = _Table(_Limit(address_free, base_delay_s), window_s, max_delay_s, max_entries)

    def check(self, username: object, address: object = None) -> float:
        """Seconds the caller must wait before this attempt may be tried; 0.0 when allowed."""
        with self._lock:
            now = self._clock()
            return max(self._users.wait(_username_key(username), now),
                       self._addresses.wait(_address_key(address), now))

    def failed(self, username: object, address: object = None) -> bool:
        """Count a failed attempt; True when it started a lockout (audit ``auth.lockout`` once)."""
        with self._lock:
            now = self._clock()
            by_user = self._users.fail(_username_key(username), now)
            by_address = self._addresses.fail(_address_key(address), now)
            return by_user or by_address

    def succeeded(self, username: object, address: object = None) -> None:
        """A successful sign-in clears the username's streak (the address's is kept on purpose)."""
        with self._lock:
            self._users.clear(_username_key(username))

    def size(self) -> tuple[int, int]:
        """How many usernames and addresses are tracked (for tests and diagnostics)."""
        with self._lock:
            return len(self._users.streaks), len(self._addresses.streaks)


@dataclass(frozen=True)
class SignInResult:
    user: dict | None  # the user (without the hash) when signed in
    wait_s: float = 0.0  # > 0 when refused by the throttle: how long until trying is allowed

    @property
    def ok(self) -> bool:
        return self.user is not None


def sign_in(users: UserStore, throttle: SignInThrottle, audit: AuditLog, username: object,
            password: object, address: object = None) -> SignInResult:
    """Throttle, then authenticate, then audit: the whole sign-in for any front end.

    Audited: ``auth.login``, ``auth.login_failed`` and, once when it starts, ``auth.lockout``.
    Attempts refused while locked are not audited one by one: they cost an attacker nothing, so
    a flood of them would fill the append-only log; the lockout row already records the episode.
    """
    actor = username if isinstance(username, str) and username else "anonymous"
    where = {} if address is None else {"address": str(address)}
    wait = throttle.check(username, address)
    if wait > 0:
        return SignInResult(None, wait)
    user = users.authenticate(username, password)  # type: ignore[arg-type]  (it refuses non-str)
    if user is not None:
        throttle.succeeded(username, address)
        audit.record(actor, EventKind.AUTH_LOGIN, None, **where)
        return SignInResult(user)
    started = throttle.failed(username, address)
    audit.record(actor, EventKind.AUTH_LOGIN_FAILED, None, **where)
    if started:
        audit.record(actor, EventKind.AUTH_LOCKOUT, None, wait_s=round(throttle.check(username, address)), **where)
    return SignInResult(None)
