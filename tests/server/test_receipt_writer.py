"""The receipt writer's wire bytes parse to exactly the DecisionReceipt that protobuf messages would
make, for any outcome, and its envelope and response are what protobuf makes of the same parts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import nacl.signing
from charter.envelope import RECEIPT_PAYLOAD_TYPE, pae, sign
from charter.terms import DenyReason, Obligations
from charter.v1 import authorization_service_pb2 as az
from charter.v1 import decision_pb2, terms_pb2
from charter_server.api.authorization import authorize_command
from charter_server.services.authorization.command import UseRequest
from charter_server.services.authorization.receipt import Outcome, ReceiptWriter, attested_context
from google.protobuf import timestamp_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

IDS = st.text(alphabet="abcdef0123456789", min_size=0, max_size=40)
OBLIGATIONS = st.one_of(
    st.none(),
    st.builds(
        Obligations,
        attribution_text=st.text(max_size=30),
        watermark_required=st.booleans(),
        revenue_share_bps=st.integers(0, 10_000),
        per_use_fee_minor_units=st.integers(0, 10**12),
        per_use_fee_currency=st.sampled_from(["", "USD", "JPY"]),
    ),
)
OUTCOMES = st.builds(
    Outcome,
    character_id=IDS,
    allowed=st.booleans(),
    reasons=st.lists(st.sampled_from(list(DenyReason)), max_size=4).map(tuple),
    grant_id=IDS,
    terms_version=st.integers(0, 2**31 - 1),
    rights_holder_id=IDS,
    declared=st.booleans(),
    detected=st.booleans(),
    obligations=OBLIGATIONS,
)
CONTEXTS = st.builds(
    decision_pb2.UseContext,
    use_type=st.sampled_from([terms_pb2.USE_TYPE_IMAGE_GENERATION, terms_pb2.USE_TYPE_VIDEO_GENERATION]),
    content_rating=st.sampled_from([terms_pb2.CONTENT_RATING_ALL_AGES, terms_pb2.CONTENT_RATING_ADULT]),
    categories=st.lists(
        st.sampled_from([terms_pb2.CONTENT_CATEGORY_SEXUAL, terms_pb2.CONTENT_CATEGORY_HATE]), max_size=2
    ),
    territory=st.sampled_from(["", "JP", "us"]),
    commercial=st.booleans(),
)
TIMES = st.datetimes(
    min_value=datetime(1960, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
) | st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)).map(
    lambda moment: moment.astimezone(timezone(timedelta(hours=9)))
)


def _expected(
    receipt_id: str,
    licensee_id: str,
    digest: bytes,
    outcomes: list[Outcome],
    context: bytes,
    when: datetime,
    issuer: str,
) -> decision_pb2.DecisionReceipt:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    characters = []
    for outcome in outcomes:
        message = decision_pb2.CharacterDecision(
            character_id=outcome.character_id,
            allowed=outcome.allowed,
            reasons=[decision_pb2.DenyReason.Value(f"DENY_REASON_{r}") for r in outcome.reasons],
            grant_id=outcome.grant_id,
            terms_version=outcome.terms_version,
            rights_holder_id=outcome.rights_holder_id,
            declared=outcome.declared,
            detected=outcome.detected,
        )
        if outcome.allowed and outcome.obligations is not None:
            o = outcome.obligations
            message.obligations.attribution_text = o.attribution_text
            message.obligations.watermark_required = o.watermark_required
            message.obligations.revenue_share_bps = o.revenue_share_bps
            if o.per_use_fee_currency:
                message.obligations.per_use_fee.currency_code = o.per_use_fee_currency
                message.obligations.per_use_fee.minor_units = o.per_use_fee_minor_units
        characters.append(message)
    return decision_pb2.DecisionReceipt(
        receipt_id=receipt_id,
        licensee_id=licensee_id,
        request_digest=digest,
        allowed=all(o.allowed for o in outcomes),
        characters=characters,
        context=decision_pb2.UseContext.FromString(context),
        decide_time=stamp,
        issuer=issuer,
    )


@settings(max_examples=300, deadline=None)
@given(
    receipt_id=IDS,
    licensee_id=IDS,
    digest=st.binary(min_size=0, max_size=40),
    outcomes=st.lists(OUTCOMES, max_size=5),
    context=CONTEXTS,
    when=TIMES,
    issuer=st.text(min_size=1, max_size=20),
)
def test_the_written_receipt_is_the_message_protobuf_would_make(
    receipt_id: str,
    licensee_id: str,
    digest: bytes,
    outcomes: list[Outcome],
    context: decision_pb2.UseContext,
    when: datetime,
    issuer: str,
) -> None:
    attested = attested_context(_use(context))
    written = ReceiptWriter(issuer).payload(
        receipt_id=receipt_id,
        licensee_id=licensee_id,
        digest=digest,
        outcomes=outcomes,
        context=attested,
        decide_time=when,
    )

    parsed = decision_pb2.DecisionReceipt.FromString(written)
    assert parsed == _expected(receipt_id, licensee_id, digest, outcomes, attested, when, issuer)
    assert parsed.HasField("context") and parsed.HasField("decide_time")


def test_the_signed_envelope_and_the_response_are_protobuf_s_own() -> None:
    key = nacl.signing.SigningKey.generate()
    payload = b"\x0a\x03abc"
    signed = ReceiptWriter("charter").sign(payload, receipt_id="abc", digest=b"d", key_id="sk_1", signing_key=key)
    by_protobuf = sign(payload, RECEIPT_PAYLOAD_TYPE, key_id="sk_1", private_key=key)
    response = az.AuthorizeResponse.FromString(
        signed.response([decision_pb2.CharacterDecision(character_id="x").SerializeToString()])
    )

    assert signed.envelope == by_protobuf.SerializeToString()
    assert signed.receipt() == by_protobuf
    key.verify_key.verify(pae(RECEIPT_PAYLOAD_TYPE, payload), by_protobuf.signatures[0].sig)
    assert response.decision == decision_pb2.DecisionReceipt.FromString(payload)
    assert response.receipt == by_protobuf
    assert len(response.detections) == 1


def _use(context: decision_pb2.UseContext) -> UseRequest:
    """The use context as the servicer hands it to the service."""
    command = authorize_command(az.AuthorizeRequest(context=context))
    assert command.use is not None
    return command.use


def test_unknown_fields_of_the_use_context_are_never_attested() -> None:
    appended = decision_pb2.UseContext.FromString(
        decision_pb2.UseContext(use_type=terms_pb2.USE_TYPE_IMAGE_GENERATION).SerializeToString() + b"\xc2\x3e\x03xyz"
    )

    assert b"xyz" in appended.SerializeToString()
    assert b"xyz" not in attested_context(_use(appended))
