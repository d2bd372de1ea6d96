"""Conversions between protobuf messages and domain records, with enum validation."""

from __future__ import annotations

from datetime import UTC, datetime

from charter.decisions import DetectionRule
from charter.grants import KeyRing
from charter.screen import KeywordSet
from charter.transparency import NoteVerifier
from charter.v1 import (
    api_key_pb2,
    authorization_service_pb2,
    catalog_service_pb2,
    character_pb2,
    envelope_pb2,
    grant_pb2,
    licensee_pb2,
    rights_holder_pb2,
    signing_key_pb2,
    terms_pb2,
)
from google.protobuf import timestamp_pb2

from charter_server.domain.errors import InvalidArgument
from charter_server.domain.models import (
    AliasKind,
    ApiKey,
    ApiKeyState,
    Character,
    CharacterState,
    Detection,
    DisplayNames,
    GrantRecord,
    GrantState,
    Heartbeat,
    Licensee,
    LifecycleState,
    RevocationEvent,
    RevocationKind,
    RightsHolder,
    Role,
    SigningKeyPurpose,
    SigningKeyRecord,
    SigningKeyState,
    Skipped,
)
from charter_server.services.characters import AliasInput, CharacterInput
from charter_server.services.readings import NameWarning
from charter_server.services.validation import Unreadable

ROLE_TO_PB = {
    Role.ADMIN: api_key_pb2.ROLE_ADMIN,
    Role.RIGHTS_HOLDER: api_key_pb2.ROLE_RIGHTS_HOLDER,
    Role.GENERATOR: api_key_pb2.ROLE_GENERATOR,
    Role.AUDITOR: api_key_pb2.ROLE_AUDITOR,
    Role.LICENSEE_ADMIN: api_key_pb2.ROLE_LICENSEE_ADMIN,
}
ROLE_FROM_PB = {value: key for key, value in ROLE_TO_PB.items()}
KEY_STATE_TO_PB = {
    ApiKeyState.ACTIVE: api_key_pb2.ApiKey.STATE_ACTIVE,
    ApiKeyState.REVOKED: api_key_pb2.ApiKey.STATE_REVOKED,
    ApiKeyState.EXPIRED: api_key_pb2.ApiKey.STATE_EXPIRED,
}
# Rights holders and licensees share the numbering of their State enums.
LIFECYCLE_TO_PB = {LifecycleState.ACTIVE: 1, LifecycleState.ARCHIVED: 2}
LIFECYCLE_FROM_PB = {value: key for key, value in LIFECYCLE_TO_PB.items()}


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    """A protobuf Timestamp, or None for an unset time."""
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value.astimezone(UTC))
    return stamp


def optional_time(message: object, field: str) -> datetime | None:
    """The aware datetime of a Timestamp field, or None when unset."""
    if not message.HasField(field):  # type: ignore[attr-defined]
        return None
    stamp: timestamp_pb2.Timestamp = getattr(message, field)
    if not 0 <= stamp.nanos < 1_000_000_000:
        raise InvalidArgument.one(field, "is not a valid timestamp")
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as error:
        raise InvalidArgument.one(field, "is not a valid timestamp") from error


def role(value: int, field: str, *, required: bool) -> Role | None:
    """A Role from its enum number; unspecified is None (or an error when required)."""
    if value == api_key_pb2.ROLE_UNSPECIFIED and not required:
        return None
    found: Role | None = ROLE_FROM_PB.get(value)  # type: ignore[call-overload]
    if found is None:
        if value == api_key_pb2.ROLE_UNSPECIFIED:
            raise InvalidArgument.one(field, "is required")
        raise InvalidArgument.one(field, f"unknown role {value}")
    return found


def lifecycle(value: int, field: str) -> LifecycleState | None:
    """A lifecycle state filter; unspecified is None."""
    if value == 0:
        return None
    found = LIFECYCLE_FROM_PB.get(value)
    if found is None:
        raise InvalidArgument.one(field, f"unknown state {value}")
    return found


def rights_holder(holder: RightsHolder) -> rights_holder_pb2.RightsHolder:
    """The protobuf form of a rights holder."""
    return rights_holder_pb2.RightsHolder(
        id=holder.id,
        display_name=holder.display_name,
        legal_name=holder.legal_name,
        contact_email=holder.contact_email,
        revenue_share_account=holder.revenue_share_account,
        state=LIFECYCLE_TO_PB[holder.state],  # type: ignore[arg-type]
        create_time=timestamp(holder.create_time),
        update_time=timestamp(holder.update_time),
        archive_time=timestamp(holder.archive_time),
    )


def licensee(value: Licensee) -> licensee_pb2.Licensee:
    """The protobuf form of a licensee."""
    return licensee_pb2.Licensee(
        id=value.id,
        display_name=value.display_name,
        legal_name=value.legal_name,
        contact_email=value.contact_email,
        platform=value.platform,
        state=LIFECYCLE_TO_PB[value.state],  # type: ignore[arg-type]
        create_time=timestamp(value.create_time),
        update_time=timestamp(value.update_time),
        archive_time=timestamp(value.archive_time),
    )


def licensee_profile(value: Licensee) -> licensee_pb2.LicenseeProfile:
    """The public profile of a licensee: never its contact or legal name."""
    return licensee_pb2.LicenseeProfile(
        id=value.id,
        display_name=value.display_name,
        platform=value.platform,
        state=LIFECYCLE_TO_PB[value.state],  # type: ignore[arg-type]
    )


def api_key(key: ApiKey, now: datetime) -> api_key_pb2.ApiKey:
    """The protobuf form of an API key (never its secret)."""
    return api_key_pb2.ApiKey(
        id=key.id,
        display_name=key.display_name,
        role=ROLE_TO_PB[key.role],
        rights_holder_id=key.rights_holder_id or "",
        licensee_id=key.licensee_id or "",
        expire_time=timestamp(key.expire_time),
        state=KEY_STATE_TO_PB[key.state_at(now)],
        creator_key_id=key.creator_key_id,
        create_time=timestamp(key.create_time),
        revoke_time=timestamp(key.revoke_time),
    )


CHARACTER_STATE_TO_PB = {
    CharacterState.OPTED_OUT: character_pb2.Character.STATE_OPTED_OUT,
    CharacterState.OPTED_IN: character_pb2.Character.STATE_OPTED_IN,
    CharacterState.SUSPENDED: character_pb2.Character.STATE_SUSPENDED,
    CharacterState.ARCHIVED: character_pb2.Character.STATE_ARCHIVED,
}
CHARACTER_STATE_FROM_PB = {value: key for key, value in CHARACTER_STATE_TO_PB.items()}
ALIAS_KIND_TO_PB = {
    AliasKind.OFFICIAL_NAME: character_pb2.Alias.KIND_OFFICIAL_NAME,
    AliasKind.SHORT_NAME: character_pb2.Alias.KIND_SHORT_NAME,
    AliasKind.NICKNAME: character_pb2.Alias.KIND_NICKNAME,
    AliasKind.ROMANIZATION: character_pb2.Alias.KIND_ROMANIZATION,
    AliasKind.TRANSLATION: character_pb2.Alias.KIND_TRANSLATION,
    AliasKind.READING: character_pb2.Alias.KIND_READING,
}
ALIAS_KIND_FROM_PB = {value: key for key, value in ALIAS_KIND_TO_PB.items()}


def character_state(value: int, field: str) -> CharacterState | None:
    """A character state filter; unspecified is None."""
    if value == 0:
        return None
    found: CharacterState | None = CHARACTER_STATE_FROM_PB.get(value)  # type: ignore[call-overload]
    if found is None:
        raise InvalidArgument.one(field, f"unknown state {value}")
    return found


def character_input(message: character_pb2.Character, prefix: str, *, in_batch: bool = False) -> CharacterInput:
    """The caller-settable fields of a Character message.

    An unknown alias kind is raised at once, or, for a row of a batch (``in_batch``), handed on
    as `Unreadable` for the service to report with the row's other violations.
    """
    aliases = []
    for index, alias in enumerate(message.aliases):
        kind: AliasKind | Unreadable | None = None
        if alias.kind:
            kind = ALIAS_KIND_FROM_PB.get(alias.kind)
            if kind is None:
                kind = Unreadable(f"unknown alias kind {alias.kind}")
                if not in_batch:
                    raise InvalidArgument.one(f"{prefix}.aliases[{index}].kind", kind.description)
        aliases.append(AliasInput(alias.value, alias.language, kind, alias.ambiguous, alias.derived))
    return CharacterInput(
        rights_holder_id=message.rights_holder_id,
        canonical_name=message.canonical_name,
        franchise=message.franchise,
        description=message.description,
        reference_urls=tuple(message.reference_urls),
        aliases=tuple(aliases),
        external_id=message.external_id,
        canonical_name_ambiguous=message.canonical_name_ambiguous,
        keyword_sets=tuple(
            KeywordSet(k.name, tuple(tuple(w.variants) for w in k.keywords)) for k in message.keyword_sets
        ),
    )


def name_warning(value: NameWarning) -> catalog_service_pb2.NameWarning:
    """The protobuf form of a warning about a name."""
    return catalog_service_pb2.NameWarning(
        field=value.field,
        name=value.name,
        kind=catalog_service_pb2.NameWarning.Kind.Value(f"KIND_{value.kind.upper()}"),
        language=value.language,
    )


def character(value: Character) -> character_pb2.Character:
    """The protobuf form of a character."""
    return character_pb2.Character(
        id=value.id,
        rights_holder_id=value.rights_holder_id,
        external_id=value.external_id,
        canonical_name=value.canonical_name,
        franchise=value.franchise,
        description=value.description,
        reference_urls=list(value.reference_urls),
        aliases=[
            character_pb2.Alias(
                value=a.value,
                language=a.language,
                kind=ALIAS_KIND_TO_PB[a.kind],
                ambiguous=a.ambiguous,
                normalized=a.normalized,
                derived=a.derived,
            )
            for a in value.aliases
        ],
        canonical_name_ambiguous=value.canonical_name_ambiguous,
        keyword_sets=[
            character_pb2.KeywordSet(
                name=k.name, keywords=[character_pb2.Keyword(variants=list(v)) for v in k.keywords]
            )
            for k in value.keyword_sets
        ],
        state=CHARACTER_STATE_TO_PB[value.state],
        terms_version=value.terms_version,
        create_time=timestamp(value.create_time),
        update_time=timestamp(value.update_time),
    )


SIGNING_KEY_STATE_TO_PB = {
    SigningKeyState.ACTIVE: signing_key_pb2.SigningKey.STATE_ACTIVE,
    SigningKeyState.RETIRED: signing_key_pb2.SigningKey.STATE_RETIRED,
    SigningKeyState.REVOKED: signing_key_pb2.SigningKey.STATE_REVOKED,
}
GRANT_STATE_TO_PB = {
    GrantState.ACTIVE: grant_pb2.Grant.STATE_ACTIVE,
    GrantState.SUSPENDED: grant_pb2.Grant.STATE_SUSPENDED,
    GrantState.REVOKED: grant_pb2.Grant.STATE_REVOKED,
}
GRANT_STATE_FROM_PB = {value: key for key, value in GRANT_STATE_TO_PB.items()}


def grant_state(value: int, field: str) -> GrantState | None:
    """A grant state filter; unspecified is None."""
    if value == 0:
        return None
    found: GrantState | None = GRANT_STATE_FROM_PB.get(value)  # type: ignore[call-overload]
    if found is None:
        raise InvalidArgument.one(field, f"unknown state {value}")
    return found


SIGNING_KEY_PURPOSE_TO_PB = {
    SigningKeyPurpose.GRANTS: signing_key_pb2.SigningKey.PURPOSE_GRANTS,
    SigningKeyPurpose.TRANSPARENCY_LOG: signing_key_pb2.SigningKey.PURPOSE_TRANSPARENCY_LOG,
}
SIGNING_KEY_PURPOSE_FROM_PB = {
    signing_key_pb2.SigningKey.PURPOSE_UNSPECIFIED: SigningKeyPurpose.GRANTS,
    **{value: purpose for purpose, value in SIGNING_KEY_PURPOSE_TO_PB.items()},
}


def signing_key(key: SigningKeyRecord, log_origin: str = "") -> signing_key_pb2.SigningKey:
    """The protobuf form of a signing key (public half only); a log key with its note verifier key."""
    message = signing_key_pb2.SigningKey(
        key_id=key.key_id,
        algorithm="ed25519",
        public_key=key.public_key,
        state=SIGNING_KEY_STATE_TO_PB[key.state],
        activate_time=timestamp(key.activate_time),
        retire_time=timestamp(key.retire_time),
        revoke_time=timestamp(key.revoke_time),
        purpose=SIGNING_KEY_PURPOSE_TO_PB[key.purpose],
    )
    if key.purpose is SigningKeyPurpose.TRANSPARENCY_LOG and log_origin:
        message.note_verifier_key = NoteVerifier.from_public_key(log_origin, key.public_key).vkey
    return message


def key_set(ring: KeyRing, keys: list[SigningKeyRecord], log_origin: str = "") -> signing_key_pb2.KeySet:
    """The key set: every key that still verifies, and the ids of revoked keys."""
    return signing_key_pb2.KeySet(
        version=ring.version,
        keys=[signing_key(k, log_origin) for k in keys if k.state is not SigningKeyState.REVOKED],
        revoked_key_ids=sorted(k.key_id for k in keys if k.state is SigningKeyState.REVOKED),
    )


def grant(record: GrantRecord, names: DisplayNames) -> grant_pb2.Grant:
    """The protobuf form of a grant, with its envelope exactly as signed and the names for people."""
    return grant_pb2.Grant(
        id=record.id,
        character_id=record.character_id,
        rights_holder_id=record.rights_holder_id,
        licensee_id=record.licensee_id,
        terms=terms_pb2.Terms.FromString(record.terms),
        terms_version=record.terms_version,
        not_before=timestamp(record.not_before),
        expire_time=timestamp(record.expire_time),
        issue_time=timestamp(record.issue_time),
        state=GRANT_STATE_TO_PB[record.state],
        state_reason=record.state_reason,
        state_time=timestamp(record.state_time),
        envelope=envelope_pb2.Envelope.FromString(record.envelope),
        max_uses=record.max_uses,
        character_name=names.characters.get(record.character_id, ""),
        licensee_display_name=names.licensees.get(record.licensee_id, ""),
    )


REVOCATION_KIND_TO_PB = {
    RevocationKind.REVOKED: grant_pb2.RevocationEvent.KIND_REVOKED,
    RevocationKind.SUSPENDED: grant_pb2.RevocationEvent.KIND_SUSPENDED,
    RevocationKind.REINSTATED: grant_pb2.RevocationEvent.KIND_REINSTATED,
    RevocationKind.CHARACTER_SUSPENDED: grant_pb2.RevocationEvent.KIND_CHARACTER_SUSPENDED,
    RevocationKind.CHARACTER_REINSTATED: grant_pb2.RevocationEvent.KIND_CHARACTER_REINSTATED,
    RevocationKind.CHARACTER_WITHDRAWN: grant_pb2.RevocationEvent.KIND_CHARACTER_WITHDRAWN,
    RevocationKind.CHARACTER_ARCHIVED: grant_pb2.RevocationEvent.KIND_CHARACTER_ARCHIVED,
    RevocationKind.CHARACTER_OPTED_IN: grant_pb2.RevocationEvent.KIND_CHARACTER_OPTED_IN,
    RevocationKind.REGISTRY_CHANGED: grant_pb2.RevocationEvent.KIND_REGISTRY_CHANGED,
}


# Looked up once: an Authorize with a prompt converts every detection it answers with.
_DETECTION_RULES = {
    rule: authorization_service_pb2.Detection.Rule.Value(f"RULE_{rule.value}") for rule in DetectionRule
}


def detection(value: Detection) -> authorization_service_pb2.Detection:
    """The protobuf form of a prompt detection."""
    return authorization_service_pb2.Detection(
        character_id=value.character_id,
        matched_alias=value.matched_alias,
        start=value.start,
        end=value.end,
        text=value.text,
        ambiguous=value.ambiguous,
        rule=_DETECTION_RULES[value.rule],
        kind=(
            authorization_service_pb2.Detection.KIND_DESCRIPTION
            if value.described
            else authorization_service_pb2.Detection.KIND_NAME
        ),
        keyword_set=value.keyword_set,
    )


def watch_message(item: RevocationEvent | Heartbeat | Skipped) -> authorization_service_pb2.WatchRevocationsResponse:
    """One message of the revocation stream: an event, a heartbeat, or events left out."""
    if isinstance(item, Skipped):
        return authorization_service_pb2.WatchRevocationsResponse(
            skip=authorization_service_pb2.RevocationSkip(sequence=item.sequence)
        )
    if isinstance(item, Heartbeat):
        return authorization_service_pb2.WatchRevocationsResponse(
            heartbeat=authorization_service_pb2.Heartbeat(
                sequence=item.sequence,
                server_time=timestamp(item.server_time),
                key_set_version=item.key_set_version,
            )
        )
    return authorization_service_pb2.WatchRevocationsResponse(
        event=grant_pb2.RevocationEvent(
            sequence=item.sequence,
            grant_id=item.grant_id,
            kind=REVOCATION_KIND_TO_PB[item.kind],
            event_time=timestamp(item.event_time),
            reason=item.reason,
            character_id=item.character_id,
        )
    )
