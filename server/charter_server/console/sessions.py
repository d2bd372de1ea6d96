"""Console sessions: kept on the server, found by an opaque cookie, ended by time or by the user.

The browser never sees the API key it signed in with: the key stays in a `Session` here, with the
`AsyncClient` that calls the API as that key. The cookie carries only the session's random id.
A session ends after `idle` without a request, after `lifetime` in any case, when the user
signs out or signs in again from the same browser, or when it is pushed out by newer ones (at
most `max_per_key` per API key, the oldest ending first, and `max_sessions` in all, the longest
idle ending first); its client is closed then.

Failed sign-ins are slowed down per client address (`SignInThrottle`; the connection's address, or
the one a proxy listed in the console's trusted proxies forwards): each attempt is counted before
the key is tried, after a few failures each further attempt must wait twice as long as the one
before, up to a ceiling, and attempts that come too early are refused without trying the key.
One-time sign-in links (`OneTimeLinks`) let the demo hand its rights-holder persona a URL that
signs in once, then never again.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from charter.v1 import api_key_pb2

ROLE_NAMES: dict[int, str] = {
    api_key_pb2.ROLE_ADMIN: "staff",
    api_key_pb2.ROLE_RIGHTS_HOLDER: "rights holder",
    api_key_pb2.ROLE_AUDITOR: "auditor",
    api_key_pb2.ROLE_GENERATOR: "generator",
    api_key_pb2.ROLE_LICENSEE_ADMIN: "licensee admin",
}

CONSOLE_ROLES = frozenset({api_key_pb2.ROLE_ADMIN, api_key_pb2.ROLE_RIGHTS_HOLDER, api_key_pb2.ROLE_AUDITOR})
"""The roles with pages in the console (rights holders, staff, auditors); keys of every other role,
generator and licensee admin among them, work through the API and the CLI and cannot sign in."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a session acts as: the signed-in API key, as the API described it."""

    key_id: str
    key_name: str
    role: int
    rights_holder_id: str = ""
    rights_holder_name: str = ""

    @property
    def role_name(self) -> str:
        return ROLE_NAMES.get(self.role, "unknown")

    @property
    def is_staff(self) -> bool:
        """Admin or auditor: sees every rights holder."""
        return self.role in (api_key_pb2.ROLE_ADMIN, api_key_pb2.ROLE_AUDITOR)

    @property
    def is_admin(self) -> bool:
        return self.role == api_key_pb2.ROLE_ADMIN

    @property
    def is_rights_holder(self) -> bool:
        return self.role == api_key_pb2.ROLE_RIGHTS_HOLDER

    @property
    def can_edit_catalogue(self) -> bool:
        """Whether forms that change characters and terms are shown (the API decides anyway)."""
        return self.role in (api_key_pb2.ROLE_ADMIN, api_key_pb2.ROLE_RIGHTS_HOLDER)


@dataclass(slots=True)
class Session:
    """One signed-in browser."""

    id_hash: str
    csrf_token: str
    caller: Caller
    client: Any  # charter.AsyncClient, calling as the signed-in key
    created: datetime
    last_seen: datetime
    flash: list[str] = field(default_factory=list)

    def check_csrf(self, token: str) -> bool:
        return bool(token) and hmac.compare_digest(token.encode(), self.csrf_token.encode())


def _hash(session_id: str) -> str:
    # Stored by hash, so that a memory dump or a log of the store never shows usable cookies.
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    """The server-side sessions of one console process, bounded per key and in all.

    Sessions are kept in the order of their last request, so the idle ones are at the front:
    each request ends the sessions that went idle (only those, never a scan of all of them), and
    its own session if it outlived `lifetime`.
    """

    def __init__(
        self,
        clock: Callable[[], datetime],
        *,
        idle: timedelta,
        lifetime: timedelta,
        max_per_key: int = 10,
        max_sessions: int = 10_000,
    ) -> None:
        self._clock = clock
        self._idle = idle
        self._lifetime = lifetime
        self._max_per_key = max_per_key
        self._max_sessions = max_sessions
        self._sessions: OrderedDict[str, Session] = OrderedDict()  # least recently used first
        self._by_key: dict[str, OrderedDict[str, None]] = {}  # a key's sessions, oldest first
        self._lock = threading.Lock()

    def create(self, caller: Caller, client: Any) -> tuple[str, Session, list[Session]]:
        """A new session; returns the id for the cookie (shown only now), the session, and the
        sessions it pushed out (the key's oldest past `max_per_key`, the longest idle past
        `max_sessions`), whose clients the caller must close."""
        session_id = secrets.token_urlsafe(32)
        now = self._clock()
        session = Session(_hash(session_id), secrets.token_urlsafe(32), caller, client, now, now)
        ended: list[Session] = []
        with self._lock:
            ended.extend(self._expire(now))
            mine = self._by_key.setdefault(caller.key_id, OrderedDict())
            while len(mine) >= self._max_per_key:
                ended.append(self._pop(next(iter(mine))))
            while len(self._sessions) >= self._max_sessions:
                ended.append(self._pop(next(iter(self._sessions))))
            self._sessions[session.id_hash] = session
            self._by_key.setdefault(caller.key_id, OrderedDict())[session.id_hash] = None
        return session_id, session, ended

    def find(self, session_id: str) -> tuple[Session | None, list[Session]]:
        """The live session of a cookie (touched), or None; and the sessions that just expired,
        whose clients the caller must close."""
        now = self._clock()
        with self._lock:
            expired = self._expire(now)
            session = self._sessions.get(_hash(session_id)) if session_id else None
            if session is not None and now - session.created > self._lifetime:
                expired.append(self._pop(session.id_hash))
                session = None
            if session is not None:
                session.last_seen = now
                self._sessions.move_to_end(session.id_hash)
        return session, expired

    def end(self, session: Session) -> None:
        with self._lock:
            if session.id_hash in self._sessions:
                self._pop(session.id_hash)

    def drain(self) -> list[Session]:
        """Every session, removed (at shutdown)."""
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
            self._by_key.clear()
        return sessions

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def _expire(self, now: datetime) -> list[Session]:
        # The front is the least recently used session: stop at the first one still in use.
        expired: list[Session] = []
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if now - oldest.last_seen <= self._idle:
                break
            expired.append(self._pop(oldest.id_hash))
        return expired

    def _pop(self, id_hash: str) -> Session:
        session = self._sessions.pop(id_hash)
        mine = self._by_key.get(session.caller.key_id)
        if mine is not None:
            mine.pop(id_hash, None)
            if not mine:
                del self._by_key[session.caller.key_id]
        return session


@dataclass(slots=True)
class _Failures:
    count: int
    not_before: datetime


class SignInThrottle:
    """Slows down repeated failed sign-ins from one address (see the module docstring).

    An attempt is counted as a failure when it is reserved, before the key is tried: the check
    and the count are one step under the lock, so a burst of parallel guesses gets no more tries
    than the same guesses one after another. A sign-in that succeeds clears the address; an
    attempt that could not be judged (the server did not answer) is given back.
    """

    FREE_FAILURES = 3
    """Failures allowed before attempts must wait."""
    CEILING = timedelta(minutes=5)
    """The longest wait between attempts."""
    FORGET_AFTER = timedelta(minutes=30)
    """Failures this old are forgotten."""
    MAX_ADDRESSES = 10_000
    """Addresses remembered; past it the one not seen longest is forgotten (bounded memory)."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._failures: OrderedDict[str, _Failures] = OrderedDict()  # least recently failed first
        self._lock = threading.Lock()

    def _wait_after(self, count: int) -> timedelta:
        over = count - self.FREE_FAILURES
        return timedelta(0) if over < 0 else min(self.CEILING, timedelta(seconds=2**over))

    def reserve(self, address: str) -> timedelta:
        """Count an attempt from ``address`` now, as a failure until `succeeded` or `release`;
        or, when it must still wait, count nothing and return how long (zero: reserved)."""
        now = self._clock()
        with self._lock:
            found = self._failures.get(address)
            if found is not None and now - found.not_before > self.FORGET_AFTER:
                found = None
            if found is not None and found.not_before > now:
                return found.not_before - now
            count = 1 if found is None else found.count + 1
            self._failures[address] = _Failures(count, now + self._wait_after(count))
            self._failures.move_to_end(address)
            while len(self._failures) > self.MAX_ADDRESSES:
                self._failures.popitem(last=False)
        return timedelta(0)

    def release(self, address: str) -> None:
        """Give back a reserved attempt that could not be judged."""
        now = self._clock()
        with self._lock:
            found = self._failures.get(address)
            if found is None:
                return
            if found.count <= 1:
                del self._failures[address]
            else:
                found.count -= 1
                found.not_before = min(found.not_before, now + self._wait_after(found.count))

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)


class OneTimeLinks:
    """Sign-in links that work once, within `valid`, holding an API key on the server only."""

    def __init__(self, clock: Callable[[], datetime], *, valid: timedelta = timedelta(hours=1)) -> None:
        self._clock = clock
        self._valid = valid
        self._links: dict[str, tuple[str, datetime]] = {}
        self._lock = threading.Lock()

    def create(self, api_key: str) -> str:
        """A new token for ``api_key``."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._links[_hash(token)] = (api_key, self._clock() + self._valid)
        return token

    def redeem(self, token: str) -> str | None:
        """The API key of a token not used before and not expired; the token is spent either way."""
        with self._lock:
            found = self._links.pop(_hash(token), None)
        if found is None or self._clock() > found[1]:
            return None
        return found[0]
