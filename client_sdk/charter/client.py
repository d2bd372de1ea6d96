"""The synchronous Charter client.

`AsyncClient` in `charter.aio` has the same methods for asyncio. Each call is written once, for
asyncio, in `charter._async` (one module per service area); the synchronous calls in
`charter._sync` are generated from them by ``client_sdk/generate_sync.py``.
"""

from __future__ import annotations

from charter._sync import Calls, RevocationWatch

__all__ = ["Client", "RevocationWatch"]


class Client(Calls):
    """A synchronous client of the Charter service.

    Every call sends the API key as `authorization: Bearer <key>` and a fresh
    `x-request-id`, has a deadline (the `timeout` given here, or the one given
    to the call), is retried by gRPC on `UNAVAILABLE` according to `retry`, and
    raises a `CharterError` subclass when it fails. The client is thread-safe;
    create one per process and close it (or use it as a context manager).

    Attributes:
        receipts: The uses that `license` blocks of this client completed, newest last: a
            clean exit from a `license` block records its `License` here (a body that raises
            records nothing); drain it to keep your own record of what was rendered under
            which receipt. It is the only record of a use decided offline, which has no
            receipt and so cannot be reported.
        pending_usage: Usage reports of `license` blocks that could not be delivered (the
            server unreachable, or the call failing); `flush_usage` sends them again.

    Example:
        ```python
        with charter.Client("localhost:50051", api_key=secret) as client:
            holder = client.create_rights_holder(
                display_name="Example Studio", contact_email="licensing@example.com"
            )
            for holder in client.list_rights_holders():
                print(holder.id, holder.display_name)
        ```
    """
