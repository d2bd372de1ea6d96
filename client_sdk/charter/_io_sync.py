"""What the synchronous client does differently from the asyncio one beyond `async` and `await`.

The counterpart of `charter._io_async` (see there): the generated `charter._sync` modules use
these names where the `charter._async` source uses that module's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc

from charter._options import ClientConfig

__all__ = ["next_message", "open_channel", "sleep"]


def open_channel(config: ClientConfig, *, retries: bool = True) -> grpc.Channel:
    """Returns a channel to the configured target, with TLS when configured (``retries=False``: the
    channel of the streams, with gRPC's retries off; see `ClientConfig.channel_options`)."""
    credentials = config.channel_credentials()
    options = config.channel_options(retries=retries)
    if credentials is None:
        return grpc.insecure_channel(config.target, options=options)
    return grpc.secure_channel(config.target, credentials, options=options)


def sleep(seconds: float) -> None:
    """Pauses the calling thread."""
    time.sleep(seconds)


def next_message(call: Any, cancelled: Callable[[], bool]) -> Any | None:
    """Returns the next message of a server-streaming call; None once it has ended.

    Args:
        call: The gRPC call: an iterator of messages with `cancel()`.
        cancelled: Whether the caller cancelled the call itself (unused: a cancelled
            synchronous call raises `grpc.RpcError`, which the caller tells apart itself).

    Raises:
        grpc.RpcError: If the stream failed or was cancelled.
    """
    del cancelled
    return next(call, None)
