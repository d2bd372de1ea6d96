"""The synchronous Client against the real server through a tap: metadata, paging, retries, errors, deadlines."""

from __future__ import annotations

import datetime as dt
import re
import socket

import charter
import grpc
import pytest
from charter import Client, RetryPolicy
from charter.v1 import api_key_pb2, licensee_pb2, rights_holder_pb2
from charter_server.domain import errors

from ._live import Live, unique
from ._tap import Tap

_HEX32 = re.compile(r"[0-9a-f]{32}")


_MISSING = "0" * 32


def _create_holders(client: Client, count: int, marker: str) -> list[rights_holder_pb2.RightsHolder]:
    return [
        client.create_rights_holder(display_name=f"{marker} {i}", contact_email=f"s{i}@example.com")
        for i in range(count)
    ]


def test_every_call_sends_the_key_and_a_fresh_request_id(client: Client, tap: Tap, sdk_live: Live) -> None:
    created = client.create_rights_holder(display_name="Studio", contact_email="s@example.com")
    fetched = client.get_rights_holder(created.id)

    first, second = tap.calls
    assert fetched == created
    assert first.metadata["authorization"] == f"Bearer {sdk_live.admin}"
    assert second.metadata["authorization"] == f"Bearer {sdk_live.admin}"
    assert _HEX32.fullmatch(first.metadata["x-request-id"])
    assert first.metadata["x-request-id"] != second.metadata["x-request-id"]
    assert first.metadata["user-agent"].startswith(f"charter-sdk/{charter.__version__}")


def test_create_fills_the_idempotency_request_id(client: Client, tap: Tap) -> None:
    fixed = unique("fixed-")
    client.create_rights_holder(display_name="A", contact_email="a@example.com")
    again = client.create_licensee(display_name="L", contact_email="l@example.com", platform="app", request_id=fixed)
    repeated = client.create_licensee(display_name="L", contact_email="l@example.com", platform="app", request_id=fixed)

    (holder_call,) = tap.calls_of("CreateRightsHolder")
    assert _HEX32.fullmatch(holder_call.request.request_id)
    assert [c.request.request_id for c in tap.calls_of("CreateLicensee")] == [fixed, fixed]
    assert repeated.id == again.id


def test_list_is_lazy_and_follows_page_tokens(client: Client, tap: Tap) -> None:
    marker = unique()
    created = _create_holders(client, 5, marker)
    tap.clear()

    pager = client.list_rights_holders(query=marker, page_size=2)
    calls_before_iterating = len(tap.calls)
    first = next(pager)
    calls_after_first = len(tap.calls)
    rest = list(pager)

    list_calls = tap.calls_of("ListRightsHolders")
    tokens = [c.request.page_token for c in list_calls]
    assert calls_before_iterating == 0
    assert calls_after_first == 1
    assert [h.id for h in [first, *rest]] == [h.id for h in created]
    assert len(tokens) == 3
    assert tokens[0] == ""
    assert all(tokens[1:]) and tokens[1] != tokens[2]
    assert {c.request.page_size for c in list_calls} == {2}
    assert {c.request.query for c in list_calls} == {marker}
    assert len({c.metadata["x-request-id"] for c in list_calls}) == 3


def test_list_passes_filters_and_leaves_the_others_unset(client: Client, tap: Tap) -> None:
    marker = unique()
    holder = client.create_rights_holder(display_name=f"Archived {marker}", contact_email="a@example.com")
    client.archive_rights_holder(holder.id)

    archived = list(client.list_rights_holders(state="archived", query=marker.upper()))
    active = list(client.list_rights_holders(query=marker))

    filtered, unfiltered = (call.request for call in tap.calls_of("ListRightsHolders"))
    assert filtered.state == rights_holder_pb2.RightsHolder.STATE_ARCHIVED
    assert filtered.query == marker.upper()
    assert unfiltered.state == rights_holder_pb2.RightsHolder.STATE_UNSPECIFIED
    assert [h.id for h in archived] == [holder.id]
    assert active == []


def test_update_sends_a_field_mask_of_the_given_fields(client: Client, tap: Tap) -> None:
    holder = client.create_rights_holder(display_name="Old", contact_email="a@example.com", legal_name="Old KK")

    updated = client.update_rights_holder(holder.id, display_name="New", legal_name="")

    (call,) = tap.calls_of("UpdateRightsHolder")
    assert list(call.request.update_mask.paths) == ["display_name", "legal_name"]
    assert updated.display_name == "New"
    assert updated.legal_name == ""
    assert updated.contact_email == "a@example.com"


def test_not_found_becomes_a_typed_error_with_the_request_id(client: Client, tap: Tap) -> None:
    with pytest.raises(charter.NotFoundError) as exc:
        client.get_rights_holder("rh_" + _MISSING)

    (call,) = tap.calls
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


def test_missing_key_is_unauthenticated(tap: Tap) -> None:
    with Client(tap.target) as anonymous, pytest.raises(charter.UnauthenticatedError) as exc:
        anonymous.get_caller()

    (call,) = tap.calls
    assert exc.value.reason == "CREDENTIALS_MISSING"
    assert "authorization" not in call.metadata


def test_unavailable_is_retried_by_grpc(tap: Tap, sdk_live: Live) -> None:
    tap.fail("GetCaller", errors.StorageBusy("busy"), times=2)
    retry = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.02)

    with Client(tap.target, api_key=sdk_live.admin, retry=retry) as client:
        caller = client.get_caller()

    calls = tap.calls_of("GetCaller")
    assert caller.id == sdk_live.admin_key_id
    assert len(calls) == 3
    # Retries are the same call: gRPC resends the same metadata, so one request id.
    assert len({c.metadata["x-request-id"] for c in calls}) == 1


def test_retries_give_up_after_max_attempts(tap: Tap, sdk_live: Live) -> None:
    tap.fail("GetCaller", errors.StorageBusy("busy"), times=10)
    retry = RetryPolicy(max_attempts=2, initial_backoff=0.01, max_backoff=0.01)

    with (
        Client(tap.target, api_key=sdk_live.admin, retry=retry) as client,
        pytest.raises(charter.UnavailableError) as exc,
    ):
        client.get_caller()

    assert exc.value.reason == "STORAGE_BUSY"
    assert len(tap.calls_of("GetCaller")) == 2


def test_no_retry_policy_means_one_attempt(tap: Tap, sdk_live: Live) -> None:
    tap.fail("GetCaller", errors.ShuttingDown("draining"), times=1)

    with (
        Client(tap.target, api_key=sdk_live.admin, retry=None) as client,
        pytest.raises(charter.UnavailableError) as exc,
    ):
        client.get_caller()

    assert exc.value.reason == "SHUTTING_DOWN"
    assert len(tap.calls_of("GetCaller")) == 1


def test_a_call_cancelled_before_charter_saw_it_is_repeated(tap: Tap, sdk_live: Live) -> None:
    """CANCELLED without a request id: the transport cancelled the call before any handler ran (a
    server stopping in that instant), so it changed nothing and is safe to repeat."""
    tap.fail("GetCaller", grpc.StatusCode.CANCELLED, times=2)
    retry = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.02)

    with Client(tap.target, api_key=sdk_live.admin, retry=retry) as client:
        caller = client.get_caller()

    calls = tap.calls_of("GetCaller")
    assert caller.id == sdk_live.admin_key_id
    assert len(calls) == 3
    assert len({c.metadata["x-request-id"] for c in calls}) == 1  # one call, for the server's log


def test_a_call_cancelled_after_charter_saw_it_is_not_repeated(tap: Tap, sdk_live: Live) -> None:
    tap.fail("GetCaller", grpc.StatusCode.CANCELLED, times=5, with_request_id=True)

    with Client(tap.target, api_key=sdk_live.admin) as client, pytest.raises(charter.CancelledError) as exc:
        client.get_caller()

    assert exc.value.request_id
    assert len(tap.calls_of("GetCaller")) == 1


def test_a_call_cancelled_before_charter_saw_it_is_repeated_only_while_the_policy_allows(
    tap: Tap, sdk_live: Live
) -> None:
    tap.fail("GetCaller", grpc.StatusCode.CANCELLED, times=10)

    with (
        Client(tap.target, api_key=sdk_live.admin, retry=RetryPolicy(max_attempts=2, initial_backoff=0.01)) as client,
        pytest.raises(charter.CancelledError),
    ):
        client.get_caller()
    with Client(tap.target, api_key=sdk_live.admin, retry=None) as once, pytest.raises(charter.CancelledError):
        once.get_caller()

    assert len(tap.calls_of("GetCaller")) == 3


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (grpc.StatusCode.INTERNAL, charter.InternalError),
        (grpc.StatusCode.ABORTED, charter.AbortedError),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, charter.ResourceExhaustedError),
    ],
)
def test_other_codes_are_not_retried(
    tap: Tap, sdk_live: Live, code: grpc.StatusCode, error: type[charter.CharterError]
) -> None:
    tap.fail("GetCaller", code, times=5)

    with Client(tap.target, api_key=sdk_live.admin) as client, pytest.raises(error) as exc:
        client.get_caller()

    assert exc.value.code is code
    assert len(tap.calls_of("GetCaller")) == 1


def test_default_deadline_applies(tap: Tap, sdk_live: Live) -> None:
    tap.delay("GetCaller", 0.5)

    with (
        Client(tap.target, api_key=sdk_live.admin, timeout=0.05) as client,
        pytest.raises(charter.DeadlineExceededError) as exc,
    ):
        client.get_caller()

    assert exc.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
    assert exc.value.request_id is not None


def test_per_call_deadline_overrides_the_default(client: Client, tap: Tap) -> None:
    tap.delay("GetCaller", 0.5)

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
        Client(f"127.0.0.1:{_free_port()}", api_key="key_unused.secret", retry=None) as client,
        pytest.raises(charter.UnavailableError) as exc,
    ):
        client.get_caller()

    assert exc.value.reason is None
    assert exc.value.request_id is not None
    assert _HEX32.fullmatch(exc.value.request_id)


def test_licensees_round_trip(client: Client, tap: Tap) -> None:
    platform = unique("video-app-").lower()
    created = client.create_licensee(
        display_name="Video App", contact_email="ops@example.com", platform=platform, legal_name="Video KK"
    )
    client.create_licensee(display_name="Other", contact_email="o@example.com", platform=f"{platform}-other")

    fetched = client.get_licensee(created.id)
    on_platform = list(client.list_licensees(platform=platform))
    updated = client.update_licensee(created.id, platform=f"{platform}-2")
    archived = client.archive_licensee(created.id)

    (update_call,) = tap.calls_of("UpdateLicensee")
    assert fetched == created
    assert [lic.id for lic in on_platform] == [created.id]
    assert tap.calls_of("ListLicensees")[0].request.platform == platform
    assert list(update_call.request.update_mask.paths) == ["platform"]
    assert updated.platform == f"{platform}-2"
    assert archived.state == licensee_pb2.Licensee.STATE_ARCHIVED


def test_api_keys_round_trip(client: Client, staff: Client, tap: Tap, sdk_live: Live) -> None:
    expires = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=30)
    licensee = staff.create_licensee(display_name="Farm", contact_email="ops@example.com", platform="farm")

    created = client.create_api_key(display_name="farm", role="generator", licensee_id=licensee.id, expire_time=expires)
    fetched = client.get_api_key(created.api_key.id)
    generators = list(client.list_api_keys(role=charter.Role.ROLE_GENERATOR))
    revoked = client.revoke_api_key(created.api_key.id)
    active_after = list(client.list_api_keys())
    everything = list(client.list_api_keys(show_inactive=True, page_size=1))
    caller = client.get_caller()

    (create_call,) = tap.calls_of("CreateApiKey")
    list_calls = tap.calls_of("ListApiKeys")
    assert created.secret.startswith(created.api_key.id)
    assert create_call.request.role == api_key_pb2.ROLE_GENERATOR
    assert create_call.request.expire_time.ToDatetime(tzinfo=dt.UTC) == expires
    assert _HEX32.fullmatch(create_call.request.request_id)
    assert fetched.id == created.api_key.id
    assert created.api_key.id in [k.id for k in generators]
    assert {k.role for k in generators} == {api_key_pb2.ROLE_GENERATOR}
    assert revoked.state == api_key_pb2.ApiKey.STATE_REVOKED
    assert created.api_key.id not in [k.id for k in active_after]
    assert sdk_live.admin_key_id in [k.id for k in active_after]
    assert {created.api_key.id, sdk_live.admin_key_id} <= {k.id for k in everything}
    assert {c.request.role for c in list_calls if not c.request.show_inactive} == {
        api_key_pb2.ROLE_GENERATOR,
        api_key_pb2.ROLE_UNSPECIFIED,  # no filter unless given
    }
    assert {c.request.page_size for c in list_calls if c.request.show_inactive} == {1}
    assert caller.id == sdk_live.admin_key_id


def test_bad_arguments_fail_before_any_call(client: Client, tap: Tap) -> None:
    with pytest.raises(ValueError) as bad_role:
        client.create_api_key(display_name="k", role="superuser")
    with pytest.raises(ValueError) as bad_state:
        client.list_rights_holders(state="deleted")
    with pytest.raises(ValueError) as empty_update:
        client.update_rights_holder("rh_1")

    assert (bad_role.type, bad_state.type, empty_update.type) == (ValueError, ValueError, ValueError)
    assert tap.calls == []


def test_close_is_idempotent_and_repr_hides_the_key(tap: Tap, sdk_live: Live) -> None:
    client = Client(tap.target, api_key=sdk_live.admin)
    client.close()
    client.close()

    assert sdk_live.admin not in repr(client)
    assert repr(client) == f"Client(target={tap.target!r})"
    assert client.target == tap.target
