"""The synchronous Client against an in-process fake server: metadata, paging, retries, errors, deadlines."""

from __future__ import annotations

import datetime as dt
import re
import socket

import charter
import grpc
import pytest
from charter import Client, RetryPolicy
from charter.v1 import api_key_pb2, licensee_pb2, rights_holder_pb2

from ._fakes import API_KEY, CALLER_ID, RunningFake

_HEX32 = re.compile(r"[0-9a-f]{32}")


def _create_holders(client: Client, count: int) -> list[rights_holder_pb2.RightsHolder]:
    return [
        client.create_rights_holder(display_name=f"Studio {i}", contact_email=f"s{i}@example.com") for i in range(count)
    ]


def test_every_call_sends_the_key_and_a_fresh_request_id(client: Client, server: RunningFake) -> None:
    created = client.create_rights_holder(display_name="Studio", contact_email="s@example.com")
    fetched = client.get_rights_holder(created.id)

    first, second = server.fake.calls
    assert fetched == created
    assert first.metadata["authorization"] == f"Bearer {API_KEY}"
    assert second.metadata["authorization"] == f"Bearer {API_KEY}"
    assert _HEX32.fullmatch(first.metadata["x-request-id"])
    assert first.metadata["x-request-id"] != second.metadata["x-request-id"]
    assert first.metadata["user-agent"].startswith(f"charter-sdk/{charter.__version__}")


def test_create_fills_the_idempotency_request_id(client: Client, server: RunningFake) -> None:
    client.create_rights_holder(display_name="A", contact_email="a@example.com")
    again = client.create_licensee(
        display_name="L", contact_email="l@example.com", platform="app", request_id="fixed-id"
    )
    repeated = client.create_licensee(
        display_name="L", contact_email="l@example.com", platform="app", request_id="fixed-id"
    )

    (holder_call,) = server.fake.calls_of("CreateRightsHolder")
    assert _HEX32.fullmatch(holder_call.request.request_id)
    assert [c.request.request_id for c in server.fake.calls_of("CreateLicensee")] == ["fixed-id", "fixed-id"]
    assert repeated.id == again.id


def test_list_is_lazy_and_follows_page_tokens(client: Client, server: RunningFake) -> None:
    created = _create_holders(client, 5)
    server.fake.calls.clear()

    pager = client.list_rights_holders(page_size=2)
    calls_before_iterating = len(server.fake.calls)
    first = next(pager)
    calls_after_first = len(server.fake.calls)
    rest = list(pager)

    list_calls = server.fake.calls_of("ListRightsHolders")
    assert calls_before_iterating == 0
    assert calls_after_first == 1
    assert [h.id for h in [first, *rest]] == [h.id for h in created]
    assert [c.request.page_token for c in list_calls] == ["", "2", "4"]
    assert {c.request.page_size for c in list_calls} == {2}
    assert len({c.metadata["x-request-id"] for c in list_calls}) == 3


def test_list_passes_filters(client: Client, server: RunningFake) -> None:
    holder = client.create_rights_holder(display_name="Archived Studio", contact_email="a@example.com")
    client.archive_rights_holder(holder.id)

    archived = list(client.list_rights_holders(state="archived", query="studio"))
    active = list(client.list_rights_holders())

    request = server.fake.calls_of("ListRightsHolders")[0].request
    assert request.state == rights_holder_pb2.RightsHolder.STATE_ARCHIVED
    assert request.query == "studio"
    assert [h.id for h in archived] == [holder.id]
    assert active == []


def test_update_sends_a_field_mask_of_the_given_fields(client: Client, server: RunningFake) -> None:
    holder = client.create_rights_holder(display_name="Old", contact_email="a@example.com", legal_name="Old KK")

    updated = client.update_rights_holder(holder.id, display_name="New", legal_name="")

    (call,) = server.fake.calls_of("UpdateRightsHolder")
    assert list(call.request.update_mask.paths) == ["display_name", "legal_name"]
    assert updated.display_name == "New"
    assert updated.legal_name == ""
    assert updated.contact_email == "a@example.com"


def test_not_found_becomes_a_typed_error_with_the_request_id(client: Client, server: RunningFake) -> None:
    with pytest.raises(charter.NotFoundError) as exc:
        client.get_rights_holder("rh_missing")

    (call,) = server.fake.calls
    assert exc.value.code is grpc.StatusCode.NOT_FOUND
    assert exc.value.reason == "RIGHTS_HOLDER_NOT_FOUND"
    assert exc.value.domain == "charter.v1"
    assert exc.value.request_id == call.metadata["x-request-id"]
    assert isinstance(exc.value.__cause__, grpc.RpcError)


def test_validation_errors_carry_field_violations(client: Client) -> None:
    with pytest.raises(charter.InvalidArgumentError) as exc:
        client.create_licensee(display_name="", contact_email="l@example.com", platform="")

    assert exc.value.reason == "INVALID_FIELD"
    assert {v.field for v in exc.value.field_violations} == {"licensee.display_name", "licensee.platform"}


def test_failed_precondition_is_typed(client: Client) -> None:
    holder = client.create_rights_holder(display_name="S", contact_email="s@example.com")
    client.archive_rights_holder(holder.id)

    with pytest.raises(charter.FailedPreconditionError) as exc:
        client.update_rights_holder(holder.id, display_name="T")

    assert exc.value.reason == "RIGHTS_HOLDER_ARCHIVED"


def test_missing_key_is_unauthenticated(server: RunningFake) -> None:
    with Client(server.target) as anonymous, pytest.raises(charter.UnauthenticatedError) as exc:
        anonymous.get_caller()

    (call,) = server.fake.calls
    assert exc.value.reason == "CREDENTIALS_MISSING"
    assert "authorization" not in call.metadata


def test_unavailable_is_retried_by_grpc(server: RunningFake) -> None:
    server.fake.fail("GetCaller", grpc.StatusCode.UNAVAILABLE, "STORAGE_BUSY", times=2)
    retry = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.02)

    with Client(server.target, api_key=API_KEY, retry=retry) as client:
        caller = client.get_caller()

    calls = server.fake.calls_of("GetCaller")
    assert caller.id == CALLER_ID
    assert len(calls) == 3
    # Retries are the same call: gRPC resends the same metadata, so one request id.
    assert len({c.metadata["x-request-id"] for c in calls}) == 1


def test_retries_give_up_after_max_attempts(server: RunningFake) -> None:
    server.fake.fail("GetCaller", grpc.StatusCode.UNAVAILABLE, "STORAGE_BUSY", times=10)
    retry = RetryPolicy(max_attempts=2, initial_backoff=0.01, max_backoff=0.01)

    with Client(server.target, api_key=API_KEY, retry=retry) as client, pytest.raises(charter.UnavailableError) as exc:
        client.get_caller()

    assert exc.value.reason == "STORAGE_BUSY"
    assert len(server.fake.calls_of("GetCaller")) == 2


def test_no_retry_policy_means_one_attempt(server: RunningFake) -> None:
    server.fake.fail("GetCaller", grpc.StatusCode.UNAVAILABLE, "SHUTTING_DOWN", times=1)

    with Client(server.target, api_key=API_KEY, retry=None) as client, pytest.raises(charter.UnavailableError) as exc:
        client.get_caller()

    assert exc.value.reason == "SHUTTING_DOWN"
    assert len(server.fake.calls_of("GetCaller")) == 1


def test_a_call_cancelled_before_charter_saw_it_is_repeated(server: RunningFake) -> None:
    """CANCELLED without a request id: the transport cancelled the call before any handler ran (a
    server stopping in that instant), so it changed nothing and is safe to repeat."""
    server.fake.fail("GetCaller", grpc.StatusCode.CANCELLED, "", times=2)
    retry = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.02)

    with Client(server.target, api_key=API_KEY, retry=retry) as client:
        caller = client.get_caller()

    calls = server.fake.calls_of("GetCaller")
    assert caller.id == CALLER_ID
    assert len(calls) == 3
    assert len({c.metadata["x-request-id"] for c in calls}) == 1  # one call, for the server's log


def test_a_call_cancelled_after_charter_saw_it_is_not_repeated(server: RunningFake) -> None:
    server.fake.fail("GetCaller", grpc.StatusCode.CANCELLED, "INTERNAL", times=5)

    with Client(server.target, api_key=API_KEY) as client, pytest.raises(charter.CancelledError) as exc:
        client.get_caller()

    assert exc.value.request_id
    assert len(server.fake.calls_of("GetCaller")) == 1


def test_a_call_cancelled_before_charter_saw_it_is_repeated_only_while_the_policy_allows(
    server: RunningFake,
) -> None:
    server.fake.fail("GetCaller", grpc.StatusCode.CANCELLED, "", times=10)

    with (
        Client(server.target, api_key=API_KEY, retry=RetryPolicy(max_attempts=2, initial_backoff=0.01)) as client,
        pytest.raises(charter.CancelledError),
    ):
        client.get_caller()
    with Client(server.target, api_key=API_KEY, retry=None) as once, pytest.raises(charter.CancelledError):
        once.get_caller()

    assert len(server.fake.calls_of("GetCaller")) == 3


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (grpc.StatusCode.INTERNAL, charter.InternalError),
        (grpc.StatusCode.ABORTED, charter.AbortedError),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, charter.ResourceExhaustedError),
    ],
)
def test_other_codes_are_not_retried(
    server: RunningFake, code: grpc.StatusCode, error: type[charter.CharterError]
) -> None:
    server.fake.fail("GetCaller", code, "INTERNAL", times=5)

    with Client(server.target, api_key=API_KEY) as client, pytest.raises(error) as exc:
        client.get_caller()

    assert exc.value.code is code
    assert len(server.fake.calls_of("GetCaller")) == 1


def test_default_deadline_applies(server: RunningFake) -> None:
    server.fake.delays["GetCaller"] = 0.5

    with (
        Client(server.target, api_key=API_KEY, timeout=0.05) as client,
        pytest.raises(charter.DeadlineExceededError) as exc,
    ):
        client.get_caller()

    assert exc.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
    assert exc.value.request_id is not None


def test_per_call_deadline_overrides_the_default(client: Client, server: RunningFake) -> None:
    server.fake.delays["GetCaller"] = 0.5

    with pytest.raises(charter.DeadlineExceededError) as exc:
        client.get_caller(timeout=0.05)

    assert exc.value.code is grpc.StatusCode.DEADLINE_EXCEEDED


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_unreachable_server_is_unavailable_with_the_sent_request_id() -> None:
    with (
        Client(f"127.0.0.1:{_free_port()}", api_key=API_KEY, retry=None) as client,
        pytest.raises(charter.UnavailableError) as exc,
    ):
        client.get_caller()

    assert exc.value.reason is None
    assert exc.value.request_id is not None
    assert _HEX32.fullmatch(exc.value.request_id)


def test_licensees_round_trip(client: Client, server: RunningFake) -> None:
    created = client.create_licensee(
        display_name="Video App", contact_email="ops@example.com", platform="video-app", legal_name="Video KK"
    )
    client.create_licensee(display_name="Other", contact_email="o@example.com", platform="other-app")

    fetched = client.get_licensee(created.id)
    on_platform = list(client.list_licensees(platform="video-app"))
    updated = client.update_licensee(created.id, platform="video-app-2")
    archived = client.archive_licensee(created.id)

    (update_call,) = server.fake.calls_of("UpdateLicensee")
    assert fetched == created
    assert [lic.id for lic in on_platform] == [created.id]
    assert server.fake.calls_of("ListLicensees")[0].request.platform == "video-app"
    assert list(update_call.request.update_mask.paths) == ["platform"]
    assert updated.platform == "video-app-2"
    assert archived.state == licensee_pb2.Licensee.STATE_ARCHIVED


def test_api_keys_round_trip(client: Client, server: RunningFake) -> None:
    expires = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=30)

    created = client.create_api_key(display_name="farm", role="generator", licensee_id="lic_1", expire_time=expires)
    fetched = client.get_api_key(created.api_key.id)
    generators = list(client.list_api_keys(role=charter.Role.ROLE_GENERATOR))
    revoked = client.revoke_api_key(created.api_key.id)
    active_after = list(client.list_api_keys())
    everything = list(client.list_api_keys(show_inactive=True, page_size=1))
    caller = client.get_caller()

    (create_call,) = server.fake.calls_of("CreateApiKey")
    assert created.secret.startswith(created.api_key.id)
    assert create_call.request.role == api_key_pb2.ROLE_GENERATOR
    assert create_call.request.expire_time.ToDatetime(tzinfo=dt.UTC) == expires
    assert _HEX32.fullmatch(create_call.request.request_id)
    assert fetched.id == created.api_key.id
    assert [k.id for k in generators] == [created.api_key.id]
    assert revoked.state == api_key_pb2.ApiKey.STATE_REVOKED
    assert [k.id for k in active_after] == [CALLER_ID]
    assert {k.id for k in everything} == {CALLER_ID, created.api_key.id}
    assert caller.id == CALLER_ID


def test_bad_arguments_fail_before_any_call(client: Client, server: RunningFake) -> None:
    with pytest.raises(ValueError) as bad_role:
        client.create_api_key(display_name="k", role="superuser")
    with pytest.raises(ValueError) as bad_state:
        client.list_rights_holders(state="deleted")
    with pytest.raises(ValueError) as empty_update:
        client.update_rights_holder("rh_1")

    assert (bad_role.type, bad_state.type, empty_update.type) == (ValueError, ValueError, ValueError)
    assert server.fake.calls == []


def test_close_is_idempotent_and_repr_hides_the_key(server: RunningFake) -> None:
    client = Client(server.target, api_key=API_KEY)
    client.close()
    client.close()

    assert API_KEY not in repr(client)
    assert client.target == server.target
