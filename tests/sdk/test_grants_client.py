"""Grants, signing keys and verification through Client and AsyncClient, against the real server."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import re
from collections.abc import Iterable

import pytest
from charter import AsyncClient, Client, FailedPreconditionError, NotFoundError
from charter.envelope import GRANT_PAYLOAD_TYPE, to_json
from charter.grants import GrantVerifier, KeyRing
from charter.v1 import grant_pb2, signing_key_pb2, terms_pb2

from ._live import Live, unique
from ._tap import Tap, follows_pages

_HEX32 = re.compile(r"[0-9a-f]{32}")
Grant = grant_pb2.Grant
SigningKey = signing_key_pb2.SigningKey
VALID = grant_pb2.GRANT_VERDICT_VALID


def _in_days(days: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(days=days)


TERMS = terms_pb2.Terms(
    permitted_use_types=[terms_pb2.USE_TYPE_IMAGE_GENERATION], max_content_rating=terms_pb2.CONTENT_RATING_TEEN
)
_MISSING = "0" * 32


@dataclasses.dataclass(frozen=True)
class Parties:
    """A fresh rights holder and two licensees, made by staff."""

    holder: str
    licensee: str
    other_licensee: str

    def character(self, staff: Client) -> str:
        """A new character of the rights holder, opted in under `TERMS`; its id."""
        character = staff.create_character(rights_holder_id=self.holder, canonical_name=unique("Grant "))
        staff.opt_in(character.id, TERMS)
        return character.id


def _parties(staff: Client) -> Parties:
    holder = staff.create_rights_holder(display_name="Studio", contact_email="rights@studio.example")
    first, second = (
        staff.create_licensee(display_name=f"App {n}", contact_email="ops@app.example", platform="app") for n in (1, 2)
    )
    return Parties(holder.id, first.id, second.id)


@pytest.fixture
def parties(staff: Client) -> Parties:
    """Fresh parties on the SDK tests' server."""
    return _parties(staff)


def _issue(client: Client, staff: Client, parties: Parties) -> grant_pb2.Grant:
    character_id = parties.character(staff)
    return client.issue_grant(character_id=character_id, licensee_id=parties.licensee, expire_time=_in_days(30))


def _grant_keys(keys: Iterable[SigningKey]) -> list[SigningKey]:
    """The keys that sign grants (the transparency log has a key of its own)."""
    return [key for key in keys if key.purpose == SigningKey.PURPOSE_GRANTS]


def _active_key_id(client: Client) -> str:
    (active,) = (key.key_id for key in _grant_keys(client.list_signing_keys()) if key.state == SigningKey.STATE_ACTIVE)
    return active


# -- grants -------------------------------------------------------------------------------------


def test_issue_grant_sends_times_terms_and_a_request_id(
    client: Client, staff: Client, tap: Tap, parties: Parties
) -> None:
    character_id = parties.character(staff)
    start = dt.datetime(2030, 1, 1, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=9)))
    narrowed = terms_pb2.Terms(
        permitted_use_types=[terms_pb2.USE_TYPE_IMAGE_GENERATION], max_content_rating=terms_pb2.CONTENT_RATING_ALL_AGES
    )

    grant = client.issue_grant(
        character_id=character_id,
        licensee_id=parties.licensee,
        not_before=start,
        expire_time=start + dt.timedelta(days=7),
        narrowed_terms=narrowed,
    )

    (call,) = tap.calls_of("IssueGrant")
    request = call.request
    assert request.character_id == character_id
    assert request.licensee_id == parties.licensee
    assert request.not_before.ToDatetime(dt.UTC) == dt.datetime(2030, 1, 1, 0, 0, tzinfo=dt.UTC)
    assert request.expire_time.ToDatetime(dt.UTC) == dt.datetime(2030, 1, 8, 0, 0, tzinfo=dt.UTC)
    assert request.narrowed_terms == narrowed
    assert _HEX32.fullmatch(request.request_id)
    assert grant.id.startswith("grt_")
    assert grant.state == Grant.STATE_ACTIVE
    assert grant.terms == narrowed
    assert grant.envelope.payload_type == GRANT_PAYLOAD_TYPE
    assert grant_pb2.GrantClaims.FromString(grant.envelope.payload).grant_id == grant.id


def test_issue_grant_leaves_optional_fields_unset_and_honours_request_id(
    client: Client, staff: Client, tap: Tap, parties: Parties
) -> None:
    character_id, fixed, expire = parties.character(staff), unique("fixed-"), _in_days(1)

    first = client.issue_grant(
        character_id=character_id, licensee_id=parties.licensee, expire_time=expire, request_id=fixed
    )
    again = client.issue_grant(
        character_id=character_id, licensee_id=parties.licensee, expire_time=expire, request_id=fixed
    )

    request = tap.calls_of("IssueGrant")[0].request
    assert not request.HasField("not_before")
    assert not request.HasField("narrowed_terms")
    assert [c.request.request_id for c in tap.calls_of("IssueGrant")] == [fixed, fixed]
    assert again.id == first.id


@pytest.mark.parametrize("field", ["expire_time", "not_before"])
def test_issue_grant_rejects_naive_times_before_calling(
    client: Client, staff: Client, tap: Tap, parties: Parties, field: str
) -> None:
    naive = dt.datetime(2030, 1, 1)  # Naive on purpose.
    times = {"expire_time": _in_days(1), "not_before": None, field: naive}

    with pytest.raises(ValueError, match="timezone-aware") as exc:
        client.issue_grant(character_id="chr_1", licensee_id="lic_1", **times)  # type: ignore[arg-type]

    assert field in str(exc.value)
    assert tap.calls == []


def test_issue_grant_rejects_terms_of_the_wrong_type(client: Client, staff: Client, tap: Tap, parties: Parties) -> None:
    with pytest.raises(TypeError, match="Terms"):
        client.issue_grant(
            character_id="chr_1",
            licensee_id="lic_1",
            expire_time=_in_days(1),
            narrowed_terms={"max_content_rating": "teen"},  # type: ignore[arg-type]
        )

    assert tap.calls == []


def test_get_grant_returns_the_grant_and_raises_not_found(
    client: Client, staff: Client, tap: Tap, parties: Parties
) -> None:
    issued = _issue(client, staff, parties)

    fetched = client.get_grant(issued.id)
    with pytest.raises(NotFoundError) as exc:
        client.get_grant("grt_" + _MISSING)

    assert fetched == issued
    assert exc.value.reason == "GRANT_NOT_FOUND"


def test_list_grants_is_lazy_follows_page_tokens_and_passes_filters(
    client: Client, staff: Client, tap: Tap, parties: Parties
) -> None:
    issued = [_issue(client, staff, parties) for _ in range(5)]
    tap.clear()

    pager = client.list_grants(licensee_id=parties.licensee, page_size=2)
    calls_before_iterating = len(tap.calls)
    listed = list(pager)
    filtered = list(
        client.list_grants(
            character_id=issued[0].character_id,
            licensee_id=parties.licensee,
            rights_holder_id=parties.holder,
            state="active",
        )
    )

    list_calls = tap.calls_of("ListGrants")
    assert calls_before_iterating == 0
    assert [g.id for g in listed] == [g.id for g in reversed(issued)]  # Newest first.
    assert follows_pages(list_calls[:3], 3)
    assert list_calls[0].request.state == Grant.STATE_UNSPECIFIED  # every state unless given
    filter_request = list_calls[3].request
    assert (filter_request.character_id, filter_request.licensee_id, filter_request.rights_holder_id) == (
        issued[0].character_id,
        parties.licensee,
        parties.holder,
    )
    assert filter_request.state == Grant.STATE_ACTIVE
    assert [g.id for g in filtered] == [issued[0].id]


def test_list_grants_rejects_an_unknown_state_at_once(
    client: Client, staff: Client, tap: Tap, parties: Parties
) -> None:
    with pytest.raises(ValueError, match="grant state"):
        client.list_grants(state="expired")

    assert tap.calls == []


def test_suspend_reinstate_and_revoke_return_the_revocation_log_sequence(
    client: Client, staff: Client, tap: Tap, parties: Parties
) -> None:
    grant = _issue(client, staff, parties)

    suspended = client.suspend_grant(grant.id, reason="payment overdue")
    reinstated = client.reinstate_grant(grant.id)
    revoked = client.revoke_grant(grant.id, reason="contract ended")
    with pytest.raises(FailedPreconditionError) as exc:
        client.revoke_grant(grant.id, reason="again")

    assert tap.calls_of("SuspendGrant")[0].request.reason == "payment overdue"
    assert tap.calls_of("RevokeGrant")[0].request.reason == "contract ended"
    # One log for the whole server: each change takes the next sequence number.
    assert suspended.grant.state == Grant.STATE_SUSPENDED
    assert (reinstated.grant.state, reinstated.sequence) == (Grant.STATE_ACTIVE, suspended.sequence + 1)
    assert (revoked.grant.state, revoked.sequence) == (Grant.STATE_REVOKED, suspended.sequence + 2)
    assert revoked.grant.state_reason == "contract ended"
    assert exc.value.reason == "GRANT_REVOKED"


# -- signing keys ---------------------------------------------------------------------------------


def test_rotate_list_and_revoke_signing_keys(own_live: Live) -> None:
    with Tap(own_live.target) as tap, Client(tap.target, api_key=own_live.admin) as client:
        (original,) = _grant_keys(client.list_signing_keys())

        rotated = client.rotate_signing_key()
        with pytest.raises(FailedPreconditionError) as active_exc:
            client.revoke_signing_key(rotated.active_key.key_id, reason="nope")
        revoked = client.revoke_signing_key(original.key_id, reason="key leaked")
        listed = _grant_keys(client.list_signing_keys())

    assert tap.calls_of("RevokeSigningKey")[1].request.reason == "key leaked"
    assert rotated.retired_key.key_id == original.key_id
    assert rotated.retired_key.state == SigningKey.STATE_RETIRED
    assert rotated.active_key.state == SigningKey.STATE_ACTIVE
    assert active_exc.value.reason == "SIGNING_KEY_ACTIVE"
    assert revoked.state == SigningKey.STATE_REVOKED
    assert [(k.key_id, k.state) for k in listed] == [
        (rotated.active_key.key_id, SigningKey.STATE_ACTIVE),
        (original.key_id, SigningKey.STATE_REVOKED),
    ]


# -- verification ---------------------------------------------------------------------------------


def test_get_key_set_verifies_an_issued_grant_offline(
    client: Client, staff: Client, tap: Tap, parties: Parties
) -> None:
    grant = _issue(client, staff, parties)

    key_set = client.get_key_set()
    result = GrantVerifier().verify(
        grant.envelope,
        keys=KeyRing.from_key_set(key_set),
        licensee_id=parties.licensee,
        character_id=grant.character_id,
        now=dt.datetime.now(dt.UTC),
    )

    assert key_set.version
    assert [k.key_id for k in _grant_keys(key_set.keys)] == [_active_key_id(client)]
    assert result.valid
    assert result.key_id == _active_key_id(client)


def test_verify_grant_sends_either_form_as_given(client: Client, staff: Client, tap: Tap, parties: Parties) -> None:
    grant = _issue(client, staff, parties)
    text = " " + to_json(grant.envelope) + "\n"  # Exactly as received, whitespace and all.

    as_message = client.verify_grant(grant.envelope, licensee_id=parties.licensee, character_id=grant.character_id)
    as_json = client.verify_grant(text, licensee_id=parties.licensee, character_id=grant.character_id)

    message_call, json_call = tap.calls_of("VerifyGrant")
    assert message_call.request.WhichOneof("grant") == "envelope"
    assert message_call.request.envelope == grant.envelope
    assert json_call.request.WhichOneof("grant") == "envelope_json"
    assert json_call.request.envelope_json == text
    assert (json_call.request.licensee_id, json_call.request.character_id) == (parties.licensee, grant.character_id)
    assert as_message.verdict == as_json.verdict == VALID
    assert as_json.claims.grant_id == grant.id
    assert as_json.key_id == _active_key_id(client)


def test_verify_grant_answers_with_a_verdict_not_an_error(
    client: Client, staff: Client, tap: Tap, parties: Parties
) -> None:
    grant = _issue(client, staff, parties)

    wrong_licensee = client.verify_grant(
        grant.envelope, licensee_id=parties.other_licensee, character_id=grant.character_id
    )
    client.revoke_grant(grant.id, reason="contract ended")
    revoked = client.verify_grant(grant.envelope, licensee_id=parties.licensee, character_id=grant.character_id)

    assert wrong_licensee.verdict == grant_pb2.GRANT_VERDICT_WRONG_LICENSEE
    assert revoked.verdict == grant_pb2.GRANT_VERDICT_REVOKED


def test_verify_grant_rejects_other_envelope_types(client: Client, staff: Client, tap: Tap, parties: Parties) -> None:
    with pytest.raises(TypeError, match="DSSE JSON"):
        client.verify_grant(b"{}", licensee_id="lic_1", character_id="chr_1")  # type: ignore[arg-type]

    assert tap.calls == []


# -- AsyncClient ---------------------------------------------------------------------------------


def test_async_client_manages_grants_and_keys(own_live: Live) -> None:
    with Client(own_live.target, api_key=own_live.admin) as staff:
        parties = _parties(staff)
        character_id = parties.character(staff)

    async def scenario() -> tuple[
        grant_pb2.Grant, list[str], int, int, list[SigningKey], signing_key_pb2.KeySet, grant_pb2.GrantVerdict.ValueType
    ]:
        async with AsyncClient(own_live.target, api_key=own_live.admin) as client:
            grant = await client.issue_grant(
                character_id=character_id, licensee_id=parties.licensee, expire_time=_in_days(1)
            )
            await client.issue_grant(
                character_id=character_id, licensee_id=parties.other_licensee, expire_time=_in_days(1)
            )
            listed = [g.id async for g in client.list_grants(licensee_id=parties.licensee, page_size=1)]
            fetched = await client.get_grant(grant.id)
            suspended = await client.suspend_grant(grant.id, reason="check")
            await client.reinstate_grant(grant.id)
            verified = await client.verify_grant(
                to_json(fetched.envelope), licensee_id=parties.licensee, character_id=character_id
            )
            revoked = await client.revoke_grant(grant.id, reason="done")
            rotated = await client.rotate_signing_key()
            await client.revoke_signing_key(rotated.retired_key.key_id, reason="leaked")
            keys = _grant_keys(await client.list_signing_keys())
            key_set = await client.get_key_set()
            return fetched, listed, suspended.sequence, revoked.sequence, keys, key_set, verified.verdict

    fetched, listed, suspended_sequence, revoked_sequence, keys, key_set, verdict = asyncio.run(scenario())

    assert listed == [fetched.id]
    assert revoked_sequence == suspended_sequence + 2  # suspended, reinstated, revoked
    assert verdict == VALID
    assert [k.state for k in keys] == [SigningKey.STATE_ACTIVE, SigningKey.STATE_REVOKED]
    assert [k.key_id for k in _grant_keys(key_set.keys)] == [keys[0].key_id]
    assert list(key_set.revoked_key_ids) == [keys[1].key_id]


def test_async_client_rejects_naive_times(tap: Tap, sdk_live: Live) -> None:
    async def scenario() -> None:
        async with AsyncClient(tap.target, api_key=sdk_live.admin) as client:
            await client.issue_grant(
                character_id="chr_1",
                licensee_id="lic_1",
                expire_time=dt.datetime(2030, 1, 1),  # Naive on purpose.
            )

    with pytest.raises(ValueError, match="timezone-aware"):
        asyncio.run(scenario())

    assert tap.calls == []
