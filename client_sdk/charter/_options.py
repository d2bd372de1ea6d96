"""Connection options shared by `Client` and `AsyncClient`.

Everything here is pure: validation, the gRPC service config, channel options,
credentials and call metadata. The two clients differ only in how they create
the channel and await the calls, so keeping this in one place means they cannot
drift apart.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
import uuid
from collections.abc import Sequence
from typing import Any

import grpc

from charter._version import __version__

# Every service of the charter.v1 contract. The retry policy applies to each one;
# a test compares this list with the services found in the generated code, so a
# new service cannot be forgotten.
CHARTER_SERVICES: tuple[str, ...] = (
    "charter.v1.AccessService",
    "charter.v1.AuthorizationService",
    "charter.v1.CatalogService",
    "charter.v1.GrantService",
    "charter.v1.KeyService",
    "charter.v1.OfflineService",
    "charter.v1.TransparencyService",
    "charter.v1.UsageService",
)

# Server-streaming methods, left out of gRPC's retries (the SDK reopens them itself, see
# `charter._async.watch`): under a retry policy, a stream opened while the server was down ended
# UNAVAILABLE with its next read never returning, and cancel() could not end it (grpcio 1.85).
# Leaving them out of the policy was not enough: they are opened on a channel of their own with
# retries off (`ClientConfig.channel_options(retries=False)`).
STREAMING_METHODS: tuple[tuple[str, str], ...] = (("charter.v1.AuthorizationService", "WatchRevocations"),)

REQUEST_ID_HEADER = "x-request-id"
AUTHORIZATION_HEADER = "authorization"
DEFAULT_TIMEOUT = 10.0
KEEPALIVE_MS = 30_000
"""How often a channel with calls open pings its connection (``grpc.keepalive_time_ms``)."""
KEEPALIVE_TIMEOUT_MS = 10_000
"""How long a ping may go unanswered before the connection is taken for dead."""


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How the client retries calls that fail with `UNAVAILABLE`.

    The policy becomes a gRPC service config `retryPolicy`, so gRPC itself
    retries, with exponential backoff and jitter, within the call's deadline.
    Only `UNAVAILABLE` is retried: the Charter server returns it only when the
    call changed nothing, and create calls carry a `request_id` so a retry never
    creates twice.

    Attributes:
        max_attempts: The number of attempts including the first, 2 to 5 (gRPC
            caps attempts at 5).
        initial_backoff: Seconds before the first retry, at most (gRPC
            randomises each backoff between 0 and the current bound).
        max_backoff: The upper bound of a backoff, in seconds.
        backoff_multiplier: The factor applied to the bound after each retry.

    Raises:
        ValueError: If a value is out of range.
    """

    max_attempts: int = 4
    initial_backoff: float = 0.1
    max_backoff: float = 2.0
    backoff_multiplier: float = 2.0

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise TypeError("max_attempts must be an int")
        if not 2 <= self.max_attempts <= 5:
            raise ValueError(f"max_attempts must be between 2 and 5, got {self.max_attempts}")
        for name in ("initial_backoff", "max_backoff", "backoff_multiplier"):
            value = getattr(self, name)
            if not _is_positive_number(value):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if self.max_backoff < self.initial_backoff:
            raise ValueError("max_backoff must not be smaller than initial_backoff")


def service_config(retry: RetryPolicy | None, services: Sequence[str] = CHARTER_SERVICES) -> str:
    """Returns the gRPC service config JSON for a retry policy.

    Args:
        retry: The policy, or None for no retries (an empty method config).
        services: The fully qualified services the policy applies to (but not to their
            `STREAMING_METHODS`, whose own method config, more specific, has no retries).

    Returns:
        The JSON text for the `grpc.service_config` channel option.
    """
    if retry is None:
        return json.dumps({"methodConfig": []})
    method_config = {
        "name": [{"service": service} for service in services],
        "retryPolicy": {
            "maxAttempts": retry.max_attempts,
            "initialBackoff": _duration(retry.initial_backoff),
            "maxBackoff": _duration(retry.max_backoff),
            "backoffMultiplier": retry.backoff_multiplier,
            "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }
    streams = {"name": [{"service": service, "method": method} for service, method in STREAMING_METHODS]}
    return json.dumps({"methodConfig": [method_config, streams]})


def _duration(seconds: float) -> str:
    # Service config durations use the protobuf JSON form: decimal seconds with an
    # "s" suffix and at most nine fractional digits (no exponent, so not repr()).
    text = f"{seconds:.9f}".rstrip("0").rstrip(".")
    return f"{text}s"


def _is_positive_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0


DEFAULT_RETRY = RetryPolicy()
"""The retry policy clients use unless told otherwise (frozen, so safe to share)."""


def remaining(ends: float | None) -> float | None:
    """Returns the seconds left until ``ends`` (a `time.monotonic` instant), at least a millisecond
    so that a call still gets its deadline; None for no deadline."""
    return None if ends is None else max(0.001, ends - time.monotonic())


def retry_delays(retry: RetryPolicy | None) -> list[float]:
    """Returns the pauses before each retry of a call the SDK itself retries, in seconds.

    gRPC retries `UNAVAILABLE` within one deadline by itself; a call that is safe to repeat
    after `DEADLINE_EXCEEDED` too (a usage report, idempotent by key) is repeated by the SDK
    with a fresh deadline, after these pauses: the same exponential backoff bounds and full
    jitter as gRPC's, `max_attempts - 1` of them.

    Args:
        retry: The client's policy; None for no retries.

    Returns:
        One pause per retry; empty without a policy.
    """
    if retry is None:
        return []
    delays: list[float] = []
    bound = retry.initial_backoff
    for _ in range(retry.max_attempts - 1):
        delays.append(random.uniform(0, bound))  # noqa: S311 - jitter, not a secret
        bound = min(bound * retry.backoff_multiplier, retry.max_backoff)
    return delays


def new_request_id() -> str:
    """Returns a fresh request id: a random UUID as 32 lowercase hex digits."""
    return uuid.uuid4().hex


@dataclasses.dataclass(frozen=True, slots=True)
class ClientConfig:
    """The validated connection options of a client (private; built by the clients)."""

    target: str
    api_key: str | None
    root_certificates: bytes | None
    client_certificate: bytes | None
    client_private_key: bytes | None
    secure: bool
    timeout: float | None
    retry: RetryPolicy | None
    options: tuple[tuple[str, Any], ...]

    @classmethod
    def create(
        cls,
        target: str,
        *,
        api_key: str | None,
        root_certificates: bytes | None,
        client_certificate: bytes | None,
        client_private_key: bytes | None,
        secure: bool,
        timeout: float | None,
        retry: RetryPolicy | None,
        options: Sequence[tuple[str, Any]],
    ) -> ClientConfig:
        """Validates the options and returns them as a config.

        Raises:
            ValueError: If an option has a bad value.
            TypeError: If an option has the wrong type.
        """
        if not isinstance(target, str) or not target.strip():
            raise ValueError("target must be a non-empty string such as 'localhost:50051'")
        if api_key is not None:
            if not isinstance(api_key, str):
                raise TypeError("api_key must be a string")
            # A secret with whitespace or control characters cannot be a valid key
            # and would be rejected by gRPC as metadata with a far vaguer error.
            if not api_key or any(ch.isspace() or not ch.isprintable() for ch in api_key):
                raise ValueError("api_key must be non-empty and contain no whitespace")
        for name, value in (
            ("root_certificates", root_certificates),
            ("client_certificate", client_certificate),
            ("client_private_key", client_private_key),
        ):
            if value is not None and not isinstance(value, bytes):
                raise TypeError(f"{name} must be bytes (PEM), not {type(value).__name__}")
        if (client_certificate is None) != (client_private_key is None):
            raise ValueError("client_certificate and client_private_key must be given together")
        check_timeout(timeout, allow_none=True)
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise TypeError("retry must be a RetryPolicy or None")
        option_pairs = tuple(options)
        for pair in option_pairs:
            if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str)):
                raise TypeError("options must be (name, value) pairs of gRPC channel arguments")
        return cls(
            target=target.strip(),
            api_key=api_key,
            root_certificates=root_certificates,
            client_certificate=client_certificate,
            client_private_key=client_private_key,
            # Sending a client certificate only makes sense over TLS.
            secure=secure or root_certificates is not None or client_certificate is not None,
            timeout=None if timeout is None else float(timeout),
            retry=retry,
            options=option_pairs,
        )

    def channel_options(self, *, retries: bool = True) -> list[tuple[str, Any]]:
        """Returns the gRPC channel arguments: retries, service config, user agent, extras.

        Args:
            retries: False for the channel of the streams: gRPC's retries off whatever the
                options say. With them on (even with no retry policy for the method, as
                `STREAMING_METHODS` are), a stream opened while the server could not be reached
                sometimes got its status while its read never completed, so the read never
                returned and ``cancel()`` could not end it (grpcio 1.85; about one stream in ten
                opened right after a server stopped, none in 40 with retries off).
        """
        merged: dict[str, Any] = {
            "grpc.primary_user_agent": f"charter-sdk/{__version__}",
            "grpc.enable_retries": 1 if self.retry is not None else 0,
            "grpc.service_config": service_config(self.retry),
            # gRPC's own reconnect backoff grows to two minutes by default; a backend that must
            # keep its revocation view fresh (and fails closed when it cannot) has to find a
            # restarted server within seconds, not minutes.
            "grpc.initial_reconnect_backoff_ms": 500,
            "grpc.max_reconnect_backoff_ms": 3000,
            # And a connection attempt that hangs (a server that accepts but does not answer yet,
            # as one does while it starts) is given up after 3 s, not gRPC's default 20 s; calls
            # made meanwhile wait for that attempt.
            "grpc.min_reconnect_backoff_ms": 3000,
            # A connection whose peer vanished without a word (a dead server host, a partition, a
            # middlebox that dropped it) is found by pings while calls are open, and the channel
            # connects again: without them every call, and every revocation stream reopened,
            # went onto the dead connection and heard nothing until the kernel gave up, if ever.
            # Charter's server accepts pings every 10 s (--min-client-ping-seconds).
            "grpc.keepalive_time_ms": KEEPALIVE_MS,
            # grpcio 1.85 waits grpc.http2.ping_timeout_ms (one minute by default) for the
            # answer, whatever grpc.keepalive_timeout_ms says: both are set.
            "grpc.keepalive_timeout_ms": KEEPALIVE_TIMEOUT_MS,
            "grpc.http2.ping_timeout_ms": KEEPALIVE_TIMEOUT_MS,
            # A revocation stream sends nothing after its request: pings must not wait for data.
            "grpc.http2.max_pings_without_data": 0,
        }
        # Caller-supplied arguments win, so anything above can be overridden on purpose.
        given = dict(self.options)
        merged.update(given)
        if "grpc.keepalive_timeout_ms" in given and "grpc.http2.ping_timeout_ms" not in given:
            merged["grpc.http2.ping_timeout_ms"] = given["grpc.keepalive_timeout_ms"]  # (see above)
        if not retries:
            merged["grpc.enable_retries"] = 0
        return list(merged.items())

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        """Returns TLS credentials for a secure channel, or None for plaintext."""
        if not self.secure:
            return None
        return grpc.ssl_channel_credentials(
            root_certificates=self.root_certificates,
            private_key=self.client_private_key,
            certificate_chain=self.client_certificate,
        )

    def metadata(self, request_id: str) -> tuple[tuple[str, str], ...]:
        """Returns the metadata of one call: credentials and its request id."""
        if self.api_key is None:
            return ((REQUEST_ID_HEADER, request_id),)
        return (
            (AUTHORIZATION_HEADER, f"Bearer {self.api_key}"),
            (REQUEST_ID_HEADER, request_id),
        )

    def deadline(self, timeout: float | None) -> float | None:
        """Returns the timeout of one call: the per-call override or the default.

        Raises:
            ValueError: If the override is not a positive number.
        """
        if timeout is None:
            return self.timeout
        check_timeout(timeout, allow_none=False)
        return float(timeout)


def check_timeout(timeout: float | None, *, allow_none: bool) -> None:
    """Raises ValueError unless the timeout is a positive number (or None when allowed)."""
    if timeout is None and allow_none:
        return
    if not _is_positive_number(timeout):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
