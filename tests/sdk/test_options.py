"""Pure option handling and request building shared by both clients."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import pkgutil
import re
from typing import Any

import charter
import charter.v1
import pytest
from charter import _requests
from charter._options import CHARTER_SERVICES, ClientConfig, RetryPolicy, service_config
from charter.v1 import api_key_pb2, licensee_pb2, rights_holder_pb2, terms_pb2


def _config(**overrides: Any) -> ClientConfig:
    options: dict[str, Any] = {
        "api_key": "key_abc.secret",
        "root_certificates": None,
        "client_certificate": None,
        "client_private_key": None,
        "secure": False,
        "timeout": 10.0,
        "retry": RetryPolicy(),
        "options": (),
    }
    options.update(overrides)
    return ClientConfig.create(options.pop("target", "localhost:50051"), **options)


# -- service config ---------------------------------------------------------------------------


def test_service_config_retries_unavailable_on_every_service_but_not_its_streams() -> None:
    config = json.loads(service_config(RetryPolicy()))

    method_config, streams = config["methodConfig"]
    assert [name["service"] for name in method_config["name"]] == list(CHARTER_SERVICES)
    # The method's own config is the more specific one, so gRPC does not retry the stream.
    assert streams == {"name": [{"service": "charter.v1.AuthorizationService", "method": "WatchRevocations"}]}
    assert method_config["retryPolicy"] == {
        "maxAttempts": 4,
        "initialBackoff": "0.1s",
        "maxBackoff": "2s",
        "backoffMultiplier": 2.0,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }


def test_service_config_durations_use_protobuf_json_form() -> None:
    config = json.loads(
        service_config(RetryPolicy(max_attempts=5, initial_backoff=0.000001, max_backoff=12.5, backoff_multiplier=1.5))
    )

    policy = config["methodConfig"][0]["retryPolicy"]
    assert policy["initialBackoff"] == "0.000001s"
    assert policy["maxBackoff"] == "12.5s"
    assert re.fullmatch(r"\d+(\.\d{1,9})?s", policy["initialBackoff"])


def test_no_retry_policy_means_no_method_config() -> None:
    assert json.loads(service_config(None)) == {"methodConfig": []}


def test_charter_services_lists_every_generated_service() -> None:
    found: set[str] = set()
    for module_info in pkgutil.iter_modules(charter.v1.__path__):
        if module_info.name.endswith("_pb2"):
            module = importlib.import_module(f"charter.v1.{module_info.name}")
            found.update(service.full_name for service in module.DESCRIPTOR.services_by_name.values())

    assert found == set(CHARTER_SERVICES)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 1},
        {"max_attempts": 6},
        {"initial_backoff": 0},
        {"initial_backoff": -1.0},
        {"max_backoff": float("inf")},
        {"backoff_multiplier": 0},
        {"initial_backoff": 3.0, "max_backoff": 2.0},
    ],
)
def test_retry_policy_rejects_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError) as exc:
        RetryPolicy(**kwargs)

    assert exc.value.args


def test_retry_policy_is_frozen() -> None:
    policy = RetryPolicy()

    with pytest.raises(AttributeError):
        policy.max_attempts = 5  # type: ignore[misc]

    assert policy.max_attempts == 4


# -- client config ----------------------------------------------------------------------------


def test_channel_options_enable_retries_and_carry_the_service_config() -> None:
    options = dict(_config().channel_options())

    assert options["grpc.enable_retries"] == 1
    assert json.loads(options["grpc.service_config"]) == json.loads(service_config(RetryPolicy()))
    assert options["grpc.primary_user_agent"] == f"charter-sdk/{charter.__version__}"


def test_a_restarted_server_is_found_within_seconds() -> None:
    options = dict(_config().channel_options())

    # gRPC's defaults: two minutes between attempts, 20 s before a hanging attempt is given up.
    assert options["grpc.max_reconnect_backoff_ms"] <= 3000
    assert options["grpc.min_reconnect_backoff_ms"] <= 3000


def test_a_dead_connection_is_found_by_pings_within_40_seconds() -> None:
    options = dict(_config().channel_options())

    # gRPC's defaults: no pings at all, and one minute for a ping's answer.
    assert options["grpc.keepalive_time_ms"] == 30_000
    assert options["grpc.keepalive_timeout_ms"] == options["grpc.http2.ping_timeout_ms"] == 10_000
    # A revocation stream sends no data after its request: pings must not stop after two.
    assert options["grpc.http2.max_pings_without_data"] == 0


def test_a_callers_keepalive_timeout_is_also_the_ping_timeout_unless_that_is_given() -> None:
    timeout_only = dict(_config(options=[("grpc.keepalive_timeout_ms", 1000)]).channel_options())
    both = dict(
        _config(options=[("grpc.keepalive_timeout_ms", 1000), ("grpc.http2.ping_timeout_ms", 2000)]).channel_options()
    )

    assert timeout_only["grpc.http2.ping_timeout_ms"] == 1000
    assert both["grpc.http2.ping_timeout_ms"] == 2000


def test_the_channel_of_the_streams_has_grpc_retries_off_whatever_the_options_say() -> None:
    streams = dict(_config(options=[("grpc.enable_retries", 1)]).channel_options(retries=False))
    calls = dict(_config().channel_options())

    assert streams["grpc.enable_retries"] == 0
    assert calls["grpc.enable_retries"] == 1
    assert streams["grpc.keepalive_time_ms"] == calls["grpc.keepalive_time_ms"]  # the rest alike


def test_disabled_retries_turn_grpc_retries_off() -> None:
    options = dict(_config(retry=None).channel_options())

    assert options["grpc.enable_retries"] == 0


def test_caller_options_override_the_clients_own() -> None:
    options = dict(
        _config(options=[("grpc.enable_retries", 0), ("grpc.max_receive_message_length", 1024)]).channel_options()
    )

    assert options["grpc.enable_retries"] == 0
    assert options["grpc.max_receive_message_length"] == 1024


def test_metadata_carries_bearer_key_and_request_id() -> None:
    assert _config().metadata("rid") == (("authorization", "Bearer key_abc.secret"), ("x-request-id", "rid"))
    assert _config(api_key=None).metadata("rid") == (("x-request-id", "rid"),)


def test_tls_is_used_with_roots_client_certificates_or_secure() -> None:
    assert not _config().secure
    assert _config().channel_credentials() is None
    assert _config(secure=True).secure
    assert _config(root_certificates=b"pem").secure
    assert _config(client_certificate=b"pem", client_private_key=b"key").secure


def test_per_call_timeout_overrides_the_default() -> None:
    config = _config(timeout=3.0)

    assert config.deadline(None) == 3.0
    assert config.deadline(0.5) == 0.5
    assert _config(timeout=None).deadline(None) is None


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"target": ""}, ValueError),
        ({"target": "   "}, ValueError),
        ({"api_key": ""}, ValueError),
        ({"api_key": "has space"}, ValueError),
        ({"api_key": "line\nbreak"}, ValueError),
        ({"api_key": 42}, TypeError),
        ({"root_certificates": "not bytes"}, TypeError),
        ({"client_certificate": b"pem"}, ValueError),
        ({"client_private_key": b"key"}, ValueError),
        ({"timeout": 0}, ValueError),
        ({"timeout": -1}, ValueError),
        ({"timeout": float("nan")}, ValueError),
        ({"retry": {"max_attempts": 3}}, TypeError),
        ({"options": [("only-a-name",)]}, TypeError),
    ],
)
def test_bad_options_are_rejected(overrides: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error) as exc:
        _config(**overrides)

    assert exc.type is error


def test_clients_validate_options_before_creating_a_channel() -> None:
    with pytest.raises(ValueError) as exc:
        charter.Client("localhost:1", timeout=0)

    assert exc.type is ValueError


def test_bad_per_call_timeout_is_rejected() -> None:
    with pytest.raises(ValueError) as exc:
        _config().deadline(-2)

    assert exc.type is ValueError


# -- requests ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("admin", api_key_pb2.ROLE_ADMIN),
        ("ADMIN", api_key_pb2.ROLE_ADMIN),
        ("ROLE_ADMIN", api_key_pb2.ROLE_ADMIN),
        ("role_auditor", api_key_pb2.ROLE_AUDITOR),
        ("rights_holder", api_key_pb2.ROLE_RIGHTS_HOLDER),
        ("rights-holder", api_key_pb2.ROLE_RIGHTS_HOLDER),
        (" Generator ", api_key_pb2.ROLE_GENERATOR),
        (api_key_pb2.ROLE_GENERATOR, api_key_pb2.ROLE_GENERATOR),
        (charter.Role.ROLE_ADMIN, api_key_pb2.ROLE_ADMIN),
    ],
)
def test_roles_are_accepted_as_values_or_names(value: int | str, expected: int) -> None:
    assert _requests.parse_role(value) == expected


@pytest.mark.parametrize(("value", "error"), [("superuser", ValueError), (99, ValueError), (True, TypeError)])
def test_unknown_roles_are_rejected(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error) as exc:
        _requests.parse_role(value)

    assert exc.type is error


def test_states_are_accepted_as_values_or_names() -> None:
    assert _requests.parse_rights_holder_state("archived") == rights_holder_pb2.RightsHolder.STATE_ARCHIVED
    assert _requests.parse_rights_holder_state("STATE_ACTIVE") == rights_holder_pb2.RightsHolder.STATE_ACTIVE
    assert _requests.parse_licensee_state(licensee_pb2.Licensee.STATE_ARCHIVED) == 2


def test_a_use_request_gets_a_fresh_request_id_unless_given() -> None:
    use = {"use_type": "image_generation", "content_rating": "teen"}
    first = _requests.UseRequest.of(prompt="a", **use)  # type: ignore[arg-type]
    second = _requests.UseRequest.of(prompt="a", **use)  # type: ignore[arg-type]
    given = _requests.UseRequest.of(prompt="a", request_id="mine", **use)  # type: ignore[arg-type]

    assert re.fullmatch(r"[0-9a-f]{32}", first.request_id)
    assert first.request_id != second.request_id
    assert given.request_id == "mine"
    assert given.to_proto().request_id == "mine"
    assert (first.context.use_type, first.context.content_rating) == (
        terms_pb2.USE_TYPE_IMAGE_GENERATION,
        terms_pb2.CONTENT_RATING_TEEN,
    )


def test_update_mask_names_exactly_the_given_fields_and_allows_clearing() -> None:
    resource = rights_holder_pb2.RightsHolder(id="rh_1")

    mask = _requests.apply_changes(
        resource, {"display_name": "New", "legal_name": "", "contact_email": None, "revenue_share_account": None}
    )

    assert list(mask.paths) == ["display_name", "legal_name"]
    assert resource.id == "rh_1"
    assert resource.display_name == "New"


def test_update_without_changes_is_rejected() -> None:
    with pytest.raises(ValueError) as exc:
        _requests.apply_changes(licensee_pb2.Licensee(id="lic_1"), {"display_name": None, "platform": None})

    assert exc.type is ValueError


def test_times_must_be_timezone_aware() -> None:
    aware = dt.datetime(2031, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))

    stamp = _requests.timestamp(aware, what="expire_time")
    with pytest.raises(ValueError) as exc:
        _requests.timestamp(dt.datetime(2031, 1, 1), what="expire_time")

    assert stamp.ToDatetime(tzinfo=dt.UTC) == aware
    assert exc.type is ValueError
