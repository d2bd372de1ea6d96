"""What the asyncio client does differently from the synchronous one beyond `async` and `await`.

The calls of both clients are written once, for asyncio, in `charter._async`; `charter._sync` is
generated from them by removing `async` and `await` and renaming, among others, this module to
`charter._io_sync`, which has the same names for synchronous code. Only what cannot be written
the same way for both lives here: opening the channel, sleeping, and reading a server stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc

from charter._options import ClientConfig

__all__ = ["next_message", "open_channel", "sleep"]


def open_channel(config: ClientConfig, *, retries: bool = True) -> grpc.aio.Channel:
    """Returns a `grpc.aio` channel to the configured target, with TLS when configured (``retries=False``: the
    channel of the streams, with gRPC's retries off; see `ClientConfig.channel_options`)."""
    credentials = config.channel_credentials()
    options = config.channel_options(retries=retries)
    if credentials is None:
        return grpc.aio.insecure_channel(config.target, options=options)
    return grpc.aio.secure_channel(config.target, credentials, options=options)


async def sleep(seconds: float) -> None:
    """Pauses the calling task."""
    await asyncio.sleep(seconds)


async def next_message(call: Any, cancelled: Callable[[], bool]) -> Any | None:
    """Returns the next message of a server-streaming call; None once it has ended.

    Args:
        call: The `grpc.aio` call: `read()` returns messages, then `grpc.aio.EOF`.
        cancelled: Whether the caller cancelled the call itself.

    Raises:
        grpc.RpcError: If the stream failed.
        asyncio.CancelledError: If the task was cancelled (and not merely the call).
    """
    try:
        message = await call.read()
    except asyncio.CancelledError:
        # grpc.aio reports a locally cancelled call as CancelledError. It is ours to swallow
        # only when the call was cancelled by its owner and the task itself is not.
        task = asyncio.current_task()
        if cancelled() and (task is None or not task.cancelling()):
            return None
        raise
    return None if message is grpc.aio.EOF else message
