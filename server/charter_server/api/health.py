"""The standard ``grpc.health.v1.Health`` service, on the event loop.

``Check`` answers from memory (and keeps answering ``NOT_SERVING`` during the drain, so an
orchestrator sees the server leave); ``Watch`` streams each change of a service's status and, when
the drain begins, sends ``NOT_SERVING`` and ends (``UNAVAILABLE``, ``SHUTTING_DOWN``), so an open
watch never holds up the shutdown. Both need no API key.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

from grpc_health.v1 import health_pb2

from charter_server.api.broadcast import Broadcast
from charter_server.domain.errors import NotFound, ShuttingDown

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


class Health:
    """Serving statuses by service name ("" is the whole server)."""

    def __init__(self, services: Iterable[str]) -> None:
        self._status = dict.fromkeys(("", *services), NOT_SERVING)
        self._ended = False
        self._broadcast: Broadcast | None = None

    def _changes(self) -> Broadcast:
        if self._broadcast is None:
            self._broadcast = Broadcast(asyncio.get_running_loop())
        return self._broadcast

    def serve(self) -> None:
        """Report every service ``SERVING`` (on the event loop)."""
        if not self._ended:
            self._status = dict.fromkeys(self._status, SERVING)
            self._changes().notify()

    def shut_down(self) -> None:
        """Report every service ``NOT_SERVING`` for good and end the watches (on the event loop)."""
        self._status = dict.fromkeys(self._status, NOT_SERVING)
        self._ended = True
        self._changes().notify()

    def status(self, service: str) -> int | None:
        """The status of ``service``, or None for a service this server does not have."""
        return self._status.get(service)

    def Check(self, request: health_pb2.HealthCheckRequest, context: object) -> health_pb2.HealthCheckResponse:
        """The status of the service named in the request."""
        status = self._status.get(request.service)
        if status is None:
            raise NotFound(f"no service {request.service!r}", reason="SERVICE_NOT_FOUND")
        return health_pb2.HealthCheckResponse(status=status)

    async def Watch(
        self, request: health_pb2.HealthCheckRequest, context: object
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        """The status now, then every change, until the drain (``SERVICE_UNKNOWN`` for an unknown
        service, as the standard asks)."""
        changes = self._changes()
        last = None
        while True:
            status = self._status.get(request.service, SERVICE_UNKNOWN)
            if status != last:
                yield health_pb2.HealthCheckResponse(status=status)
                last = status
            if self._ended:
                raise ShuttingDown("the server is shutting down; reconnect to another replica")
            await changes.wait()
