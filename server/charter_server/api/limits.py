"""`StreamLimits`: how many streams may be open at once, per API key, for unauthenticated callers
together, and in total; beyond a limit a new stream is refused with ``RESOURCE_EXHAUSTED``
(``STREAM_LIMIT_REACHED``, the ErrorInfo metadata naming the ``limit``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from charter_server.domain.errors import ResourceExhausted


@dataclass(slots=True)
class _Limit:
    open: int = 0


@dataclass
class StreamLimits:
    """How many streams may be open: per API key, for unauthenticated callers together, in total.

    Only the event loop touches it, so plain counters suffice.
    """

    per_key: int
    unauthenticated: int
    total: int
    _by_key: dict[str, _Limit] = field(default_factory=dict)
    _anonymous: _Limit = field(default_factory=_Limit)
    _all: _Limit = field(default_factory=_Limit)

    def acquire(self, key_id: str | None) -> Callable[[], None]:
        """Count a new stream of ``key_id`` (None: unauthenticated); returns its release.

        Raises:
            ResourceExhausted: A limit is reached (``STREAM_LIMIT_REACHED``, naming the limit).
        """
        if self._all.open >= self.total:
            raise _stream_limit("total", self.total)
        if key_id is None:
            own, bound, name = self._anonymous, self.unauthenticated, "unauthenticated"
        else:
            own = self._by_key.get(key_id) or self._by_key.setdefault(key_id, _Limit())
            bound, name = self.per_key, "per_key"
        if own.open >= bound:
            raise _stream_limit(name, bound)
        own.open += 1
        self._all.open += 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            own.open -= 1
            self._all.open -= 1
            if key_id is not None and own.open == 0:
                self._by_key.pop(key_id, None)

        return release

    @property
    def open(self) -> int:
        """Streams open now."""
        return self._all.open


def _stream_limit(name: str, bound: int) -> ResourceExhausted:
    return ResourceExhausted(
        f"too many open streams ({name} limit {bound}); close one or share a stream per process",
        reason="STREAM_LIMIT_REACHED",
        metadata={"limit": name},
    )
