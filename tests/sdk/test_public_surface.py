"""Pins the public surface of the `charter` package so changes to it are deliberate."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.metadata
import inspect
import subprocess
import sys

import charter
from charter import AsyncClient, Client, License
from charter.cli import main
from charter.usage import PendingUsage

EXPECTED_ALL = [
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

# Role is generated code, documented by its .proto comments.
_GENERATED = {"Role", "__version__"}


def test_all_is_pinned() -> None:
    assert charter.__all__ == EXPECTED_ALL
    assert all(hasattr(charter, name) for name in charter.__all__)


def test_version_matches_the_installed_distribution() -> None:
    assert charter.__version__ == importlib.metadata.version("charter-sdk")


def test_every_public_symbol_has_a_docstring() -> None:
    undocumented = [
        name
        for name in charter.__all__
        if name not in _GENERATED and not (inspect.getdoc(getattr(charter, name)) or "").strip()
    ]

    assert undocumented == []
    assert inspect.getdoc(charter)
    assert inspect.getdoc(main)


def _public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(cls).items()
        if not name.startswith("_") and callable(member)
    }


def test_both_clients_have_the_same_methods_and_parameters() -> None:
    sync_methods = _public_methods(Client)
    async_methods = _public_methods(AsyncClient)

    assert sync_methods.keys() == async_methods.keys()
    for name, signature in sync_methods.items():
        assert list(signature.parameters) == list(async_methods[name].parameters), name


def test_client_methods_are_documented_with_args_returns_and_raises() -> None:
    for cls in (Client, AsyncClient):
        for name in _public_methods(cls):
            doc = inspect.getdoc(getattr(cls, name)) or ""
            assert "Returns:" in doc or name == "close", f"{cls.__name__}.{name}"
            assert "Raises:" in doc or name == "close", f"{cls.__name__}.{name}"


# Listings without pages return a list, so they are coroutines like any other call.
_UNPAGED_LISTINGS = {"list_terms_templates", "list_signing_keys", "list_licensee_keys"}
# Methods that return at once something to enter or iterate asynchronously, by return annotation.
_ASYNC_OBJECTS = {"license": "AbstractAsyncContextManager", "watch_revocations": "AsyncRevocationWatch"}


def test_async_client_methods_are_coroutines_and_listings_async_iterators() -> None:
    for name in _public_methods(AsyncClient):
        method = getattr(AsyncClient, name)
        if name.startswith("list_") and name not in _UNPAGED_LISTINGS:
            assert not inspect.iscoroutinefunction(method), name
            assert "AsyncIterator" in str(inspect.signature(method).return_annotation), name
        elif name in _ASYNC_OBJECTS:
            assert not inspect.iscoroutinefunction(method), name
            assert _ASYNC_OBJECTS[name] in str(inspect.signature(method).return_annotation), name
        else:
            assert inspect.iscoroutinefunction(method), name


def test_generation_time_methods_take_the_same_keyword_only_arguments() -> None:
    expected = [
        "character_ids",
        "prompt",
        "use_type",
        "content_rating",
        "categories",
        "territory",
        "commercial",
        "duration",
        "grants",
        "request_id",
        "timeout",
    ]
    for cls in (Client, AsyncClient):
        for name in ("authorize", "license"):
            parameters = list(inspect.signature(getattr(cls, name)).parameters.values())[1:]
            assert [p.name for p in parameters] == expected, f"{cls.__name__}.{name}"
            assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters), f"{cls.__name__}.{name}"
            required = [p.name for p in parameters if p.default is inspect.Parameter.empty]
            assert required == ["use_type", "content_rating"], f"{cls.__name__}.{name}"


def test_receipts_surface_is_pinned_and_documented() -> None:
    from charter import receipts

    assert receipts.__all__ == ["ReceiptVerification", "verify_receipt"]
    assert all((inspect.getdoc(getattr(receipts, name)) or "").strip() for name in receipts.__all__)
    parameters = inspect.signature(receipts.verify_receipt).parameters
    assert list(parameters) == ["envelope", "keys", "licensee_id"]


def test_unpaged_listings_return_lists() -> None:
    for name in _UNPAGED_LISTINGS:
        assert str(inspect.signature(getattr(Client, name)).return_annotation).startswith("list["), name
        assert str(inspect.signature(getattr(AsyncClient, name)).return_annotation).startswith("list["), name


def test_every_option_is_keyword_only_except_the_target() -> None:
    for cls in (Client, AsyncClient):
        parameters = list(inspect.signature(cls).parameters.values())
        assert parameters[0].name == "target"
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters[1:])


def test_importing_charter_pulls_in_no_cli_or_server_dependencies() -> None:
    # A fresh interpreter: this test process has long since imported typer and friends.
    code = (
        "import sys, charter; "
        "print(','.join(m for m in ('typer', 'rich', 'babel', 'sqlalchemy', 'structlog', 'charter_server') "
        "if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == ""


def test_catalog_file_surface_is_pinned_and_documented() -> None:
    from charter import catalog_file

    undocumented = [
        name
        for name in catalog_file.__all__
        if callable(getattr(catalog_file, name)) and not (inspect.getdoc(getattr(catalog_file, name)) or "").strip()
    ]

    assert catalog_file.__all__ == [
        "CSV_COLUMNS",
        "FORMATS",
        "REQUIRED_CSV_COLUMNS",
        "CatalogFileError",
        "CatalogRow",
        "RowError",
        "TermsOverride",
        "load",
        "parse",
        "parse_alias_entry",
        "parse_csv",
        "parse_json",
        "resolve",
        "terms_from_json",
    ]
    assert undocumented == []
    assert "value|language|kind|ambiguous" in (inspect.getdoc(catalog_file) or "")


def test_usage_surface_is_pinned_and_documented() -> None:
    from charter import usage

    assert usage.__all__ == ["MAX_BATCH_SIZE", "PendingUsage", "UsageReport", "UsageResult", "usage_key"]
    undocumented = [
        name
        for name in usage.__all__
        if callable(getattr(usage, name)) and not (inspect.getdoc(getattr(usage, name)) or "").strip()
    ]
    assert undocumented == []
    assert inspect.getdoc(usage)
    assert list(inspect.signature(usage.usage_key).parameters) == ["receipt_id", "character_id"]
    assert list(inspect.signature(usage.UsageReport).parameters) == [
        "receipt",
        "character_id",
        "uses",
        "duration",
        "revenue_minor_units",
        "currency",
        "happen_time",
        "idempotency_key",
    ]
    assert [field.name for field in dataclasses.fields(usage.UsageResult)] == [
        "index",
        "idempotency_key",
        "accepted",
        "duplicate",
        "usage_id",
        "statement_period",
        "accept_time",
        "error_code",
        "error_reason",
        "error_message",
        "field_violations",
        "late",
    ]
    for name in ("add", "drain", "__len__"):
        assert callable(getattr(usage.PendingUsage, name)), name


def test_usage_methods_of_both_clients_are_pinned() -> None:
    expected = {
        "report_usage": ["records", "batch_size", "timeout"],
        "flush_usage": ["batch_size", "timeout"],
        "get_statement": ["rights_holder_id", "period", "start_date", "end_date", "licensee_id", "timeout"],
        "list_statements": ["rights_holder_id", "licensee_id", "page_size", "timeout"],
        "close_statement_period": ["rights_holder_id", "period", "timeout"],
    }
    for cls in (Client, AsyncClient):
        for name, parameters in expected.items():
            assert list(inspect.signature(getattr(cls, name)).parameters)[1:] == parameters, f"{cls.__name__}.{name}"
    with Client("localhost:1") as client:
        assert isinstance(client.pending_usage, PendingUsage)

    async def pending_of_async_client() -> object:
        async with AsyncClient("localhost:1") as client:
            return client.pending_usage

    assert isinstance(asyncio.run(pending_of_async_client()), PendingUsage)


def test_license_usage_attributes_are_pinned_and_documented() -> None:
    for name in ("duration", "attribute_revenue", "usage_results", "usage_reports"):
        assert (inspect.getdoc(getattr(License, name)) or "").strip(), name
    assert isinstance(License.duration, property)
    assert License.duration.fset is not None
    assert isinstance(License.usage_results, property)
    assert License.usage_results.fset is None
    assert list(inspect.signature(License.attribute_revenue).parameters) == [
        "self",
        "minor_units",
        "currency",
        "character_id",
    ]


def test_screen_surface_is_pinned_and_documented() -> None:
    from charter import screen

    assert screen.__all__ == [
        "ANALYSER_BUDGET",
        "MAX_OCCURRENCES",
        "KeywordSet",
        "Rule",
        "ScreenCharacter",
        "ScreenIndex",
        "ScreenName",
        "ScreenWork",
        "Segmenter",
        "WordSegmenter",
        "look_alike_key",
        "skeleton_map",
    ]
    undocumented = [
        name
        for name in screen.__all__
        if callable(getattr(screen, name)) and not (inspect.getdoc(getattr(screen, name)) or "").strip()
    ]
    assert undocumented == []
