"""The asyncio Charter client, on `grpc.aio`.

`Client` in `charter.client` has the same methods for synchronous code. Each call is written
once, for asyncio, in `charter._async` (one module per service area); the synchronous calls in
`charter._sync` are generated from them.
"""

from __future__ import annotations

from charter._async import AsyncRevocationWatch, Calls

__all__ = ["AsyncClient", "AsyncRevocationWatch"]


class AsyncClient(Calls):
    """An asyncio client of the Charter service.

    Every call sends the API key as `authorization: Bearer <key>` and a fresh
    `x-request-id`, has a deadline (the `timeout` given here, or the one given
    to the call), is retried by gRPC on `UNAVAILABLE` according to `retry`, and
    raises a `CharterError` subclass when it fails. Create it inside the event
    loop that uses it (grpc.aio channels belong to one loop) and close it, or use
    it as an async context manager. The `list_*` methods return async iterators.

    Attributes:
        receipts: The uses that `license` blocks of this client completed, newest last: a
            clean exit from a `license` block records its `License` here (a body that raises
            records nothing); drain it to keep your own record of what was rendered under
            which receipt.
        pending_usage: Usage reports of `license` blocks that could not be delivered (the
            server unreachable, or the call failing); `flush_usage` sends them again.

    Example:
        ```python
        async with charter.AsyncClient("localhost:50051", api_key=secret) as client:
            holder = await client.create_rights_holder(
                display_name="Example Studio", contact_email="licensing@example.com"
            )
            async for holder in client.list_rights_holders():
                print(holder.id, holder.display_name)
        ```
    """
