"""Serving the console with uvicorn: in the foreground (``charter-server console``) or on a thread of
its own next to a gRPC server (``charter-server demo``, tests)."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

import uvicorn
from starlette.applications import Starlette

from charter_server.console.app import build_console
from charter_server.console.web import ConsoleSettings, ConsoleState


def _split(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen address must be HOST:PORT, not {listen!r}")
    return host.strip("[]"), int(port)


class ConsoleServer:
    """A console bound to a socket (so port 0 is known before serving) and served by uvicorn."""

    def __init__(
        self,
        settings: ConsoleSettings,
        listen: str,
        *,
        clock: Any = None,
        certfile: str | None = None,
        keyfile: str | None = None,
        log_level: str = "warning",
    ) -> None:
        host, port = _split(listen)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self._socket.listen(128)
        self.port = int(self._socket.getsockname()[1])
        self.host = host
        self.tls = certfile is not None
        self.app: Starlette = build_console(settings, clock=clock)
        config = uvicorn.Config(
            self.app,
            log_level=log_level,
            access_log=False,
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
            lifespan="off",
            server_header=False,
            # uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise, which would let
            # anyone on the machine (or a proxy passing the header on) pick the address that the
            # sign-in throttle counts: only the configured proxies are believed, none by default.
            proxy_headers=bool(settings.trusted_proxies),
            forwarded_allow_ips=list(settings.trusted_proxies),
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> ConsoleState:
        found: ConsoleState = self.app.state.console
        return found

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def sign_in_link(self, api_key: str) -> str:
        """A one-time sign-in link for ``api_key`` (the demo prints one for its rights holder)."""
        return f"{self.url}/sign-in/once/{self.state.links.create(api_key)}"

    async def _serve(self) -> None:
        try:
            await self._server.serve(sockets=[self._socket])
        finally:
            for session in self.state.sessions.drain():
                await session.client.close()

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (uvicorn handles SIGINT and SIGTERM)."""
        asyncio.run(self._serve())

    def start(self) -> None:
        """Serve on a thread of its own; returns once the console accepts connections."""
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), name="charter-console", daemon=True)
        self._thread.start()
        for _ in range(500):
            if self._server.started:
                return
            if not self._thread.is_alive():
                raise RuntimeError("the console stopped while starting")
            threading.Event().wait(0.01)
        raise RuntimeError("the console did not start within 5 seconds")

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._socket.close()
