"""The dispatcher (every call's way through Charter) through a real server: the ``rpc.completed``
line, secrets kept out of logs, unexpected exceptions, request ids, limits and unknown methods,
each error with its ``google.rpc.ErrorInfo``."""

from __future__ import annotations

import re
import threading
from typing import Any

import grpc
import pytest
from charter.v1 import access_service_pb2 as access_pb
from charter.v1 import api_key_pb2, rights_holder_pb2
from charter.v1 import authorization_service_pb2_grpc as az_grpc
from charter.v1 import catalog_service_pb2 as pb
from charter_server.app import CharterServer
from charter_server.domain import ids
from grpc_status import rpc_status
from prometheus_client import REGISTRY

from ._serving import authorize_request, new_party
from ._support import REQUEST_ID_KEY, access_stub, bearer, catalog_stub, error_info, open_channel, reason, trailing
from .conftest import CapturedLogs, ServerFactory

GET_CALLER = "/charter.v1.AccessService/GetCaller"
GET_RIGHTS_HOLDER = "/charter.v1.CatalogService/GetRightsHolder"
GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")


def _completed(logs: CapturedLogs, request_id: str) -> dict[str, Any]:
    lines = [e for e in logs.events("rpc.completed") if e.get("request_id") == request_id]
    assert len(lines) == 1, lines
    return lines[0]


def test_one_rpc_completed_line_per_call(server: CharterServer, keys: Any, captured_logs: CapturedLogs) -> None:
    with open_channel(keys.target) as channel:
        access_stub(channel).GetCaller(
            access_pb.GetCallerRequest(), metadata=(*bearer(keys.admin), (REQUEST_ID_KEY, "log-ok-1")), timeout=5
        )
        with pytest.raises(grpc.RpcError) as anonymous:
            access_stub(channel).GetCaller(
                access_pb.GetCallerRequest(), metadata=((REQUEST_ID_KEY, "log-anon-1"),), timeout=5
            )
        with pytest.raises(grpc.RpcError) as denied:
            catalog_stub(channel).ListLicensees(
                pb.ListLicenseesRequest(),
                metadata=(*bearer(keys.generator), (REQUEST_ID_KEY, "log-denied-1")),
                timeout=5,
            )

    ok = _completed(captured_logs, "log-ok-1")
    anon = _completed(captured_logs, "log-anon-1")
    refused = _completed(captured_logs, "log-denied-1")
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert ok["method"] == GET_CALLER
    assert ok["caller"] == keys.admin_key_id
    assert ok["code"] == "OK"
    assert isinstance(ok["duration_ms"], int | float)
    assert ok["duration_ms"] >= 0
    assert ok["level"] == "info"
    assert "timestamp" in ok
    assert (anon["code"], anon["caller"]) == ("UNAUTHENTICATED", "")
    assert anon["reason"] == reason(anonymous.value) == "CREDENTIALS_MISSING"
    assert "reason" not in ok
    assert refused["code"] == "PERMISSION_DENIED"
    assert refused["reason"] == reason(denied.value) == "ROLE_NOT_PERMITTED"
    assert refused["method"] == "/charter.v1.CatalogService/ListLicensees"
    assert refused["caller"].startswith("key_")
    assert refused["caller"] != keys.admin_key_id


def test_metrics_count_calls_by_method_and_code(server: CharterServer, keys: Any) -> None:
    def count(code: str) -> float:
        return REGISTRY.get_sample_value("charter_rpc_total", {"method": GET_CALLER, "code": code}) or 0.0

    ok_before, refused_before = count("OK"), count("UNAUTHENTICATED")
    with open_channel(keys.target) as channel:
        access_stub(channel).GetCaller(access_pb.GetCallerRequest(), metadata=bearer(keys.auditor), timeout=5)
        with pytest.raises(grpc.RpcError):
            access_stub(channel).GetCaller(access_pb.GetCallerRequest(), timeout=5)

    assert count("OK") == ok_before + 1
    assert count("UNAUTHENTICATED") == refused_before + 1


def test_no_secret_reaches_the_logs(
    server: CharterServer, keys: Any, captured_logs: CapturedLogs, caplog: pytest.LogCaptureFixture
) -> None:
    key_id, _, secret_part = keys.admin.partition(".")
    wrong_secret = "WrongSecretPart" + secret_part[::-1]
    with open_channel(keys.target) as channel:
        created = access_stub(channel).CreateApiKey(
            access_pb.CreateApiKeyRequest(display_name="log test", role=api_key_pb2.ROLE_AUDITOR),
            metadata=bearer(keys.admin),
            timeout=5,
        )
        for metadata in (
            bearer(f"{key_id}.{wrong_secret}"),  # a known key with a wrong secret
            (("authorization", f"Basic {secret_part}"),),  # the wrong scheme
            (("authorization", f"Bearer {secret_part}"),),  # a secret without its key id
        ):
            with pytest.raises(grpc.RpcError) as caught:
                access_stub(channel).GetCaller(access_pb.GetCallerRequest(), metadata=metadata, timeout=5)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        access_stub(channel).GetCaller(access_pb.GetCallerRequest(), metadata=bearer(created.secret), timeout=5)

    everything = captured_logs.text + caplog.text
    assert captured_logs.events("rpc.completed")  # the capture did see the calls
    assert created.secret
    for secret in (keys.admin, secret_part, wrong_secret, created.secret, created.secret.partition(".")[2]):
        assert secret not in everything


def test_an_unexpected_exception_becomes_internal_with_the_request_id_only(
    database_url: str, server_factory: ServerFactory, captured_logs: CapturedLogs, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = server_factory(database_url=database_url)
    admin = srv.services.access.create_bootstrap_admin("internal test").secret

    def explode(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(srv.services.catalog, "get_rights_holder", explode)
    with open_channel(f"127.0.0.1:{srv.port}") as channel, pytest.raises(grpc.RpcError) as caught:
        catalog_stub(channel).GetRightsHolder(
            pb.GetRightsHolderRequest(id=ids.new_id("rights_holder")),
            metadata=(*bearer(admin), (REQUEST_ID_KEY, "boom-1")),
            timeout=5,
        )

    error = caught.value
    info = error_info(error)
    status = rpc_status.from_call(error)
    assert error.code() == grpc.StatusCode.INTERNAL
    assert info is not None
    assert info.reason == "INTERNAL"
    assert dict(info.metadata) == {"request_id": "boom-1"}
    assert status is not None
    assert len(status.details) == 1
    assert trailing(error, REQUEST_ID_KEY) == "boom-1"
    assert "secret detail" not in (error.details() or "")
    assert "RuntimeError" not in (error.details() or "")
    assert "secret detail" not in status.message
    logged = [e for e in captured_logs.events("rpc.unexpected_error") if e.get("request_id") == "boom-1"]
    assert len(logged) == 1
    assert "Traceback" in logged[0]["exception"]
    assert "RuntimeError: secret detail" in logged[0]["exception"]
    assert _completed(captured_logs, "boom-1")["code"] == "INTERNAL"


def test_the_request_id_is_echoed_or_made(server: CharterServer, keys: Any) -> None:
    with open_channel(keys.target) as channel:
        stub = access_stub(channel)
        _, given = stub.GetCaller.with_call(
            access_pb.GetCallerRequest(),
            metadata=(*bearer(keys.admin), (REQUEST_ID_KEY, "client-chosen.id:1")),
            timeout=5,
        )
        _, made = stub.GetCaller.with_call(access_pb.GetCallerRequest(), metadata=bearer(keys.admin), timeout=5)
        _, made_again = stub.GetCaller.with_call(access_pb.GetCallerRequest(), metadata=bearer(keys.admin), timeout=5)
        _, refused = stub.GetCaller.with_call(
            access_pb.GetCallerRequest(),
            metadata=(*bearer(keys.admin), (REQUEST_ID_KEY, "has spaces & symbols")),
            timeout=5,
        )
        _, too_long = stub.GetCaller.with_call(
            access_pb.GetCallerRequest(), metadata=(*bearer(keys.admin), (REQUEST_ID_KEY, "x" * 129)), timeout=5
        )
        with pytest.raises(grpc.RpcError) as failed:
            catalog_stub(channel).GetRightsHolder(
                pb.GetRightsHolderRequest(id=ids.new_id("rights_holder")),
                metadata=(*bearer(keys.admin), (REQUEST_ID_KEY, "failing-call-7")),
                timeout=5,
            )

    assert trailing(given, REQUEST_ID_KEY) == "client-chosen.id:1"
    made_ids = [trailing(call, REQUEST_ID_KEY) or "" for call in (made, made_again, refused, too_long)]
    assert all(GENERATED_ID.match(value) for value in made_ids), made_ids
    assert len(set(made_ids)) == 4
    assert failed.value.code() == grpc.StatusCode.NOT_FOUND
    assert trailing(failed.value, REQUEST_ID_KEY) == "failing-call-7"
    info = error_info(failed.value)
    assert info is not None
    assert info.metadata["request_id"] == "failing-call-7"


def test_a_message_over_the_limit_is_refused(database_url: str, server_factory: ServerFactory) -> None:
    srv = server_factory(database_url=database_url, max_message_bytes=1024)
    admin = srv.services.access.create_bootstrap_admin("limit test").secret
    big = pb.CreateRightsHolderRequest(
        rights_holder=rights_holder_pb2.RightsHolder(
            display_name="Big", contact_email="a@b.example", legal_name="L" * 2000
        ),
    )
    with open_channel(f"127.0.0.1:{srv.port}") as channel:
        with pytest.raises(grpc.RpcError) as caught:
            catalog_stub(channel).CreateRightsHolder(big, metadata=bearer(admin), timeout=5)
        small = access_stub(channel).GetCaller(access_pb.GetCallerRequest(), metadata=bearer(admin), timeout=5)
        listed = catalog_stub(channel).ListRightsHolders(
            pb.ListRightsHoldersRequest(query="Big", page_size=100), metadata=bearer(admin), timeout=5
        )

    info = error_info(caught.value)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert info is not None
    assert info.reason == "MESSAGE_TOO_LARGE"
    assert info.metadata["request_id"] == trailing(caught.value, REQUEST_ID_KEY)
    assert small.api_key.role == api_key_pb2.ROLE_ADMIN
    assert all(h.legal_name != "L" * 2000 for h in listed.rights_holders)


def test_calls_over_the_concurrency_limit_are_refused(
    database_url: str, server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = server_factory(database_url=database_url, max_concurrent_rpcs=1, max_workers=4)
    admin = srv.services.access.create_bootstrap_admin("concurrency test").secret
    entered, release = threading.Event(), threading.Event()
    original = srv.services.catalog.list_rights_holders

    def held(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(5)
        return original(*args, **kwargs)

    monkeypatch.setattr(srv.services.catalog, "list_rights_holders", held)
    with open_channel(f"127.0.0.1:{srv.port}") as channel:
        first = catalog_stub(channel).ListRightsHolders.future(
            pb.ListRightsHoldersRequest(), metadata=bearer(admin), timeout=10
        )
        assert entered.wait(5)
        try:
            with pytest.raises(grpc.RpcError) as caught:
                access_stub(channel).GetCaller(access_pb.GetCallerRequest(), metadata=bearer(admin), timeout=5)
        finally:
            release.set()
        first.result()

    info = error_info(caught.value)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert info is not None
    assert info.reason == "CONCURRENCY_LIMIT_REACHED"
    assert info.metadata["request_id"]
    assert first.code() == grpc.StatusCode.OK


@pytest.mark.parametrize(
    "method", ["/charter.v1.CatalogService/DeleteEverything", "/charter.v9.NoSuchService/Get", "/nonsense"]
)
def test_an_unknown_method_is_unimplemented(server: CharterServer, keys: Any, method: str) -> None:
    with open_channel(keys.target) as channel:
        call = channel.unary_unary(method)
        with pytest.raises(grpc.RpcError) as with_key:
            call(b"", metadata=bearer(keys.admin), timeout=5)
        with pytest.raises(grpc.RpcError) as without_key:
            call(b"", timeout=5)

    assert with_key.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert without_key.value.code() == grpc.StatusCode.UNIMPLEMENTED
    for error in (with_key.value, without_key.value):
        info = error_info(error)
        assert info is not None
        assert info.reason == "METHOD_NOT_FOUND"
        assert info.metadata["request_id"] == trailing(error, REQUEST_ID_KEY)


def test_a_message_far_over_the_limit_is_refused_by_grpc_itself(
    database_url: str, server_factory: ServerFactory
) -> None:
    """Beyond the limit plus 1 MiB, gRPC's transport refuses the message before Charter sees it:
    RESOURCE_EXHAUSTED without details (the documented exception)."""
    srv = server_factory(database_url=database_url, max_message_bytes=1024)
    huge = pb.CreateRightsHolderRequest(
        rights_holder=rights_holder_pb2.RightsHolder(
            display_name="Huge", contact_email="a@b.example", legal_name="L" * (2 << 20)
        )
    )
    with open_channel(f"127.0.0.1:{srv.port}") as channel, pytest.raises(grpc.RpcError) as caught:
        catalog_stub(channel).CreateRightsHolder(huge, timeout=5)

    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_info(caught.value) is None


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(("admin", "admin"), id="the same key twice"),
        pytest.param(("admin", "junk"), id="a key, then junk"),
        pytest.param(("junk", "admin"), id="junk, then a key"),
    ],
)
def test_two_authorization_headers_are_refused(server: CharterServer, keys: Any, headers: tuple[str, str]) -> None:
    """Seen: two ``authorization`` headers were accepted (the first one won)."""
    values = {"admin": f"Bearer {keys.admin}", "junk": "Bearer key_00000000000000000000000000000000.junk"}
    metadata = tuple(("authorization", values[name]) for name in headers)
    with open_channel(keys.target) as channel, pytest.raises(grpc.RpcError) as caught:
        access_stub(channel).GetCaller(access_pb.GetCallerRequest(), metadata=metadata, timeout=5)

    info = error_info(caught.value)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert info is not None
    assert info.reason == "CREDENTIALS_INVALID"


def test_an_authorize_whose_view_cannot_be_confirmed_fails_closed_and_says_why_in_the_log(
    database_url: str, server_factory: ServerFactory, captured_logs: CapturedLogs, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = server_factory(database_url=database_url)
    target = f"127.0.0.1:{srv.port}"
    party = new_party(target, srv.services.access.create_bootstrap_admin("unconfirmed").secret)
    # As when confirming takes longer than the lease (a slow database, a starved process).
    monkeypatch.setattr(srv.services.view, "is_fresh", lambda _generation: False)
    monkeypatch.setattr(srv.services.view, "confirm", lambda _generation: False)
    with open_channel(target) as channel, pytest.raises(grpc.RpcError) as refused:
        az_grpc.AuthorizationServiceStub(channel).Authorize(
            authorize_request(party), metadata=bearer(party.generator), timeout=10
        )

    warned = captured_logs.events("authz.view_unconfirmed")
    completed = [e for e in captured_logs.events("rpc.completed") if e["method"].endswith("/Authorize")]
    assert (refused.value.code(), reason(refused.value)) == (grpc.StatusCode.UNAVAILABLE, "STORAGE_UNAVAILABLE")
    assert [(w["attempts"], w["lease_seconds"]) for w in warned] == [(3, srv.services.view.lease_seconds)]
    assert [(c["code"], c["reason"]) for c in completed] == [("UNAVAILABLE", "STORAGE_UNAVAILABLE")]
