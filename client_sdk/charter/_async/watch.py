"""The open revocation stream that ``watch_revocations`` returns."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self

import grpc

from charter import _io_async as io
from charter import _requests
from charter._requests import RevocationMessage
from charter.errors import from_rpc_error

__all__ = ["AsyncRevocationWatch"]


class AsyncRevocationWatch:
    """An open revocation stream, returned by `AsyncClient.watch_revocations`.

    Iterate it with `async for` to get `charter.v1.grant_pb2.RevocationEvent`,
    `charter.v1.authorization_service_pb2.Heartbeat` and
    `charter.v1.authorization_service_pb2.RevocationSkip` messages (a skip: the events up to its
    sequence number are not the caller's and were left out). `cancel` ends it, also while
    another thread or task iterates; an iteration then stops quietly. Used as an async context
    manager, leaving the block cancels it. A failure of the stream raises a `CharterError`
    subclass from the iteration.
    """

    def __init__(
        self,
        call: Any,
        request_id: str,
        reopen: Callable[[], Any] | None = None,
        delays: Sequence[float] = (),
        ends: float | None = None,
    ) -> None:
        """Wraps a started WatchRevocations call (private; use `AsyncClient.watch_revocations`).

        Args:
            call: The started gRPC call.
            request_id: The `x-request-id` the call was sent with.
            reopen: Starts the same call again (within the same deadline), for a stream that
                ended `UNAVAILABLE` before its first message: nothing was received, so nothing
                is replayed. The SDK does this, not gRPC: a stream gRPC retried after the server
                went down could end with its next read never returning (grpcio 1.85).
            delays: The pauses before each reopening (`charter._options.retry_delays`).
            ends: The deadline of the whole stream (a `time.monotonic` instant), if any: no
                pause runs past it.
        """
        self._call = call
        self._request_id = request_id
        self._cancelled = False
        self._reopen = reopen
        self._delays = list(delays)
        self._ends = ends
        self._received = False

    @property
    def request_id(self) -> str:
        """The `x-request-id` the stream was opened with, for finding it in the server's log."""
        return self._request_id

    @property
    def cancelled(self) -> bool:
        """Whether `cancel` was called."""
        return self._cancelled

    def cancel(self) -> None:
        """Ends the stream; an iteration in progress stops quietly. Cancelling twice is harmless."""
        self._cancelled = True
        self._call.cancel()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> RevocationMessage:
        while not self._cancelled:
            try:
                response = await io.next_message(self._call, lambda: self._cancelled)
            except grpc.RpcError as exc:
                if self._cancelled:  # the caller's own cancel, seen by a concurrent iteration
                    break
                reopen = self._reopen
                if reopen is not None and self._may_reopen(exc):
                    await io.sleep(self._delays.pop(0))
                    if self._cancelled:
                        break
                    self._call = reopen()
                    if self._cancelled:  # a cancel that came while it was reopened
                        self._call.cancel()
                    continue
                raise from_rpc_error(exc, request_id=self._request_id) from exc
            if response is None:
                break
            self._received = True
            message = _requests.revocation_message(response)
            if message is not None:
                return message
        raise StopAsyncIteration

    def _may_reopen(self, error: grpc.RpcError) -> bool:
        """Whether a stream that failed with ``error`` is opened again (after the next delay)."""
        if self._received or not self._delays:
            return False
        if self._ends is not None and time.monotonic() + self._delays[0] >= self._ends:
            return False
        return error.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[no-any-return]

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cancel()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(request_id={self._request_id!r}, cancelled={self._cancelled})"
