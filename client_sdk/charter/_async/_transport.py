"""The channel, the service stubs and the two ways of calling that every area module builds on."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc

from charter import _io_async as io
from charter._license import ReceiptJournal
from charter._options import (
    DEFAULT_RETRY,
    DEFAULT_TIMEOUT,
    ClientConfig,
    RetryPolicy,
    new_request_id,
    remaining,
    retry_delays,
)
from charter._pages import PageGuard
from charter.errors import from_rpc_error, never_reached_charter
from charter.usage import PendingUsage
from charter.v1 import (
    access_service_pb2_grpc,
    authorization_service_pb2_grpc,
    catalog_service_pb2_grpc,
    grant_service_pb2_grpc,
    key_service_pb2_grpc,
    offline_service_pb2_grpc,
    transparency_service_pb2_grpc,
    usage_service_pb2_grpc,
)

_T = TypeVar("_T")


class Transport:
    """The connection of a client: options, channel, stubs, and calls with deadlines and typed errors."""

    def __init__(
        self,
        target: str,
        *,
        api_key: str | None = None,
        root_certificates: bytes | None = None,
        client_certificate: bytes | None = None,
        client_private_key: bytes | None = None,
        secure: bool = False,
        timeout: float | None = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = DEFAULT_RETRY,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        """Creates a client and its channel; no connection is made until the first call.

        Args:
            target: The server address, for example `localhost:50051` or
                `dns:///charter.example.com:443`.
            api_key: The secret of an API key; omitted calls are unauthenticated.
            root_certificates: PEM root certificates to verify the server with.
                Setting it makes the channel use TLS.
            client_certificate: The PEM client certificate chain for mutual TLS.
            client_private_key: The PEM private key of `client_certificate`.
            secure: Use TLS with the system's root certificates even without
                `root_certificates`.
            timeout: The default deadline of each call in seconds; None for none.
            retry: How to retry `UNAVAILABLE`; None disables retries.
            options: Extra gRPC channel arguments; they override the client's own.

        Raises:
            ValueError: If an option has a bad value.
            TypeError: If an option has the wrong type.
        """
        self._config = ClientConfig.create(
            target,
            api_key=api_key,
            root_certificates=root_certificates,
            client_certificate=client_certificate,
            client_private_key=client_private_key,
            secure=secure,
            timeout=timeout,
            retry=retry,
            options=options,
        )
        self._channel = io.open_channel(self._config)
        self._catalog = catalog_service_pb2_grpc.CatalogServiceStub(self._channel)
        self._access = access_service_pb2_grpc.AccessServiceStub(self._channel)
        self._grants = grant_service_pb2_grpc.GrantServiceStub(self._channel)
        self._keys = key_service_pb2_grpc.KeyServiceStub(self._channel)
        self._authorization = authorization_service_pb2_grpc.AuthorizationServiceStub(self._channel)
        self._usage = usage_service_pb2_grpc.UsageServiceStub(self._channel)
        self._transparency = transparency_service_pb2_grpc.TransparencyServiceStub(self._channel)
        self._offline = offline_service_pb2_grpc.OfflineServiceStub(self._channel)
        # Streams have a channel of their own, with gRPC's retries off (`ClientConfig.channel_options`);
        # it connects on the first stream.
        self._streams = io.open_channel(self._config, retries=False)
        self._watches = authorization_service_pb2_grpc.AuthorizationServiceStub(self._streams)
        self.receipts = ReceiptJournal()
        self.pending_usage = PendingUsage()

    @property
    def target(self) -> str:
        """The server address this client talks to."""
        return self._config.target

    async def close(self) -> None:
        """Closes the channels; calls in flight are cancelled. Closing twice is harmless."""
        await self._channel.close()
        await self._streams.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        # Never the API key: reprs end up in logs.
        return f"{type(self).__name__}(target={self._config.target!r})"

    async def _unary(
        self, method: Callable[..., Any], request: Any, timeout: float | None, request_id: str | None = None
    ) -> Any:
        timeout = self._config.deadline(timeout)
        request_id = request_id or new_request_id()
        metadata = self._config.metadata(request_id)
        ends = None if timeout is None else time.monotonic() + timeout
        # A call the transport cancelled before Charter's code saw it is repeated (it changed
        # nothing), with the policy's backoff and within the one deadline.
        for delay in retry_delays(self._config.retry):
            try:
                return await method(request, timeout=remaining(ends), metadata=metadata)
            except grpc.RpcError as exc:
                if not never_reached_charter(exc) or (ends is not None and time.monotonic() + delay >= ends):
                    raise from_rpc_error(exc, request_id=request_id) from exc
            await io.sleep(delay)
        try:
            return await method(request, timeout=remaining(ends), metadata=metadata)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, request_id=request_id) from exc

    async def _paginate(
        self,
        method: Callable[..., Any],
        request: Any,
        items: Callable[[Any], Iterable[_T]],
        timeout: float | None,
    ) -> AsyncIterator[_T]:
        # An async generator, so pages are fetched only as the caller iterates; each page is its
        # own call with its own deadline and request id. The guard ends a listing that would not
        # end (an empty page with a token, a token sent again, too many pages) with an error.
        guard = PageGuard()
        while True:
            request_id = new_request_id()
            response = await self._unary(method, request, timeout, request_id)
            page = list(items(response))
            for item in page:
                yield item
            request.page_token = guard.next_token(len(page), response.next_page_token, request_id=request_id)
            if not request.page_token:
                return
