"""A TCP relay on 127.0.0.1 whose open connections can be made to go silent.

`Relay.silence` is what a client sees when the path to its server dies without a word: a
middlebox that dropped the connection's state, a server host that lost power, a network
partition. Nothing is closed or reset; bytes sent either way are read and dropped (so no TCP
retransmission timeout ever ends the connection), and no reply comes. Connections accepted after
it are relayed as before: the way to a (re)started server is open again, only the old
connection is dead. Every thread is a daemon and every socket is closed by `close`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from typing import Self


class Relay:
    """Relays connections from its own port to ``upstream`` (host, port)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._lock = threading.Lock()
        self._open: list[tuple[socket.socket, socket.socket, threading.Event]] = []
        self._closed = False
        self.accepted = 0
        """How many connections were accepted so far."""
        threading.Thread(target=self._accept, name="relay-accept", daemon=True).start()

    @property
    def target(self) -> str:
        """The relay's address, as a gRPC target."""
        return f"127.0.0.1:{self._listener.getsockname()[1]}"

    def silence(self) -> int:
        """Makes every connection open now go silent; returns how many there were."""
        with self._lock:
            for _, _, silent in self._open:
                silent.set()
            return len(self._open)

    def close(self) -> None:
        """Stops accepting and closes every connection."""
        with self._lock:
            self._closed = True
            pairs = list(self._open)
        self._listener.close()
        for client, server, _ in pairs:
            for sock in (client, server):
                sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                server = socket.create_connection(self._upstream, timeout=5)
            except OSError:
                client.close()  # as a refused connection would be
                continue
            server.settimeout(None)
            silent = threading.Event()
            with self._lock:
                if self._closed:
                    client.close()
                    server.close()
                    return
                self._open.append((client, server, silent))
                self.accepted += 1
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(source, sink, silent), name="relay-pump", daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket, silent: threading.Event) -> None:
    while True:
        try:
            data = source.recv(65536)
        except OSError:
            return
        if not data:
            if not silent.is_set():
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)
            return
        if silent.is_set():
            continue  # read and dropped: the peer hears nothing, and nothing times out
        try:
            sink.sendall(data)
        except OSError:
            return
