"""Charter: the Python SDK of the opt-in character licensing service.

`Client` (synchronous) and `AsyncClient` (asyncio) call the Charter service;
failures raise `CharterError` subclasses, one per gRPC status code, with a
machine-readable `reason`. At generation time, `Client.authorize` returns a
`Decision` (a `CharacterDecision` per character, the prompt's `Detection`s and a
signed receipt), and `Client.license(...)` runs a block only when the use is
allowed, yielding a `License` or raising `LicenseDenied`; an `OfflineAuthorizer`
decides the same locally from grants it holds, failing closed; `charter.receipts`
verifies receipts later. A clean exit from a ``license`` block reports the use;
`charter.usage` describes usage records for `Client.report_usage`, and the
clients read revenue-share statements. The generated contract lives in `charter.v1`;
`charter.alias` builds a character's alias, and `charter.catalog_file` reads
the documented CSV and JSON catalogue import files.

Example:
    ```python
    import charter

    with charter.Client("localhost:50051", api_key="key_...") as client:
        me = client.get_caller()
        with client.license(prompt=prompt, use_type=..., content_rating=...) as granted:
            render(prompt, obligations=granted.obligations)
    ```
"""

from charter._license import License
from charter._options import RetryPolicy
from charter._requests import NameWarning, alias, keyword_set
from charter._version import __version__
from charter.aio import AsyncClient
from charter.client import Client
from charter.decisions import CharacterDecision, Decision, Detection, DetectionRule, LicenseDenied
from charter.errors import (
    AbortedError,
    AlreadyExistsError,
    CancelledError,
    CharterError,
    DataLossError,
    DeadlineExceededError,
    FailedPreconditionError,
    FieldViolation,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    OutOfRangeError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
    UnknownError,
)
from charter.offline import OfflineAuthorizer
from charter.v1.api_key_pb2 import Role

__all__ = [
    "AbortedError",
    "AlreadyExistsError",
    "AsyncClient",
    "CancelledError",
    "CharacterDecision",
    "CharterError",
    "Client",
    "DataLossError",
    "DeadlineExceededError",
    "Decision",
    "Detection",
    "DetectionRule",
    "FailedPreconditionError",
    "FieldViolation",
    "InternalError",
    "InvalidArgumentError",
    "License",
    "LicenseDenied",
    "NameWarning",
    "NotFoundError",
    "OfflineAuthorizer",
    "OutOfRangeError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "RetryPolicy",
    "Role",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "UnknownError",
    "__version__",
    "alias",
    "keyword_set",
]
