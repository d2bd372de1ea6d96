"""An in-process stand-in for the Charter server, left only for the CLI tests (tests/cli).

The SDK tests run against the real server (`_live`, `_tap`); the CLI tests move there too, and
then this module goes. It implements the generated servicer base classes over a small in-memory
store, answers errors the way the real server does (a `google.rpc.Status` with `ErrorInfo`
and, for validation, `BadRequest` in `grpc-status-details-bin`, plus the request id), records
every call's request and metadata, and can be told to fail the next calls of a method. Grants
are signed for real (a fresh Ed25519 key per fake, with `charter.envelope`) and
VerifyGrant answers with the SDK's own `charter.grants.GrantVerifier`, so
envelopes from the fake verify offline against its key set. Authorize decides
with the SDK's own terms evaluator and signs its decision receipts with the
same key, so receipts verify for real; ScreenPrompt matches names and aliases
case-insensitively.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from typing import Any, NamedTuple, NoReturn, TypeVar

import grpc
import nacl.signing
from charter import envelope, terms
from charter.grants import GrantStatus, GrantVerifier, KeyRing, Verification
from charter.v1 import (
    access_service_pb2,
    access_service_pb2_grpc,
    api_key_pb2,
    authorization_service_pb2,
    authorization_service_pb2_grpc,
    catalog_service_pb2,
    catalog_service_pb2_grpc,
    character_pb2,
    decision_pb2,
    envelope_pb2,
    grant_pb2,
    grant_service_pb2,
    grant_service_pb2_grpc,
    key_service_pb2,
    key_service_pb2_grpc,
    licensee_pb2,
    rights_holder_pb2,
    signing_key_pb2,
    terms_pb2,
)
from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

_Req = TypeVar("_Req", bound=Message)
_Resp = TypeVar("_Resp", bound=Message)

API_KEY = "key_0123456789abcdef0123456789abcdef.s3cret"
CALLER_ID = "key_0123456789abcdef0123456789abcdef"
LICENSEE_ID = "lic_0123456789abcdef0123456789abcdef"
"""The licensee Authorize decides for, as if the fake's API key were that licensee's generator key."""
ISSUER = "charter-fake"


class _Status(NamedTuple):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


class Abort(Exception):
    """Raised inside a handler to answer with a Charter error status."""

    def __init__(
        self,
        code: grpc.StatusCode,
        reason: str,
        message: str,
        violations: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.violations = code, reason, message, violations


def rich_status(
    code: grpc.StatusCode,
    reason: str,
    message: str,
    *,
    request_id: str,
    violations: tuple[tuple[str, str], ...] = (),
) -> status_pb2.Status:
    """Builds the google.rpc.Status the Charter server attaches to an error."""
    info = error_details_pb2.ErrorInfo(reason=reason, domain="charter.v1", metadata={"request_id": request_id})
    details = [_pack(info)]
    if violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in violations
            ]
        )
        details.append(_pack(bad))
    return status_pb2.Status(code=code.value[0], message=message, details=details)


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


@dataclasses.dataclass
class Call:
    """One call the fake received."""

    method: str
    request: Any
    metadata: dict[str, str]


@dataclasses.dataclass
class _Failure:
    code: grpc.StatusCode
    reason: str
    remaining: int


class FakeCharter:
    """State and behaviour shared by the fake servicers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[Call] = []
        self.failures: dict[str, _Failure] = {}
        self.rights_holders: dict[str, rights_holder_pb2.RightsHolder] = {}
        self.licensees: dict[str, licensee_pb2.Licensee] = {}
        self.api_keys: dict[str, api_key_pb2.ApiKey] = {
            CALLER_ID: api_key_pb2.ApiKey(
                id=CALLER_ID,
                display_name="test admin",
                role=api_key_pb2.ROLE_ADMIN,
                state=api_key_pb2.ApiKey.STATE_ACTIVE,
                creator_key_id="bootstrap",
            )
        }
        self.created_by_request_id: dict[str, Any] = {}
        self.characters: dict[str, character_pb2.Character] = {}
        self.terms_versions: dict[str, list[terms_pb2.Terms]] = {}
        self.state_before_suspension: dict[str, character_pb2.Character.State.ValueType] = {}
        self.grants: dict[str, int] = {}
        self.collisions: list[catalog_service_pb2.AliasCollision] = []
        # Grants and signing keys. `grants` above counts what OptOut reports as revoked;
        # `issued_grants` is GrantService's store, oldest first.
        self.issued_grants: dict[str, grant_pb2.Grant] = {}
        self.revocation_sequence = 0
        self.signing_keys: dict[str, signing_key_pb2.SigningKey] = {}
        self.signing_seeds: dict[str, bytes] = {}
        self.key_set_version = 0
        self.active_key_id = self.new_signing_key().key_id
        # Authorize: the first response per request id (a retry gets it again, counting nothing).
        self.decisions_by_request_id: dict[str, authorization_service_pb2.AuthorizeResponse] = {}

    # -- test controls ------------------------------------------------------------------

    def fail(self, method: str, code: grpc.StatusCode, reason: str, *, times: int = 1) -> None:
        """Makes the next `times` calls of a method fail with the code and reason; an empty
        reason answers as gRPC's transport does for a call Charter never saw (no details, no
        request id)."""
        self.failures[method] = _Failure(code, reason, times)

    def calls_of(self, method: str) -> list[Call]:
        """Returns the recorded calls of one method, oldest first."""
        return [call for call in self.calls if call.method == method]

    def add_character(
        self,
        *,
        rights_holder_id: str = "rh_1",
        terms: terms_pb2.Terms | None = None,
        canonical_name: str = "Hatsune Miku",
        aliases: tuple[character_pb2.Alias, ...] = (),
    ) -> character_pb2.Character:
        """Stores an opted-in character with one terms version, ready for IssueGrant."""
        character = Character(
            id=f"chr_{uuid.uuid4().hex}",
            rights_holder_id=rights_holder_id,
            canonical_name=canonical_name,
            aliases=aliases,
            state=Character.STATE_OPTED_IN,
            terms_version=1,
            create_time=_now(),
        )
        version = terms_pb2.Terms(
            permitted_use_types=[terms_pb2.USE_TYPE_IMAGE_GENERATION],
            max_content_rating=terms_pb2.CONTENT_RATING_TEEN,
        )
        if terms is not None:
            version.CopyFrom(terms)
        version.version, version.character_id = 1, character.id
        self.characters[character.id] = character
        self.terms_versions[character.id] = [version]
        return character

    def new_signing_key(self) -> signing_key_pb2.SigningKey:
        """Creates an active Ed25519 signing key (the caller retires the previous one)."""
        seed = nacl.signing.SigningKey.generate()
        key = signing_key_pb2.SigningKey(
            key_id=f"sk_{uuid.uuid4().hex[:16]}",
            algorithm="ed25519",
            public_key=bytes(seed.verify_key),
            state=signing_key_pb2.SigningKey.STATE_ACTIVE,
            activate_time=_now(),
        )
        self.signing_keys[key.key_id] = key
        self.signing_seeds[key.key_id] = bytes(seed)
        self.key_set_version += 1
        return key

    def record_revocation(self) -> int:
        """Returns the next sequence number of the revocation log."""
        self.revocation_sequence += 1
        return self.revocation_sequence

    def key_set(self) -> signing_key_pb2.KeySet:
        """The key set GetKeySet answers: every key but the revoked ones, whose ids are listed."""
        revoked = signing_key_pb2.SigningKey.STATE_REVOKED
        return signing_key_pb2.KeySet(
            version=f"v{self.key_set_version}",
            keys=[k for k in self.signing_keys.values() if k.state != revoked],
            revoked_key_ids=[k.key_id for k in self.signing_keys.values() if k.state == revoked],
        )

    # -- dispatch -----------------------------------------------------------------------

    def _admit(self, method: str, request: Message, context: grpc.ServicerContext) -> tuple[dict[str, str], str]:
        """Records the call; returns its metadata and request id."""
        metadata = {key: value for key, value in context.invocation_metadata() if isinstance(value, str)}
        request_id = metadata.get("x-request-id") or uuid.uuid4().hex
        copy = type(request)()
        copy.CopyFrom(request)
        with self.lock:
            self.calls.append(Call(method, copy, metadata))
        return metadata, request_id

    def _check(self, method: str, metadata: dict[str, str]) -> None:
        """Raises the injected failure or the authentication error; call with the lock held."""
        failure = self.failures.get(method)
        if failure is not None and failure.remaining > 0:
            failure.remaining -= 1
            raise Abort(failure.code, failure.reason, f"injected {failure.reason}")
        if metadata.get("authorization") != f"Bearer {API_KEY}":
            raise Abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "CREDENTIALS_MISSING" if "authorization" not in metadata else "CREDENTIALS_INVALID",
                "no valid API key",
            )

    @staticmethod
    def _abort(context: grpc.ServicerContext, exc: Abort, request_id: str) -> NoReturn:
        if not exc.reason:  # as gRPC's transport answers a call no handler saw: no details at all
            context.abort(exc.code, exc.message)
            raise AssertionError("abort returned")
        status = rich_status(exc.code, exc.reason, exc.message, request_id=request_id, violations=exc.violations)
        context.abort_with_status(
            _Status(
                code=exc.code,
                details=exc.message,
                trailing_metadata=(
                    ("grpc-status-details-bin", status.SerializeToString()),
                    ("x-request-id", request_id),
                ),
            )
        )
        raise AssertionError("abort_with_status returned")

    def handle(
        self, method: str, request: _Req, context: grpc.ServicerContext, handler: Callable[[_Req], _Resp]
    ) -> _Resp:
        metadata, request_id = self._admit(method, request, context)
        try:
            with self.lock:
                self._check(method, metadata)
                response = handler(request)
            # Echo the id in the headers only on success: headers sent before an error
            # "commit" the call, and gRPC then never retries it (gRFC A6), so the real
            # server must answer errors trailers-only as well.
            context.send_initial_metadata((("x-request-id", request_id),))
            return response
        except Abort as exc:
            self._abort(context, exc, request_id)


def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


def _page(items: list[Any], page_size: int, token: str) -> tuple[list[Any], str]:
    if page_size < 0:
        raise Abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_FIELD",
            "bad page size",
            (("page_size", "must not be negative"),),
        )
    try:
        start = int(token) if token else 0
    except ValueError:
        raise Abort(
            grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "bad token", (("page_token", "malformed"),)
        ) from None
    size = page_size or 50
    end = start + size
    return items[start:end], (str(end) if end < len(items) else "")


def _require(fields: dict[str, str]) -> None:
    missing = tuple((name, "is required") for name, value in fields.items() if not value)
    if missing:
        raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "invalid request", missing)


def _apply_mask(target: Any, source: Message, paths: list[str], allowed: tuple[str, ...]) -> None:
    for path in paths:
        if path not in allowed:
            raise Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "INVALID_FIELD",
                "bad mask",
                (("update_mask", f"unknown field {path}"),),
            )
        if target.DESCRIPTOR.fields_by_name[path].is_repeated:
            del getattr(target, path)[:]
            getattr(target, path).extend(getattr(source, path))
        else:
            setattr(target, path, getattr(source, path))
    target.update_time.CopyFrom(_now())


Character = character_pb2.Character
Result = catalog_service_pb2.ImportRowResult

_CHARACTER_MUTABLE = ("canonical_name", "franchise", "description", "reference_urls", "aliases", "external_id")
_TERMS_OUTPUT_ONLY = ("version", "character_id", "create_time", "author_key_id")

TEMPLATES = [
    terms_pb2.TermsTemplate(
        name="fan-noncommercial",
        description="Non-commercial fan works.",
        terms=terms_pb2.Terms(
            permitted_use_types=[terms_pb2.USE_TYPE_IMAGE_GENERATION, terms_pb2.USE_TYPE_VIDEO_GENERATION],
            max_content_rating=terms_pb2.CONTENT_RATING_TEEN,
            prohibited_categories=[
                terms_pb2.CONTENT_CATEGORY_SEXUAL,
                terms_pb2.CONTENT_CATEGORY_CHARACTER_DAMAGING,
                terms_pb2.CONTENT_CATEGORY_IMPLIED_ENDORSEMENT,
            ],
            commercial_use_allowed=False,
            attribution_text="© Example Studio",
        ),
    ),
    terms_pb2.TermsTemplate(
        name="commercial-partner",
        description="Commercial partners with revenue share.",
        terms=terms_pb2.Terms(
            permitted_use_types=[terms_pb2.USE_TYPE_IMAGE_GENERATION],
            max_content_rating=terms_pb2.CONTENT_RATING_MATURE,
            commercial_use_allowed=True,
            revenue_share_bps=1500,
            per_use_fee=terms_pb2.Money(currency_code="JPY", minor_units=100),
        ),
    ),
]
"""The templates the fake serves."""


def _clean_character(source: character_pb2.Character) -> character_pb2.Character:
    """The client-settable fields of a character, with aliases normalised the simple way."""
    result = character_pb2.Character(id=source.id)
    for name in _CHARACTER_MUTABLE:
        if name in ("reference_urls", "aliases"):
            getattr(result, name).extend(getattr(source, name))
        else:
            setattr(result, name, getattr(source, name))
    for alias in result.aliases:
        alias.normalized = alias.value.casefold()
    return result


def _character_fields(character: character_pb2.Character) -> bytes:
    """The client-settable fields of a character, comparable byte for byte."""
    fields = _clean_character(character)
    fields.ClearField("id")
    return fields.SerializeToString(deterministic=True)


def _clean_terms(source: terms_pb2.Terms) -> terms_pb2.Terms:
    result = terms_pb2.Terms()
    result.CopyFrom(source)
    for name in _TERMS_OUTPUT_ONLY:
        result.ClearField(name)  # type: ignore[arg-type]
    return result


def _validate_terms(terms: terms_pb2.Terms, prefix: str) -> None:
    violations = []
    if not terms.permitted_use_types:
        violations.append((f"{prefix}.permitted_use_types", "at least one is required"))
    if not terms.max_content_rating:
        violations.append((f"{prefix}.max_content_rating", "is required"))
    if not 0 <= terms.revenue_share_bps <= 10000:
        violations.append((f"{prefix}.revenue_share_bps", "must be 0 to 10000"))
    if violations:
        raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "invalid terms", tuple(violations))


class FakeCatalog(catalog_service_pb2_grpc.CatalogServiceServicer):
    """CatalogService over the fake's in-memory store."""

    def __init__(self, fake: FakeCharter) -> None:
        self.fake = fake

    def _create(self, kind: str, store: dict[str, Any], resource: Any, request_id: str, prefix: str) -> Any:
        key = f"{kind}:{request_id}"
        if request_id and key in self.fake.created_by_request_id:
            return self.fake.created_by_request_id[key]
        resource.id = f"{prefix}{uuid.uuid4().hex}"
        resource.state = 1  # STATE_ACTIVE in both resource enums.
        resource.create_time.CopyFrom(_now())
        resource.update_time.CopyFrom(_now())
        store[resource.id] = resource
        if request_id:
            self.fake.created_by_request_id[key] = resource
        return resource

    def _get(self, store: dict[str, Any], id: str, reason: str) -> Any:
        if id not in store:
            raise Abort(grpc.StatusCode.NOT_FOUND, reason, f"{id} not found")
        return store[id]

    def CreateRightsHolder(
        self, request: catalog_service_pb2.CreateRightsHolderRequest, context: grpc.ServicerContext
    ) -> catalog_service_pb2.CreateRightsHolderResponse:
        def handler(
            req: catalog_service_pb2.CreateRightsHolderRequest,
        ) -> catalog_service_pb2.CreateRightsHolderResponse:
            resource = rights_holder_pb2.RightsHolder()
            resource.CopyFrom(req.rights_holder)
            _require(
                {
                    "rights_holder.display_name": resource.display_name,
                    "rights_holder.contact_email": resource.contact_email,
                }
            )
            created = self._create("rh", self.fake.rights_holders, resource, req.request_id, "rh_")
            return catalog_service_pb2.CreateRightsHolderResponse(rights_holder=created)

        return self.fake.handle("CreateRightsHolder", request, context, handler)

    def GetRightsHolder(
        self, request: catalog_service_pb2.GetRightsHolderRequest, context: grpc.ServicerContext
    ) -> catalog_service_pb2.GetRightsHolderResponse:
        def handler(req: catalog_service_pb2.GetRightsHolderRequest) -> catalog_service_pb2.GetRightsHolderResponse:
            found = self._get(self.fake.rights_holders, req.id, "RIGHTS_HOLDER_NOT_FOUND")
            return catalog_service_pb2.GetRightsHolderResponse(rights_holder=found)

        return self.fake.handle("GetRightsHolder", request, context, handler)

    def ListRightsHolders(
        self, request: catalog_service_pb2.ListRightsHoldersRequest, context: grpc.ServicerContext
    ) -> catalog_service_pb2.ListRightsHoldersResponse:
        def handler(req: catalog_service_pb2.ListRightsHoldersRequest) -> catalog_service_pb2.ListRightsHoldersResponse:
            state = req.state or rights_holder_pb2.RightsHolder.STATE_ACTIVE
            matching = [
                r
                for r in self.fake.rights_holders.values()
                if r.state == state and req.query.lower() in r.display_name.lower()
            ]
            page, token = _page(matching, req.page_size, req.page_token)
            return catalog_service_pb2.ListRightsHoldersResponse(rights_holders=page, next_page_token=token)

        return self.fake.handle("ListRightsHolders", request, context, handler)

    def UpdateRightsHolder(
        self, request: catalog_service_pb2.UpdateRightsHolderRequest, context: grpc.ServicerContext
    ) -> catalog_service_pb2.UpdateRightsHolderResponse:
        def handler(
            req: catalog_service_pb2.UpdateRightsHolderRequest,
        ) -> catalog_service_pb2.UpdateRightsHolderResponse:
            found = self._get(self.fake.rights_holders, req.rights_holder.id, "RIGHTS_HOLDER_NOT_FOUND")
            if found.state == rights_holder_pb2.RightsHolder.STATE_ARCHIVED:
                raise Abort(grpc.StatusCode.FAILED_PRECONDITION, "RIGHTS_HOLDER_ARCHIVED", "archived")
            _apply_mask(
                found,
                req.rights_holder,
                list(req.update_mask.paths),
                ("display_name", "legal_name", "contact_email", "revenue_share_account"),
            )
            return catalog_service_pb2.UpdateRightsHolderResponse(rights_holder=found)

        return self.fake.handle("UpdateRightsHolder", request, context, handler)

    def ArchiveRightsHolder(
        self, request: catalog_service_pb2.ArchiveRightsHolderRequest, context: grpc.ServicerContext
    ) -> catalog_service_pb2.ArchiveRightsHolderResponse:
        def handler(
            req: catalog_service_pb2.ArchiveRightsHolderRequest,
        ) -> catalog_service_pb2.ArchiveRightsHolderResponse:
            found = self._get(self.fake.rights_holders, req.id, "RIGHTS_HOLDER_NOT_FOUND")
            if found.state != rights_holder_pb2.RightsHolder.STATE_ARCHIVED:
                found.state = rights_holder_pb2.RightsHolder.STATE_ARCHIVED
                found.archive_time.CopyFrom(_now())
            return catalog_service_pb2.ArchiveRightsHolderResponse(rights_holder=found)

        return self.fake.handle("ArchiveRightsHolder", request, context, handler)

    def CreateLicensee(
        self, request: catalog_service_pb2.CreateLicenseeRequest, context: grpc.ServicerContext
    ) -> catalog_service_pb2.CreateLicenseeResponse:
        def handler(req: catalog_service_pb2.CreateLicenseeRequest) -> catalog_service_pb2.CreateLicenseeResponse:
            resource = licensee_pb2.Licensee()
            resource.CopyFrom(req.licensee)
            _require(
                {
                    "licensee.display_name": resource.display_name,
                    "licensee.contact_email": resource.contact_email,
                    "licensee.platform": resource.platform,
                }
            )
            created = self._create("lic", self.fake.licensees, resource, req.request_id, "lic_")
            return catalog_service_pb2.CreateLicenseeResponse(licensee=created)

        return self.fake.handle("CreateLicensee", request, context, handler)

    def GetLicensee(
        self, request: catalog_service_pb2.GetLicenseeRequest, context: grpc.ServicerContext
    ) -> catalog_service_pb2.GetLicenseeResponse:
        def handler(req: catalog_service_pb2.GetLicenseeRequest) -> catalog_service_pb2.GetLicenseeResponse:
            found = self._get(self.fake.licensees, req.id, "LICENSEE_NOT_FOUND")
            return catalog_service_pb2.GetLicenseeResponse(licensee=found)

        return self.fake.handle("GetLicensee", request, context, handler)

    def ListLicensees(
        self, request: catalog_service_pb2.ListLicenseesRequest, context: grpc.ServicerContext
    ) -> catalog_service_pb2.ListLicenseesResponse:
        def handler(req: catalog_service_pb2.ListLicenseesRequest) -> catalog_service_pb2.ListLicenseesResponse:
            state = req.state or licensee_pb2.Licensee.STATE_ACTIVE
            matching = [
                r
                for r in self.fake.licensees.values()
                if r.state == state
                and req.query.lower() in r.display_name.lower()
                and (not req.platform or r.platform == req.platform)
            ]
            page, token = _page(matching, req.page_size, req.page_token)
            return catalog_service_pb2.ListLicenseesResponse(licensees=page, next_page_token=token)

        return self.fake.handle("ListLicensees", request, context, handler)

    def UpdateLicensee(
        self, request: catalog_service_pb2.UpdateLicenseeRequest, context: grpc.ServicerContext
    ) -> catalog_service_pb2.UpdateLicenseeResponse:
        def handler(req: catalog_service_pb2.UpdateLicenseeRequest) -> catalog_service_pb2.UpdateLicenseeResponse:
            found = self._get(self.fake.licensees, req.licensee.id, "LICENSEE_NOT_FOUND")
            _apply_mask(
                found,
                req.licensee,
                list(req.update_mask.paths),
                ("display_name", "legal_name", "contact_email", "platform"),
            )
            return catalog_service_pb2.UpdateLicenseeResponse(licensee=found)

        return self.fake.handle("UpdateLicensee", request, context, handler)

    def ArchiveLicensee(
        self, request: catalog_service_pb2.ArchiveLicenseeRequest, context: grpc.ServicerContext
    ) -> catalog_service_pb2.ArchiveLicenseeResponse:
        def handler(req: catalog_service_pb2.ArchiveLicenseeRequest) -> catalog_service_pb2.ArchiveLicenseeResponse:
            found = self._get(self.fake.licensees, req.id, "LICENSEE_NOT_FOUND")
            found.state = licensee_pb2.Licensee.STATE_ARCHIVED
            return catalog_service_pb2.ArchiveLicenseeResponse(licensee=found)

        return self.fake.handle("ArchiveLicensee", request, context, handler)

    # -- characters -----------------------------------------------------------------------

    def _character(self, id: str) -> character_pb2.Character:
        found: character_pb2.Character = self._get(self.fake.characters, id, "CHARACTER_NOT_FOUND")
        return found

    def _changeable(self, id: str) -> character_pb2.Character:
        found = self._character(id)
        if found.state == Character.STATE_ARCHIVED:
            raise Abort(grpc.StatusCode.FAILED_PRECONDITION, "CHARACTER_ARCHIVED", "archived")
        return found

    def _check_external_id(self, character: character_pb2.Character) -> None:
        for other in self.fake.characters.values():
            if (
                character.external_id
                and other.id != character.id
                and other.rights_holder_id == character.rights_holder_id
                and other.external_id == character.external_id
            ):
                raise Abort(grpc.StatusCode.ALREADY_EXISTS, "EXTERNAL_ID_CONFLICT", "external id taken")

    def CreateCharacter(
        self, request: catalog_service_pb2.CreateCharacterRequest, context: grpc.ServicerContext
    ) -> catalog_service_pb2.CreateCharacterResponse:
        def handler(req: catalog_service_pb2.CreateCharacterRequest) -> catalog_service_pb2.CreateCharacterResponse:
            key = f"chr:{req.request_id}"
            if req.request_id and key in self.fake.created_by_request_id:
                return catalog_service_pb2.CreateCharacterResponse(character=self.fake.created_by_request_id[key])
            resource = _clean_character(req.character)
            resource.rights_holder_id = req.character.rights_holder_id
            _require(
                {
                    "character.rights_holder_id": resource.rights_holder_id,
                    "character.canonical_name": resource.canonical_name,
                }
            )
            self._check_external_id(resource)
            resource.id = f"chr_{uuid.uuid4().hex}"
            resource.state = Character.STATE_OPTED_OUT
            resource.create_time.CopyFrom(_now())
            resource.update_time.CopyFrom(_now())
            self.fake.characters[resource.id] = resource
            if req.request_id:
                self.fake.created_by_request_id[key] = resource
            return catalog_service_pb2.CreateCharacterResponse(character=resource)

        return self.fake.handle("CreateCharacter", request, context, handler)

    def GetCharacter(
        self, request: catalog_service_pb2.GetCharacterRequest, context: grpc.ServicerContext
    ) -> catalog_service_pb2.GetCharacterResponse:
        def handler(req: catalog_service_pb2.GetCharacterRequest) -> catalog_service_pb2.GetCharacterResponse:
            return catalog_service_pb2.GetCharacterResponse(character=self._character(req.id))

        return self.fake.handle("GetCharacter", request, context, handler)

    def ListCharacters(
        self, request: catalog_service_pb2.ListCharactersRequest, context: grpc.ServicerContext
    ) -> catalog_service_pb2.ListCharactersResponse:
        def handler(req: catalog_service_pb2.ListCharactersRequest) -> catalog_service_pb2.ListCharactersResponse:
            query = req.query.casefold()

            def matches(c: character_pb2.Character) -> bool:
                names = [c.canonical_name, *(a.value for a in c.aliases)]
                return (
                    (c.state == req.state if req.state else c.state != Character.STATE_ARCHIVED)
                    and (not req.rights_holder_id or c.rights_holder_id == req.rights_holder_id)
                    and (not req.franchise or c.franchise.casefold() == req.franchise.casefold())
                    and any(query in name.casefold() for name in names)
                )

            matching = [c for c in self.fake.characters.values() if matches(c)]
            page, token = _page(matching, req.page_size, req.page_token)
            return catalog_service_pb2.ListCharactersResponse(characters=page, next_page_token=token)

        return self.fake.handle("ListCharacters", request, context, handler)

    def UpdateCharacter(
        self, request: catalog_service_pb2.UpdateCharacterRequest, context: grpc.ServicerContext
    ) -> catalog_service_pb2.UpdateCharacterResponse:
        def handler(req: catalog_service_pb2.UpdateCharacterRequest) -> catalog_service_pb2.UpdateCharacterResponse:
            found = self._changeable(req.character.id)
            _apply_mask(found, _clean_character(req.character), list(req.update_mask.paths), _CHARACTER_MUTABLE)
            self._check_external_id(found)
            return catalog_service_pb2.UpdateCharacterResponse(character=found)

        return self.fake.handle("UpdateCharacter", request, context, handler)

    def ArchiveCharacter(
        self, request: catalog_service_pb2.ArchiveCharacterRequest, context: grpc.ServicerContext
    ) -> catalog_service_pb2.ArchiveCharacterResponse:
        def handler(req: catalog_service_pb2.ArchiveCharacterRequest) -> catalog_service_pb2.ArchiveCharacterResponse:
            found = self._character(req.id)
            found.state = Character.STATE_ARCHIVED
            return catalog_service_pb2.ArchiveCharacterResponse(character=found)

        return self.fake.handle("ArchiveCharacter", request, context, handler)

    def SuspendCharacter(
        self, request: catalog_service_pb2.SuspendCharacterRequest, context: grpc.ServicerContext
    ) -> catalog_service_pb2.SuspendCharacterResponse:
        def handler(req: catalog_service_pb2.SuspendCharacterRequest) -> catalog_service_pb2.SuspendCharacterResponse:
            _require({"reason": req.reason})
            found = self._changeable(req.id)
            if found.state != Character.STATE_SUSPENDED:
                self.fake.state_before_suspension[found.id] = found.state
                found.state = Character.STATE_SUSPENDED
            return catalog_service_pb2.SuspendCharacterResponse(character=found)

        return self.fake.handle("SuspendCharacter", request, context, handler)

    def ReinstateCharacter(
        self, request: catalog_service_pb2.ReinstateCharacterRequest, context: grpc.ServicerContext
    ) -> catalog_service_pb2.ReinstateCharacterResponse:
        def handler(
            req: catalog_service_pb2.ReinstateCharacterRequest,
        ) -> catalog_service_pb2.ReinstateCharacterResponse:
            found = self._character(req.id)
            if found.state != Character.STATE_SUSPENDED:
                raise Abort(grpc.StatusCode.FAILED_PRECONDITION, "CHARACTER_NOT_SUSPENDED", "not suspended")
            found.state = self.fake.state_before_suspension.pop(found.id, Character.STATE_OPTED_OUT)
            return catalog_service_pb2.ReinstateCharacterResponse(character=found)

        return self.fake.handle("ReinstateCharacter", request, context, handler)

    # -- terms ----------------------------------------------------------------------------

    def _new_version(self, character: character_pb2.Character, terms: terms_pb2.Terms) -> terms_pb2.Terms:
        _validate_terms(terms, "terms")
        versions = self.fake.terms_versions.setdefault(character.id, [])
        version = _clean_terms(terms)
        version.version = len(versions) + 1
        version.character_id = character.id
        version.create_time.CopyFrom(_now())
        version.author_key_id = CALLER_ID
        versions.append(version)
        character.state = Character.STATE_OPTED_IN
        character.terms_version = version.version
        return version

    def _terms_changeable(self, id: str) -> character_pb2.Character:
        found = self._changeable(id)
        if found.state == Character.STATE_SUSPENDED:
            raise Abort(grpc.StatusCode.FAILED_PRECONDITION, "CHARACTER_SUSPENDED", "suspended")
        return found

    def OptIn(
        self, request: catalog_service_pb2.OptInRequest, context: grpc.ServicerContext
    ) -> catalog_service_pb2.OptInResponse:
        def handler(req: catalog_service_pb2.OptInRequest) -> catalog_service_pb2.OptInResponse:
            found = self._terms_changeable(req.character_id)
            if found.state == Character.STATE_OPTED_IN:
                raise Abort(grpc.StatusCode.FAILED_PRECONDITION, "CHARACTER_ALREADY_OPTED_IN", "opted in")
            version = self._new_version(found, req.terms)
            return catalog_service_pb2.OptInResponse(character=found, terms=version)

        return self.fake.handle("OptIn", request, context, handler)

    def UpdateTerms(
        self, request: catalog_service_pb2.UpdateTermsRequest, context: grpc.ServicerContext
    ) -> catalog_service_pb2.UpdateTermsResponse:
        def handler(req: catalog_service_pb2.UpdateTermsRequest) -> catalog_service_pb2.UpdateTermsResponse:
            found = self._terms_changeable(req.character_id)
            if found.state != Character.STATE_OPTED_IN:
                raise Abort(grpc.StatusCode.FAILED_PRECONDITION, "CHARACTER_NOT_OPTED_IN", "not opted in")
            return catalog_service_pb2.UpdateTermsResponse(terms=self._new_version(found, req.terms))

        return self.fake.handle("UpdateTerms", request, context, handler)

    def OptOut(
        self, request: catalog_service_pb2.OptOutRequest, context: grpc.ServicerContext
    ) -> catalog_service_pb2.OptOutResponse:
        def handler(req: catalog_service_pb2.OptOutRequest) -> catalog_service_pb2.OptOutResponse:
            found = self._terms_changeable(req.character_id)
            found.state = Character.STATE_OPTED_OUT
            revoked = self.fake.grants.pop(found.id, 0)
            return catalog_service_pb2.OptOutResponse(character=found, revoked_grant_count=revoked)

        return self.fake.handle("OptOut", request, context, handler)

    def GetTerms(
        self, request: catalog_service_pb2.GetTermsRequest, context: grpc.ServicerContext
    ) -> catalog_service_pb2.GetTermsResponse:
        def handler(req: catalog_service_pb2.GetTermsRequest) -> catalog_service_pb2.GetTermsResponse:
            found = self._character(req.character_id)
            versions = self.fake.terms_versions.get(found.id, [])
            number = req.version or found.terms_version
            if not 1 <= number <= len(versions):
                raise Abort(grpc.StatusCode.NOT_FOUND, "TERMS_VERSION_NOT_FOUND", f"no version {number}")
            return catalog_service_pb2.GetTermsResponse(terms=versions[number - 1])

        return self.fake.handle("GetTerms", request, context, handler)

    def ListTermsVersions(
        self, request: catalog_service_pb2.ListTermsVersionsRequest, context: grpc.ServicerContext
    ) -> catalog_service_pb2.ListTermsVersionsResponse:
        def handler(
            req: catalog_service_pb2.ListTermsVersionsRequest,
        ) -> catalog_service_pb2.ListTermsVersionsResponse:
            found = self._character(req.character_id)
            newest_first = list(reversed(self.fake.terms_versions.get(found.id, [])))
            page, token = _page(newest_first, req.page_size, req.page_token)
            return catalog_service_pb2.ListTermsVersionsResponse(terms=page, next_page_token=token)

        return self.fake.handle("ListTermsVersions", request, context, handler)

    def ListTermsTemplates(
        self, request: catalog_service_pb2.ListTermsTemplatesRequest, context: grpc.ServicerContext
    ) -> catalog_service_pb2.ListTermsTemplatesResponse:
        def handler(
            req: catalog_service_pb2.ListTermsTemplatesRequest,
        ) -> catalog_service_pb2.ListTermsTemplatesResponse:
            return catalog_service_pb2.ListTermsTemplatesResponse(templates=TEMPLATES)

        return self.fake.handle("ListTermsTemplates", request, context, handler)

    # -- import and collisions ------------------------------------------------------------

    def _import_row(
        self, rights_holder_id: str, row: catalog_service_pb2.ImportRow
    ) -> tuple[catalog_service_pb2.ImportRowResult.Outcome.ValueType, str]:
        """Imports one row; returns its outcome and character id, or raises Abort."""
        wanted = _clean_character(row.character)
        wanted.rights_holder_id = rights_holder_id
        violations = [
            (f"character.{name}", "is required")
            for name in ("external_id", "canonical_name")
            if not getattr(wanted, name)
        ]
        violations += [
            (f"character.aliases[{i}].language", "is required") for i, a in enumerate(wanted.aliases) if not a.language
        ]
        if violations:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "invalid row", tuple(violations))
        if row.HasField("terms"):
            _validate_terms(row.terms, "terms")
        existing = next(
            (
                c
                for c in self.fake.characters.values()
                if c.rights_holder_id == rights_holder_id and c.external_id == wanted.external_id
            ),
            None,
        )
        outcome = Result.OUTCOME_UNCHANGED
        if existing is None:
            existing = wanted
            existing.id = f"chr_{uuid.uuid4().hex}"
            existing.state = Character.STATE_OPTED_OUT
            existing.create_time.CopyFrom(_now())
            self.fake.characters[existing.id] = existing
            outcome = Result.OUTCOME_CREATED
        elif _character_fields(existing) != _character_fields(wanted):
            _apply_mask(existing, wanted, list(_CHARACTER_MUTABLE), _CHARACTER_MUTABLE)
            outcome = Result.OUTCOME_UPDATED
        if row.HasField("terms"):
            versions = self.fake.terms_versions.get(existing.id, [])
            current = _clean_terms(versions[-1]) if versions else None
            if existing.state != Character.STATE_OPTED_IN or current != _clean_terms(row.terms):
                self._new_version(existing, row.terms)
                if outcome == Result.OUTCOME_UNCHANGED:
                    outcome = Result.OUTCOME_UPDATED
        return outcome, existing.id

    def ImportCharacters(
        self, request: catalog_service_pb2.ImportCharactersRequest, context: grpc.ServicerContext
    ) -> catalog_service_pb2.ImportCharactersResponse:
        def handler(req: catalog_service_pb2.ImportCharactersRequest) -> catalog_service_pb2.ImportCharactersResponse:
            _require({"rights_holder_id": req.rights_holder_id})
            if not 1 <= len(req.rows) <= 500:
                raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "bad rows", (("rows", "1 to 500 rows"),))
            results = []
            for index, row in enumerate(req.rows):
                result = Result(index=index, external_id=row.character.external_id)
                try:
                    result.outcome, result.character_id = self._import_row(req.rights_holder_id, row)
                except Abort as exc:
                    result.outcome = Result.OUTCOME_FAILED
                    result.error_reason = exc.reason
                    result.field_violations.extend(
                        catalog_service_pb2.ImportFieldViolation(field=f, description=d) for f, d in exc.violations
                    )
                results.append(result)
            return catalog_service_pb2.ImportCharactersResponse(results=results)

        return self.fake.handle("ImportCharacters", request, context, handler)

    def ListAliasCollisions(
        self, request: catalog_service_pb2.ListAliasCollisionsRequest, context: grpc.ServicerContext
    ) -> catalog_service_pb2.ListAliasCollisionsResponse:
        def handler(
            req: catalog_service_pb2.ListAliasCollisionsRequest,
        ) -> catalog_service_pb2.ListAliasCollisionsResponse:
            page, token = _page(self.fake.collisions, req.page_size, req.page_token)
            return catalog_service_pb2.ListAliasCollisionsResponse(collisions=page, next_page_token=token)

        return self.fake.handle("ListAliasCollisions", request, context, handler)


class FakeAccess(access_service_pb2_grpc.AccessServiceServicer):
    """AccessService over the fake's in-memory store."""

    def __init__(self, fake: FakeCharter) -> None:
        self.fake = fake

    def _get(self, id: str) -> api_key_pb2.ApiKey:
        if id not in self.fake.api_keys:
            raise Abort(grpc.StatusCode.NOT_FOUND, "API_KEY_NOT_FOUND", f"{id} not found")
        return self.fake.api_keys[id]

    def CreateApiKey(
        self, request: access_service_pb2.CreateApiKeyRequest, context: grpc.ServicerContext
    ) -> access_service_pb2.CreateApiKeyResponse:
        def handler(req: access_service_pb2.CreateApiKeyRequest) -> access_service_pb2.CreateApiKeyResponse:
            _require({"display_name": req.display_name})
            if req.role == api_key_pb2.ROLE_UNSPECIFIED:
                raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "bad role", (("role", "is required"),))
            key = f"key:{req.request_id}"
            if req.request_id and key in self.fake.created_by_request_id:
                previous = self.fake.created_by_request_id[key]
                return access_service_pb2.CreateApiKeyResponse(api_key=previous, secret="")
            id = f"key_{uuid.uuid4().hex}"
            created = api_key_pb2.ApiKey(
                id=id,
                display_name=req.display_name,
                role=req.role,
                rights_holder_id=req.rights_holder_id,
                licensee_id=req.licensee_id,
                state=api_key_pb2.ApiKey.STATE_ACTIVE,
                creator_key_id=CALLER_ID,
                create_time=_now(),
            )
            if req.HasField("expire_time"):
                created.expire_time.CopyFrom(req.expire_time)
            self.fake.api_keys[id] = created
            if req.request_id:
                self.fake.created_by_request_id[key] = created
            return access_service_pb2.CreateApiKeyResponse(api_key=created, secret=f"{id}.{uuid.uuid4().hex}")

        return self.fake.handle("CreateApiKey", request, context, handler)

    def GetApiKey(
        self, request: access_service_pb2.GetApiKeyRequest, context: grpc.ServicerContext
    ) -> access_service_pb2.GetApiKeyResponse:
        def handler(req: access_service_pb2.GetApiKeyRequest) -> access_service_pb2.GetApiKeyResponse:
            return access_service_pb2.GetApiKeyResponse(api_key=self._get(req.id))

        return self.fake.handle("GetApiKey", request, context, handler)

    def ListApiKeys(
        self, request: access_service_pb2.ListApiKeysRequest, context: grpc.ServicerContext
    ) -> access_service_pb2.ListApiKeysResponse:
        def handler(req: access_service_pb2.ListApiKeysRequest) -> access_service_pb2.ListApiKeysResponse:
            matching = [
                k
                for k in self.fake.api_keys.values()
                if (not req.role or k.role == req.role)
                and (req.show_inactive or k.state == api_key_pb2.ApiKey.STATE_ACTIVE)
            ]
            page, token = _page(matching, req.page_size, req.page_token)
            return access_service_pb2.ListApiKeysResponse(api_keys=page, next_page_token=token)

        return self.fake.handle("ListApiKeys", request, context, handler)

    def RevokeApiKey(
        self, request: access_service_pb2.RevokeApiKeyRequest, context: grpc.ServicerContext
    ) -> access_service_pb2.RevokeApiKeyResponse:
        def handler(req: access_service_pb2.RevokeApiKeyRequest) -> access_service_pb2.RevokeApiKeyResponse:
            found = self._get(req.id)
            if found.state == api_key_pb2.ApiKey.STATE_REVOKED:
                raise Abort(grpc.StatusCode.FAILED_PRECONDITION, "API_KEY_ALREADY_REVOKED", "already revoked")
            found.state = api_key_pb2.ApiKey.STATE_REVOKED
            found.revoke_time.CopyFrom(_now())
            return access_service_pb2.RevokeApiKeyResponse(api_key=found)

        return self.fake.handle("RevokeApiKey", request, context, handler)

    def GetCaller(
        self, request: access_service_pb2.GetCallerRequest, context: grpc.ServicerContext
    ) -> access_service_pb2.GetCallerResponse:
        def handler(req: access_service_pb2.GetCallerRequest) -> access_service_pb2.GetCallerResponse:
            return access_service_pb2.GetCallerResponse(api_key=self.fake.api_keys[CALLER_ID])

        return self.fake.handle("GetCaller", request, context, handler)


# -- grants, signing keys, verification ---------------------------------------------------------

Grant = grant_pb2.Grant
SigningKey = signing_key_pb2.SigningKey


class FakeGrants(grant_service_pb2_grpc.GrantServiceServicer):
    """GrantService over the fake's in-memory store; grants are signed with the fake's active key."""

    def __init__(self, fake: FakeCharter) -> None:
        self.fake = fake

    def _get(self, id: str) -> grant_pb2.Grant:
        if id not in self.fake.issued_grants:
            raise Abort(grpc.StatusCode.NOT_FOUND, "GRANT_NOT_FOUND", f"{id} not found")
        return self.fake.issued_grants[id]

    def _change(self, grant: grant_pb2.Grant, state: grant_pb2.Grant.State.ValueType, reason: str) -> int:
        grant.state, grant.state_reason = state, reason
        grant.state_time.CopyFrom(_now())
        return self.fake.record_revocation()

    def IssueGrant(
        self, request: grant_service_pb2.IssueGrantRequest, context: grpc.ServicerContext
    ) -> grant_service_pb2.IssueGrantResponse:
        def handler(req: grant_service_pb2.IssueGrantRequest) -> grant_service_pb2.IssueGrantResponse:
            _require({"character_id": req.character_id, "licensee_id": req.licensee_id})
            if not req.HasField("expire_time"):
                raise Abort(
                    grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "invalid request", (("expire_time", "required"),)
                )
            key = f"grant:{req.request_id}"
            if req.request_id and key in self.fake.created_by_request_id:
                return grant_service_pb2.IssueGrantResponse(grant=self.fake.created_by_request_id[key])
            character = self.fake.characters.get(req.character_id)
            if character is None:
                raise Abort(grpc.StatusCode.NOT_FOUND, "CHARACTER_NOT_FOUND", f"{req.character_id} not found")
            if character.state != Character.STATE_OPTED_IN:
                raise Abort(grpc.StatusCode.FAILED_PRECONDITION, "CHARACTER_NOT_OPTED_IN", "not opted in")
            now = _now()
            not_before = req.not_before if req.HasField("not_before") else now
            if req.expire_time.ToNanoseconds() <= not_before.ToNanoseconds():
                raise Abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "INVALID_FIELD",
                    "invalid request",
                    (("expire_time", "must be after not_before"),),
                )
            terms = terms_pb2.Terms()
            terms.CopyFrom(
                req.narrowed_terms if req.HasField("narrowed_terms") else self.fake.terms_versions[character.id][-1]
            )
            claims = grant_pb2.GrantClaims(
                grant_id=f"grt_{uuid.uuid4().hex}",
                character_id=character.id,
                rights_holder_id=character.rights_holder_id,
                licensee_id=req.licensee_id,
                terms=terms,
                terms_version=character.terms_version,
                issue_time=now,
                not_before=not_before,
                expire_time=req.expire_time,
                issuer="charter-fake",
            )
            key_id = self.fake.active_key_id
            signed = envelope.sign(
                claims.SerializeToString(),
                envelope.GRANT_PAYLOAD_TYPE,
                key_id=key_id,
                private_key=self.fake.signing_seeds[key_id],
            )
            grant = grant_pb2.Grant(
                id=claims.grant_id,
                character_id=claims.character_id,
                rights_holder_id=claims.rights_holder_id,
                licensee_id=claims.licensee_id,
                terms=terms,
                terms_version=claims.terms_version,
                not_before=not_before,
                expire_time=req.expire_time,
                issue_time=now,
                state=Grant.STATE_ACTIVE,
                state_time=now,
                envelope=signed,
            )
            self.fake.issued_grants[grant.id] = grant
            if req.request_id:
                self.fake.created_by_request_id[key] = grant
            return grant_service_pb2.IssueGrantResponse(grant=grant)

        return self.fake.handle("IssueGrant", request, context, handler)

    def GetGrant(
        self, request: grant_service_pb2.GetGrantRequest, context: grpc.ServicerContext
    ) -> grant_service_pb2.GetGrantResponse:
        def handler(req: grant_service_pb2.GetGrantRequest) -> grant_service_pb2.GetGrantResponse:
            return grant_service_pb2.GetGrantResponse(grant=self._get(req.id))

        return self.fake.handle("GetGrant", request, context, handler)

    def ListGrants(
        self, request: grant_service_pb2.ListGrantsRequest, context: grpc.ServicerContext
    ) -> grant_service_pb2.ListGrantsResponse:
        def handler(req: grant_service_pb2.ListGrantsRequest) -> grant_service_pb2.ListGrantsResponse:
            newest_first = [
                g
                for g in reversed(self.fake.issued_grants.values())
                if (not req.character_id or g.character_id == req.character_id)
                and (not req.licensee_id or g.licensee_id == req.licensee_id)
                and (not req.rights_holder_id or g.rights_holder_id == req.rights_holder_id)
                and (not req.state or g.state == req.state)
            ]
            page, token = _page(newest_first, req.page_size, req.page_token)
            return grant_service_pb2.ListGrantsResponse(grants=page, next_page_token=token)

        return self.fake.handle("ListGrants", request, context, handler)

    def SuspendGrant(
        self, request: grant_service_pb2.SuspendGrantRequest, context: grpc.ServicerContext
    ) -> grant_service_pb2.SuspendGrantResponse:
        def handler(req: grant_service_pb2.SuspendGrantRequest) -> grant_service_pb2.SuspendGrantResponse:
            _require({"reason": req.reason})
            grant = self._get(req.id)
            if grant.state == Grant.STATE_REVOKED:
                raise Abort(grpc.StatusCode.FAILED_PRECONDITION, "GRANT_REVOKED", "revoked")
            if grant.state == Grant.STATE_SUSPENDED:
                raise Abort(grpc.StatusCode.FAILED_PRECONDITION, "GRANT_ALREADY_SUSPENDED", "already suspended")
            sequence = self._change(grant, Grant.STATE_SUSPENDED, req.reason)
            return grant_service_pb2.SuspendGrantResponse(grant=grant, sequence=sequence)

        return self.fake.handle("SuspendGrant", request, context, handler)

    def ReinstateGrant(
        self, request: grant_service_pb2.ReinstateGrantRequest, context: grpc.ServicerContext
    ) -> grant_service_pb2.ReinstateGrantResponse:
        def handler(req: grant_service_pb2.ReinstateGrantRequest) -> grant_service_pb2.ReinstateGrantResponse:
            grant = self._get(req.id)
            if grant.state == Grant.STATE_REVOKED:
                raise Abort(grpc.StatusCode.FAILED_PRECONDITION, "GRANT_REVOKED", "revoked")
            if grant.state != Grant.STATE_SUSPENDED:
                raise Abort(grpc.StatusCode.FAILED_PRECONDITION, "GRANT_NOT_SUSPENDED", "not suspended")
            sequence = self._change(grant, Grant.STATE_ACTIVE, "")
            return grant_service_pb2.ReinstateGrantResponse(grant=grant, sequence=sequence)

        return self.fake.handle("ReinstateGrant", request, context, handler)

    def RevokeGrant(
        self, request: grant_service_pb2.RevokeGrantRequest, context: grpc.ServicerContext
    ) -> grant_service_pb2.RevokeGrantResponse:
        def handler(req: grant_service_pb2.RevokeGrantRequest) -> grant_service_pb2.RevokeGrantResponse:
            _require({"reason": req.reason})
            grant = self._get(req.id)
            if grant.state == Grant.STATE_REVOKED:
                raise Abort(grpc.StatusCode.FAILED_PRECONDITION, "GRANT_REVOKED", "already revoked")
            sequence = self._change(grant, Grant.STATE_REVOKED, req.reason)
            return grant_service_pb2.RevokeGrantResponse(grant=grant, sequence=sequence)

        return self.fake.handle("RevokeGrant", request, context, handler)


class FakeKeys(key_service_pb2_grpc.KeyServiceServicer):
    """KeyService over the fake's signing keys."""

    def __init__(self, fake: FakeCharter) -> None:
        self.fake = fake

    def RotateSigningKey(
        self, request: key_service_pb2.RotateSigningKeyRequest, context: grpc.ServicerContext
    ) -> key_service_pb2.RotateSigningKeyResponse:
        def handler(req: key_service_pb2.RotateSigningKeyRequest) -> key_service_pb2.RotateSigningKeyResponse:
            retired = self.fake.signing_keys[self.fake.active_key_id]
            retired.state = SigningKey.STATE_RETIRED
            retired.retire_time.CopyFrom(_now())
            active = self.fake.new_signing_key()
            self.fake.active_key_id = active.key_id
            return key_service_pb2.RotateSigningKeyResponse(active_key=active, retired_key=retired)

        return self.fake.handle("RotateSigningKey", request, context, handler)

    def RevokeSigningKey(
        self, request: key_service_pb2.RevokeSigningKeyRequest, context: grpc.ServicerContext
    ) -> key_service_pb2.RevokeSigningKeyResponse:
        def handler(req: key_service_pb2.RevokeSigningKeyRequest) -> key_service_pb2.RevokeSigningKeyResponse:
            _require({"key_id": req.key_id, "reason": req.reason})
            key = self.fake.signing_keys.get(req.key_id)
            if key is None:
                raise Abort(grpc.StatusCode.NOT_FOUND, "SIGNING_KEY_NOT_FOUND", f"{req.key_id} not found")
            if key.state == SigningKey.STATE_ACTIVE:
                raise Abort(grpc.StatusCode.FAILED_PRECONDITION, "SIGNING_KEY_ACTIVE", "rotate first")
            if key.state == SigningKey.STATE_REVOKED:
                raise Abort(grpc.StatusCode.FAILED_PRECONDITION, "SIGNING_KEY_ALREADY_REVOKED", "already revoked")
            key.state = SigningKey.STATE_REVOKED
            key.revoke_time.CopyFrom(_now())
            self.fake.key_set_version += 1
            return key_service_pb2.RevokeSigningKeyResponse(key=key)

        return self.fake.handle("RevokeSigningKey", request, context, handler)

    def ListSigningKeys(
        self, request: key_service_pb2.ListSigningKeysRequest, context: grpc.ServicerContext
    ) -> key_service_pb2.ListSigningKeysResponse:
        def handler(req: key_service_pb2.ListSigningKeysRequest) -> key_service_pb2.ListSigningKeysResponse:
            return key_service_pb2.ListSigningKeysResponse(keys=list(reversed(self.fake.signing_keys.values())))

        return self.fake.handle("ListSigningKeys", request, context, handler)


class FakeAuthorization(authorization_service_pb2_grpc.AuthorizationServiceServicer):
    """AuthorizationService: the fake's key set, and VerifyGrant with the SDK's verifier and the grant store."""

    def __init__(self, fake: FakeCharter) -> None:
        self.fake = fake

    def GetKeySet(
        self, request: authorization_service_pb2.GetKeySetRequest, context: grpc.ServicerContext
    ) -> authorization_service_pb2.GetKeySetResponse:
        def handler(req: authorization_service_pb2.GetKeySetRequest) -> authorization_service_pb2.GetKeySetResponse:
            return authorization_service_pb2.GetKeySetResponse(key_set=self.fake.key_set())

        return self.fake.handle("GetKeySet", request, context, handler)

    def VerifyGrant(
        self, request: authorization_service_pb2.VerifyGrantRequest, context: grpc.ServicerContext
    ) -> authorization_service_pb2.VerifyGrantResponse:
        def handler(
            req: authorization_service_pb2.VerifyGrantRequest,
        ) -> authorization_service_pb2.VerifyGrantResponse:
            _require({"licensee_id": req.licensee_id, "character_id": req.character_id})
            form = req.WhichOneof("grant")
            if form is None:
                raise Abort(
                    grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "invalid request", (("envelope", "required"),)
                )

            def status(grant_id: str) -> GrantStatus:
                found = self.fake.issued_grants.get(grant_id)
                return GrantStatus.ACTIVE if found is None else GrantStatus(found.state)

            result = GrantVerifier(cache_size=0).verify(
                req.envelope if form == "envelope" else req.envelope_json,
                keys=KeyRing.from_key_set(self.fake.key_set()),
                licensee_id=req.licensee_id,
                character_id=req.character_id,
                now=dt.datetime.now(dt.UTC),
                status=status,
            )
            return authorization_service_pb2.VerifyGrantResponse(
                verdict=result.verdict,  # type: ignore[arg-type]
                claims=result.claims,
                key_id=result.key_id,
            )

        return self.fake.handle("VerifyGrant", request, context, handler)

    def ScreenPrompt(
        self, request: authorization_service_pb2.ScreenPromptRequest, context: grpc.ServicerContext
    ) -> authorization_service_pb2.ScreenPromptResponse:
        def handler(
            req: authorization_service_pb2.ScreenPromptRequest,
        ) -> authorization_service_pb2.ScreenPromptResponse:
            _check_prompt(req.prompt, required=True)
            return authorization_service_pb2.ScreenPromptResponse(detections=self.fake_screen(req.prompt))

        return self.fake.handle("ScreenPrompt", request, context, handler)

    def fake_screen(self, prompt: str) -> list[authorization_service_pb2.Detection]:
        """Every case-insensitive match of a canonical name or alias, ordered by start (longest first)."""
        found = []
        for character in self.fake.characters.values():
            names = [(character.canonical_name, False), *((a.value, a.ambiguous) for a in character.aliases)]
            for name, ambiguous in names:
                for match in re.finditer(re.escape(name), prompt, re.IGNORECASE) if name else ():
                    found.append(
                        authorization_service_pb2.Detection(
                            character_id=character.id,
                            matched_alias=name,
                            start=match.start(),
                            end=match.end(),
                            text=match.group(),
                            ambiguous=ambiguous,
                        )
                    )
        found.sort(key=lambda d: (d.start, -d.end, d.character_id))
        return found

    def Authorize(
        self, request: authorization_service_pb2.AuthorizeRequest, context: grpc.ServicerContext
    ) -> authorization_service_pb2.AuthorizeResponse:
        return self.fake.handle("Authorize", request, context, self._authorize)

    def _authorize(
        self, req: authorization_service_pb2.AuthorizeRequest
    ) -> authorization_service_pb2.AuthorizeResponse:
        _check_authorize(req)
        if req.request_id in self.fake.decisions_by_request_id:
            return self.fake.decisions_by_request_id[req.request_id]
        detections = self.fake_screen(req.prompt)
        order = list(req.character_ids)
        for detection in detections:
            if not detection.ambiguous and detection.character_id not in order:
                order.append(detection.character_id)
        detected = {d.character_id for d in detections if not d.ambiguous or d.character_id in req.character_ids}
        presented = self._presented(req.grants)
        now = dt.datetime.now(dt.UTC)
        characters = []
        for character_id in order:
            found = self.fake.characters.get(character_id)
            decision = decision_pb2.CharacterDecision(
                character_id=character_id,
                rights_holder_id="" if found is None else found.rights_holder_id,
                declared=character_id in req.character_ids,
                detected=character_id in detected,
            )
            others = frozenset(order) - {character_id}
            self._decide(decision, found, presented.get(character_id), req.context, others, now)
            characters.append(decision)
        receipt = decision_pb2.DecisionReceipt(
            receipt_id=f"rcp_{uuid.uuid4().hex}",
            licensee_id=LICENSEE_ID,
            request_digest=hashlib.sha256(req.SerializeToString(deterministic=True)).digest(),
            allowed=all(c.allowed for c in characters),
            characters=characters,
            context=req.context,
            decide_time=_now(),
            issuer=ISSUER,
        )
        key_id = self.fake.active_key_id
        signed = envelope.sign(
            receipt.SerializeToString(),
            envelope.RECEIPT_PAYLOAD_TYPE,
            key_id=key_id,
            private_key=self.fake.signing_seeds[key_id],
        )
        response = authorization_service_pb2.AuthorizeResponse(decision=receipt, detections=detections, receipt=signed)
        if req.request_id:
            self.fake.decisions_by_request_id[req.request_id] = response
        return response

    def _presented(
        self, grants: Iterable[envelope_pb2.Envelope]
    ) -> dict[str, list[tuple[grant_pb2.GrantClaims, DenyReason | None]]]:
        """The presented grants by character: their claims and why each is unusable (None: usable)."""
        keys = KeyRing.from_key_set(self.fake.key_set())
        by_character: dict[str, list[tuple[grant_pb2.GrantClaims, DenyReason | None]]] = {}
        for presented in grants:
            first = self._verify(presented, keys, "")
            if first.claims is None:
                continue  # not attributable to a character: nothing to report it on
            claims = first.claims
            result = self._verify(presented, keys, claims.character_id)
            by_character.setdefault(claims.character_id, []).append((claims, _GRANT_REASONS.get(result.verdict)))
        return by_character

    def _verify(self, presented: envelope_pb2.Envelope, keys: KeyRing, character_id: str) -> Verification:
        def status(grant_id: str) -> GrantStatus:
            found = self.fake.issued_grants.get(grant_id)
            return GrantStatus.ACTIVE if found is None else GrantStatus(found.state)

        return GrantVerifier(cache_size=0).verify(
            presented,
            keys=keys,
            licensee_id=LICENSEE_ID,
            character_id=character_id,
            now=dt.datetime.now(dt.UTC),
            status=status,
        )

    def _decide(
        self,
        decision: decision_pb2.CharacterDecision,
        character: character_pb2.Character | None,
        presented: list[tuple[grant_pb2.GrantClaims, DenyReason | None]] | None,
        context: decision_pb2.UseContext,
        others: frozenset[str],
        now: dt.datetime,
    ) -> None:
        """Fills in the decision: the first usable grant whose terms allow, else the first one's failures."""
        if character is None or character.state != Character.STATE_OPTED_IN:
            suspended = character is not None and character.state == Character.STATE_SUSPENDED
            decision.reasons.append(_deny("CHARACTER_SUSPENDED" if suspended else "CHARACTER_NOT_OPTED_IN"))
            return
        candidates = presented if presented is not None else self._on_record(character.id, now)
        if not candidates:
            decision.reasons.append(_deny("NO_GRANT"))
            return
        use = terms.UseContext(
            context.use_type,
            context.content_rating,
            now,
            categories=context.categories,
            territory=context.territory,
            licensee_id=LICENSEE_ID,
            commercial=context.commercial,
            co_characters=others,
        )
        outcomes = []
        for claims, problem in candidates:
            evaluation = None if problem is not None else terms.evaluate(claims.terms, use)
            if evaluation is not None and evaluation.obligations is not None:
                decision.allowed = True
                decision.grant_id, decision.terms_version = claims.grant_id, claims.terms_version
                decision.obligations.CopyFrom(_obligations(evaluation.obligations))
                return
            outcomes.append((claims, (problem,) if problem is not None else evaluation.reasons if evaluation else ()))
        claims, reasons = outcomes[0]
        decision.grant_id, decision.terms_version = claims.grant_id, claims.terms_version
        decision.reasons.extend(_deny(reason) for reason in sorted(reasons, key=list(DenyReason).index))

    def _on_record(self, character_id: str, now: dt.datetime) -> list[tuple[grant_pb2.GrantClaims, DenyReason | None]]:
        """The licensee's grants on record for the character, newest first, and why each is unusable."""
        found = []
        for grant in reversed(self.fake.issued_grants.values()):
            if grant.character_id != character_id or grant.licensee_id != LICENSEE_ID:
                continue
            claims = grant_pb2.GrantClaims.FromString(grant.envelope.payload)
            problem: DenyReason | None = None
            if grant.state == Grant.STATE_REVOKED:
                problem = DenyReason.GRANT_REVOKED
            elif grant.state == Grant.STATE_SUSPENDED:
                problem = DenyReason.GRANT_SUSPENDED
            elif now < grant.not_before.ToDatetime(dt.UTC):
                problem = DenyReason.GRANT_NOT_YET_VALID
            elif now >= grant.expire_time.ToDatetime(dt.UTC):
                problem = DenyReason.GRANT_EXPIRED
            found.append((claims, problem))
        # Usable grants first, so an old revoked grant never hides a new one.
        return sorted(found, key=lambda item: item[1] is not None)


DenyReason = terms.DenyReason

# The deny reason of a presented grant's verdict; a verdict not listed here makes it usable.
_GRANT_REASONS: dict[int, DenyReason] = {
    grant_pb2.GRANT_VERDICT_EXPIRED: DenyReason.GRANT_EXPIRED,
    grant_pb2.GRANT_VERDICT_NOT_YET_VALID: DenyReason.GRANT_NOT_YET_VALID,
    grant_pb2.GRANT_VERDICT_REVOKED: DenyReason.GRANT_REVOKED,
    grant_pb2.GRANT_VERDICT_SUSPENDED: DenyReason.GRANT_SUSPENDED,
    **{
        verdict: DenyReason.GRANT_INVALID
        for verdict in grant_pb2.GrantVerdict.values()
        if verdict
        not in (
            grant_pb2.GRANT_VERDICT_VALID,
            grant_pb2.GRANT_VERDICT_EXPIRED,
            grant_pb2.GRANT_VERDICT_NOT_YET_VALID,
            grant_pb2.GRANT_VERDICT_REVOKED,
            grant_pb2.GRANT_VERDICT_SUSPENDED,
        )
    },
}


def _deny(reason: str) -> decision_pb2.DenyReason.ValueType:
    return decision_pb2.DenyReason.Value(f"DENY_REASON_{reason}")


def _obligations(owed: terms.Obligations) -> decision_pb2.Obligations:
    result = decision_pb2.Obligations(
        attribution_text=owed.attribution_text,
        watermark_required=owed.watermark_required,
        revenue_share_bps=owed.revenue_share_bps,
    )
    if owed.per_use_fee_currency:
        result.per_use_fee.CopyFrom(
            terms_pb2.Money(currency_code=owed.per_use_fee_currency, minor_units=owed.per_use_fee_minor_units)
        )
    return result


def _check_prompt(prompt: str, *, required: bool) -> None:
    if required and not prompt:
        raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "invalid request", (("prompt", "required"),))
    if len(prompt) > 8000:
        raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "invalid request", (("prompt", "too long"),))


def _check_authorize(req: authorization_service_pb2.AuthorizeRequest) -> None:
    _check_prompt(req.prompt, required=False)
    violations = []
    if not req.character_ids and not req.prompt:
        violations.append(("character_ids", "give characters, a prompt, or both"))
    if len(set(req.character_ids)) != len(req.character_ids):
        violations.append(("character_ids", "must not repeat a character"))
    if not req.context.use_type:
        violations.append(("context.use_type", "is required"))
    if not req.context.content_rating:
        violations.append(("context.content_rating", "is required"))
    if violations:
        raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "invalid request", tuple(violations))


@dataclasses.dataclass
class RunningFake:
    """A started fake server: its address and its state."""

    target: str
    fake: FakeCharter


def serve(
    credentials: grpc.ServerCredentials | None = None,
) -> Iterator[RunningFake]:
    """Runs a fake Charter server on 127.0.0.1 with a free port for the duration of a fixture."""
    fake = FakeCharter()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    catalog_service_pb2_grpc.add_CatalogServiceServicer_to_server(FakeCatalog(fake), server)
    access_service_pb2_grpc.add_AccessServiceServicer_to_server(FakeAccess(fake), server)
    grant_service_pb2_grpc.add_GrantServiceServicer_to_server(FakeGrants(fake), server)
    key_service_pb2_grpc.add_KeyServiceServicer_to_server(FakeKeys(fake), server)
    authorization_service_pb2_grpc.add_AuthorizationServiceServicer_to_server(FakeAuthorization(fake), server)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield RunningFake(target=f"127.0.0.1:{port}", fake=fake)
    finally:
        server.stop(grace=None)
