"""Bad input: every field of every request of every service.

Each bad request must fail with INVALID_ARGUMENT, reason INVALID_FIELD and a BadRequest
violation naming exactly the offending field paths, and must change nothing (the whole
catalogue and key list are compared before and after). A bad ImportCharacters row instead
fails alone: the call succeeds, the row's result is FAILED with INVALID_FIELD and names
exactly the offending paths within the row, and nothing of it is written. A grant, signing-key
or verification case must change no grant and no signing key either. No request, however
malformed, may produce INTERNAL or UNKNOWN.

A bad ReportUsage record likewise fails alone: the call succeeds, the record's result is REJECTED
with INVALID_FIELD naming exactly the offending paths within the record, and nothing is recorded
(every statement is compared before and after), as for a statement or closing case.
"""

from __future__ import annotations

import base64
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import grpc
import pytest
from charter.envelope import DECISION_RECORD_PAYLOAD_TYPE
from charter.v1 import access_service_pb2 as access_pb
from charter.v1 import (
    api_key_pb2,
    authorization_service_pb2_grpc,
    grant_service_pb2_grpc,
    key_service_pb2_grpc,
    transparency_service_pb2_grpc,
    usage_pb2,
    usage_service_pb2_grpc,
)
from charter.v1 import authorization_service_pb2 as authz_pb
from charter.v1 import catalog_service_pb2 as catalog_pb
from charter.v1 import decision_pb2 as decision_pb
from charter.v1 import envelope_pb2 as envelope_pb
from charter.v1 import grant_service_pb2 as grant_pb
from charter.v1 import key_service_pb2 as key_pb
from charter.v1 import offline_service_pb2 as offline_pb
from charter.v1 import terms_pb2 as terms_pb
from charter.v1 import transparency_service_pb2 as ts_pb
from charter.v1 import usage_service_pb2 as usage_pb
from charter_server.api.policy import POLICY
from charter_server.domain import ids
from charter_server.domain.models import Role
from google.protobuf import duration_pb2, field_mask_pb2, message, timestamp_pb2

from .character_helpers import Holder, kana_marker, new_holder
from .helpers import ERROR_DOMAIN, NEVER, Method, all_methods, auth, failure, invoke, unique

METHODS = {str(m): m for m in all_methods()}
ROLE = api_key_pb2
HEX = "0123456789abcdef" * 2


@dataclass(frozen=True)
class Targets:
    """What the cases aim at: the session keys' rights holder and licensee, and a rights holder
    of their own ("owner", with its key) holding an opted-out and an opted-in character."""

    holder_id: str
    licensee_id: str
    owner: Holder
    character_id: str
    opted_in_id: str
    grant_id: str
    signing_key_id: str
    receipt: envelope_pb.Envelope


@dataclass
class Ctx:
    """What a case needs to build its request: stubs, keys, existing resources, the clock."""

    catalog: Any
    access: Any
    keys: Any
    clock: Any
    targets: Targets
    grants: Any = None
    usage: Any = None
    transparency: Any = None
    marker: str = field(default_factory=unique)

    @property
    def holder_id(self) -> str:
        return self.targets.holder_id

    @property
    def licensee_id(self) -> str:
        return self.targets.licensee_id

    def secret(self, caller: str) -> str:
        """The secret of a case's caller: a role of the session keys, or "owner"."""
        return self.targets.owner.secret if caller == "owner" else str(getattr(self.keys, caller))

    def token(self, rpc: str, request: message.Message) -> str:
        """A real next_page_token of ``rpc`` called with ``request`` (page_size 1)."""
        stub = {
            "ListApiKeys": self.access,
            "ListGrants": self.grants,
            "ListStatements": self.usage,
            "ListEntries": self.transparency,
        }.get(rpc, self.catalog)
        request.page_size = 1
        token: str = getattr(stub, rpc)(request, metadata=auth(self.keys.admin)).next_page_token
        assert token, f"{rpc} returned a single page; the case needs at least two rows"
        return token


# Valid requests, each case breaks one thing (or a few, named in the case's expected fields).


def rights_holder(ctx: Ctx, **changes: Any) -> dict[str, Any]:
    base = {
        "display_name": f"Studio {ctx.marker}",
        "legal_name": f"Studio {ctx.marker} KK",
        "contact_email": "rights@studio.example",
        "revenue_share_account": "ACC-001",
    }
    return {**base, **changes}


def licensee(ctx: Ctx, **changes: Any) -> dict[str, Any]:
    base = {
        "display_name": f"App {ctx.marker}",
        "legal_name": f"App {ctx.marker} Inc.",
        "contact_email": "ops@app.example",
        "platform": "video-app",
    }
    return {**base, **changes}


def create_rh(**changes: Any) -> Callable[[Ctx], message.Message]:
    request_id = changes.pop("request_id", "")
    return lambda ctx: catalog_pb.CreateRightsHolderRequest(
        rights_holder=rights_holder(ctx, **changes), request_id=request_id
    )


def create_lic(**changes: Any) -> Callable[[Ctx], message.Message]:
    request_id = changes.pop("request_id", "")
    return lambda ctx: catalog_pb.CreateLicenseeRequest(licensee=licensee(ctx, **changes), request_id=request_id)


def update_rh(paths: list[str] | None, **values: Any) -> Callable[[Ctx], message.Message]:
    def build(ctx: Ctx) -> message.Message:
        given = {"id": ctx.holder_id, **values}
        return catalog_pb.UpdateRightsHolderRequest(
            rights_holder=given, update_mask=None if paths is None else field_mask_pb2.FieldMask(paths=paths)
        )

    return build


def update_lic(paths: list[str] | None, **values: Any) -> Callable[[Ctx], message.Message]:
    def build(ctx: Ctx) -> message.Message:
        given = {"id": ctx.licensee_id, **values}
        return catalog_pb.UpdateLicenseeRequest(
            licensee=given, update_mask=None if paths is None else field_mask_pb2.FieldMask(paths=paths)
        )

    return build


def create_key(**values: Any) -> Callable[[Ctx], message.Message]:
    def build(ctx: Ctx) -> message.Message:
        given = {"display_name": f"key {ctx.marker}", "role": ROLE.ROLE_AUDITOR, **values}
        for name, value in list(given.items()):
            if callable(value):
                given[name] = value(ctx)
        return access_pb.CreateApiKeyRequest(**given)

    return build


def fixed(request: message.Message) -> Callable[[Ctx], message.Message]:
    return lambda ctx: request


def encode_token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def flipped(token: str) -> str:
    """The token with its middle character changed (the middle one never holds padding bits)."""
    middle = len(token) // 2
    return token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]


def with_cursor(token: str, cursor: Callable[[int], int]) -> str:
    """The token decoded, its numeric cursor changed by ``cursor``, and re-encoded: a hand-made forgery.

    This knows the current token format (base64 of a JSON object); should the format change, the
    helper fails loudly rather than testing nothing.
    """
    data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    numbers = [name for name, value in data.items() if isinstance(value, int)]
    assert len(numbers) == 1, f"cannot find the cursor in {data!r}"
    data[numbers[0]] = cursor(data[numbers[0]])
    return encode_token(json.dumps(data).encode())


IMPORT_CHARACTERS = "CatalogService.ImportCharacters"
REPORT_USAGE = "UsageService.ReportUsage"
# The repeated field of each RPC that answers per item: a bad item fails alone.
ROWS = {IMPORT_CHARACTERS: "rows", REPORT_USAGE: "records"}


@dataclass(frozen=True)
class Case:
    """One bad request: the RPC, how to build it, the exact field paths it must be rejected for.

    A ``row`` case is a request of an RPC of ``ROWS`` whose first (and only) item is bad: its
    ``fields`` are the paths within that item.
    """

    name: str
    rpc: str
    build: Callable[[Ctx], message.Message]
    fields: frozenset[str]
    caller: str = "admin"
    row: bool = False

    def __str__(self) -> str:
        return self.name

    def covers(self) -> set[str]:
        """The request fields this case breaks, as ``input_paths`` names them (no indexes, two levels)."""
        found = set()
        for field_path in self.fields:
            plain = re.sub(r"\[\d+\]", "", f"{ROWS[self.rpc]}.{field_path}" if self.row else field_path)
            found.add(".".join(plain.split(".")[:2]))
        return found


def case(name: str, rpc: str, build: Callable[[Ctx], message.Message], *fields: str, caller: str = "admin") -> Case:
    return Case(name, rpc, build, frozenset(fields), caller)


def row_case(
    name: str,
    build: Callable[[Ctx], message.Message],
    *fields: str,
    caller: str = "owner",
    rpc: str = IMPORT_CHARACTERS,
) -> Case:
    return Case(name, rpc, build, frozenset(fields), caller, row=True)


LONG = "x" * 201
BAD_TEXT = {"nul": "a\x00b", "newline": "a\nb", "escape": "a\x1bb", "delete": "a\x7fb", "c1": "a\x85b"}
BAD_EMAILS = {
    "empty": "",
    "no_at": "rights.studio.example",
    "no_domain_dot": "rights@studio",
    "space": "ri ghts@studio.example",
    "no_local": "@studio.example",
    "two_ats": "a@b@studio.example",
    "too_long": "r" * 64 + "@" + "s" * 190 + ".example",
    "local_too_long": "r" * 65 + "@studio.example",
    "trailing_newline": "rights@studio.example\n",
    "nul": "ri\x00ghts@studio.example",
    "delete": "rights@studio.exampl\x7f",
}
BAD_SLUGS = {
    "empty": "",
    "upper": "Video-App",
    "space": "video app",
    "leading_dash": "-video",
    "too_long": "v" * 64,
    "non_ascii": "vidéo",
    "trailing_newline": "video-app\n",
    "nul": "vid\x00eo",
    "slash": "video/app",
}
BAD_REQUEST_IDS = {"space": "has space", "too_long": "r" * 65, "non_ascii": "réq", "newline": "req\n", "slash": "a/b"}
BAD_IDS = {
    "empty": "",
    "prefix_only": "{p}_",
    "short": "{p}_" + HEX[:31],
    "long": "{p}_" + HEX + "0",
    "upper": "{p}_" + HEX.upper(),
    "not_hex": "{p}_" + "g" * 32,
    "wrong_kind": "{o}_" + HEX,
    "trailing_newline": "{p}_" + HEX + "\n",
    "leading_space": " {p}_" + HEX,
    "path": "../{p}_" + HEX,
}


def bad_ids(kind: str) -> dict[str, str]:
    prefix = ids.PREFIXES[kind]
    other = "lic" if prefix != "lic" else "rh"
    return {name: pattern.format(p=prefix, o=other) for name, pattern in BAD_IDS.items()}


def some_bad_ids(kind: str) -> dict[str, str]:
    """A few of ``bad_ids``: ids are checked by one validator, whose every case runs on the first
    id field of each kind; the other fields of that kind need only show that they use it."""
    return {name: value for name, value in bad_ids(kind).items() if name in ("empty", "upper", "wrong_kind")}


def text_cases(
    rpc: str,
    build: Callable[..., Callable[[Ctx], message.Message]],
    prefix: str,
    name: str,
    max_len: int,
    *,
    required: bool,
) -> list[Case]:
    path = f"{prefix}{name}"
    found = [case(f"{rpc}-{name}-too_long", rpc, build(**{name: "x" * (max_len + 1)}), path)]
    found += [case(f"{rpc}-{name}-{label}", rpc, build(**{name: value}), path) for label, value in BAD_TEXT.items()]
    if required:
        found += [
            case(f"{rpc}-{name}-empty", rpc, build(**{name: ""}), path),
            case(f"{rpc}-{name}-blank", rpc, build(**{name: "  \t "}), path),
        ]
    return found


def build_cases() -> list[Case]:
    cases: list[Case] = []
    add = cases.extend

    # CreateRightsHolder.
    rpc = "CatalogService.CreateRightsHolder"
    add(text_cases(rpc, create_rh, "rights_holder.", "display_name", 200, required=True))
    add(text_cases(rpc, create_rh, "rights_holder.", "legal_name", 300, required=False))
    add(text_cases(rpc, create_rh, "rights_holder.", "revenue_share_account", 200, required=False))
    add(
        case(f"{rpc}-contact_email-{k}", rpc, create_rh(contact_email=v), "rights_holder.contact_email")
        for k, v in BAD_EMAILS.items()
    )
    add(case(f"{rpc}-request_id-{k}", rpc, create_rh(request_id=v), "request_id") for k, v in BAD_REQUEST_IDS.items())
    add(
        [
            case(
                f"{rpc}-missing_resource",
                rpc,
                fixed(catalog_pb.CreateRightsHolderRequest()),
                "rights_holder.display_name",
                "rights_holder.contact_email",
            ),
            case(
                f"{rpc}-everything_bad",
                rpc,
                create_rh(
                    display_name="",
                    legal_name="y" * 301,
                    contact_email="nope",
                    revenue_share_account=LONG,
                    request_id="bad id",
                ),
                "rights_holder.display_name",
                "rights_holder.legal_name",
                "rights_holder.contact_email",
                "rights_holder.revenue_share_account",
                "request_id",
            ),
        ]
    )

    # GetRightsHolder / ArchiveRightsHolder: the id.
    for method, request_type in (
        ("GetRightsHolder", catalog_pb.GetRightsHolderRequest),
        ("ArchiveRightsHolder", catalog_pb.ArchiveRightsHolderRequest),
    ):
        rpc = f"CatalogService.{method}"
        add(case(f"{rpc}-id-{k}", rpc, fixed(request_type(id=v)), "id") for k, v in bad_ids("rights_holder").items())
    add(
        [
            case(
                "CatalogService.GetRightsHolder-id-malformed-as_rights_holder",
                "CatalogService.GetRightsHolder",
                fixed(catalog_pb.GetRightsHolderRequest(id="rh_nope")),
                "id",
                caller="rights_holder",
            )
        ]
    )

    # UpdateRightsHolder.
    rpc = "CatalogService.UpdateRightsHolder"
    add(
        case(f"{rpc}-id-{k}", rpc, update_rh(["display_name"], id=v, display_name="New"), "rights_holder.id")
        for k, v in bad_ids("rights_holder").items()
    )
    for label, paths in {
        "unknown": ["nope"],
        "id": ["id"],
        "state": ["state"],
        "create_time": ["create_time"],
        "update_time": ["update_time"],
        "archive_time": ["archive_time"],
        "empty_path": [""],
        "prefixed": ["rights_holder.display_name"],
        "upper": ["DISPLAY_NAME"],
        "one_good_one_bad": ["display_name", "nope"],
        "licensee_field": ["platform"],
    }.items():
        add([case(f"{rpc}-update_mask-{label}", rpc, update_rh(paths, display_name="New"), "update_mask")])
    add(
        [
            case(f"{rpc}-update_mask-names_nothing", rpc, update_rh(None), "update_mask"),
            case(f"{rpc}-update_mask-empty_list", rpc, update_rh([]), "update_mask"),
            case(f"{rpc}-display_name-cleared", rpc, update_rh(["display_name"]), "rights_holder.display_name"),
            case(
                f"{rpc}-display_name-too_long",
                rpc,
                update_rh(["display_name"], display_name=LONG),
                "rights_holder.display_name",
            ),
            case(
                f"{rpc}-display_name-control_empty_mask",
                rpc,
                update_rh(None, display_name="a\x00b"),
                "rights_holder.display_name",
            ),
            case(
                f"{rpc}-legal_name-too_long",
                rpc,
                update_rh(["legal_name"], legal_name="y" * 301),
                "rights_holder.legal_name",
            ),
            case(f"{rpc}-contact_email-cleared", rpc, update_rh(["contact_email"]), "rights_holder.contact_email"),
            case(
                f"{rpc}-contact_email-bad",
                rpc,
                update_rh(["contact_email"], contact_email="nope"),
                "rights_holder.contact_email",
            ),
            case(
                f"{rpc}-revenue_share_account-bad",
                rpc,
                update_rh(None, revenue_share_account="a\nb"),
                "rights_holder.revenue_share_account",
            ),
            case(
                f"{rpc}-as_rights_holder",
                rpc,
                update_rh(["contact_email"], contact_email="nope"),
                "rights_holder.contact_email",
                caller="rights_holder",
            ),
        ]
    )

    # ListRightsHolders and ListLicensees: paging and filters.
    for method, request_type in (
        ("ListRightsHolders", catalog_pb.ListRightsHoldersRequest),
        ("ListLicensees", catalog_pb.ListLicenseesRequest),
    ):
        rpc = f"CatalogService.{method}"
        add(
            [
                case(f"{rpc}-page_size-negative", rpc, fixed(request_type(page_size=-1)), "page_size"),
                case(f"{rpc}-page_size-most_negative", rpc, fixed(request_type(page_size=-(2**31))), "page_size"),
                case(f"{rpc}-state-unknown", rpc, fixed(request_type(state=42)), "state"),
                case(f"{rpc}-state-negative", rpc, fixed(request_type(state=-1)), "state"),
                case(f"{rpc}-query-too_long", rpc, fixed(request_type(query=LONG)), "query"),
                case(f"{rpc}-query-control", rpc, fixed(request_type(query="a\x00b")), "query"),
                case(f"{rpc}-page_token-garbage", rpc, fixed(request_type(page_token="garbage!!")), "page_token"),
                case(
                    f"{rpc}-page_token-not_json",
                    rpc,
                    fixed(request_type(page_token=encode_token(b"\xff\x00"))),
                    "page_token",
                ),
                case(
                    f"{rpc}-page_token-json_list",
                    rpc,
                    fixed(request_type(page_token=encode_token(b"[1, 2]"))),
                    "page_token",
                ),
                case(
                    f"{rpc}-page_token-json_string",
                    rpc,
                    fixed(request_type(page_token=encode_token(b'"abc"'))),
                    "page_token",
                ),
                case(f"{rpc}-page_token-non_ascii", rpc, fixed(request_type(page_token="tökén")), "page_token"),
                case(f"{rpc}-page_token-too_long", rpc, fixed(request_type(page_token="A" * 4000)), "page_token"),
                case(
                    f"{rpc}-page_token-deeply_nested",
                    rpc,
                    fixed(request_type(page_token=encode_token(b"[" * 300))),
                    "page_token",
                ),
                case(
                    f"{rpc}-page_token-float_cursor",
                    rpc,
                    fixed(request_type(page_token=encode_token(b'{"a": 1e400, "f": "x"}'))),
                    "page_token",
                ),
                case(
                    f"{rpc}-page_token-flipped",
                    rpc,
                    lambda ctx, m=method, t=request_type: t(page_token=flipped(ctx.token(m, t()))),
                    "page_token",
                ),
                case(
                    f"{rpc}-page_token-truncated",
                    rpc,
                    lambda ctx, m=method, t=request_type: t(page_token=ctx.token(m, t())[:-3]),
                    "page_token",
                ),
                case(
                    f"{rpc}-page_token-extended",
                    rpc,
                    lambda ctx, m=method, t=request_type: t(page_token=ctx.token(m, t()) + "AAAA"),
                    "page_token",
                ),
                case(
                    f"{rpc}-page_token-forged_cursor",
                    rpc,
                    lambda ctx, m=method, t=request_type: t(page_token=with_cursor(ctx.token(m, t()), lambda n: n + 1)),
                    "page_token",
                ),
                case(
                    f"{rpc}-page_token-huge_cursor",
                    rpc,
                    lambda ctx, m=method, t=request_type: t(
                        page_token=with_cursor(ctx.token(m, t()), lambda n: 10**30)
                    ),
                    "page_token",
                ),
                case(
                    f"{rpc}-page_token-negative_cursor",
                    rpc,
                    lambda ctx, m=method, t=request_type: t(page_token=with_cursor(ctx.token(m, t()), lambda n: -5)),
                    "page_token",
                ),
                case(
                    f"{rpc}-page_token-other_query",
                    rpc,
                    lambda ctx, m=method, t=request_type: t(page_token=ctx.token(m, t()), query="Studio"),
                    "page_token",
                ),
                case(
                    f"{rpc}-page_token-other_state",
                    rpc,
                    lambda ctx, m=method, t=request_type: t(page_token=ctx.token(m, t()), state=2),
                    "page_token",
                ),
            ]
        )
    add(
        [
            case(
                "CatalogService.ListRightsHolders-page_token-from_licensees",
                "CatalogService.ListRightsHolders",
                lambda ctx: catalog_pb.ListRightsHoldersRequest(
                    page_token=ctx.token("ListLicensees", catalog_pb.ListLicenseesRequest())
                ),
                "page_token",
            ),
            case(
                "CatalogService.ListLicensees-page_token-other_platform",
                "CatalogService.ListLicensees",
                lambda ctx: catalog_pb.ListLicenseesRequest(
                    page_token=ctx.token("ListLicensees", catalog_pb.ListLicenseesRequest()), platform="video-app"
                ),
                "page_token",
            ),
            case(
                "CatalogService.ListRightsHolders-page_size-as_rights_holder",
                "CatalogService.ListRightsHolders",
                fixed(catalog_pb.ListRightsHoldersRequest(page_size=-1)),
                "page_size",
                caller="rights_holder",
            ),
        ]
    )
    add(
        case(
            f"CatalogService.ListLicensees-platform-{k}",
            "CatalogService.ListLicensees",
            fixed(catalog_pb.ListLicenseesRequest(platform=v)),
            "platform",
        )
        for k, v in BAD_SLUGS.items()
        if v
    )

    # CreateLicensee.
    rpc = "CatalogService.CreateLicensee"
    add(text_cases(rpc, create_lic, "licensee.", "display_name", 200, required=True))
    add(text_cases(rpc, create_lic, "licensee.", "legal_name", 300, required=False))
    add(
        case(f"{rpc}-contact_email-{k}", rpc, create_lic(contact_email=v), "licensee.contact_email")
        for k, v in BAD_EMAILS.items()
    )
    add(case(f"{rpc}-platform-{k}", rpc, create_lic(platform=v), "licensee.platform") for k, v in BAD_SLUGS.items())
    add(case(f"{rpc}-request_id-{k}", rpc, create_lic(request_id=v), "request_id") for k, v in BAD_REQUEST_IDS.items())
    add(
        [
            case(
                f"{rpc}-missing_resource",
                rpc,
                fixed(catalog_pb.CreateLicenseeRequest()),
                "licensee.display_name",
                "licensee.contact_email",
                "licensee.platform",
            )
        ]
    )

    # GetLicensee / ArchiveLicensee / UpdateLicensee.
    for method, request_type in (
        ("GetLicensee", catalog_pb.GetLicenseeRequest),
        ("ArchiveLicensee", catalog_pb.ArchiveLicenseeRequest),
    ):
        rpc = f"CatalogService.{method}"
        add(case(f"{rpc}-id-{k}", rpc, fixed(request_type(id=v)), "id") for k, v in bad_ids("licensee").items())
    add(
        [
            case(
                "CatalogService.GetLicensee-id-malformed-as_generator",
                "CatalogService.GetLicensee",
                fixed(catalog_pb.GetLicenseeRequest(id="lic_nope")),
                "id",
                caller="generator",
            )
        ]
    )
    # GetLicenseeProfile / ListLicenseeProfiles: a rights-holder key is checked for its input first too.
    rpc = "CatalogService.GetLicenseeProfile"
    add(
        case(f"{rpc}-id-{k}", rpc, fixed(catalog_pb.GetLicenseeProfileRequest(id=v)), "id")
        for k, v in bad_ids("licensee").items()
    )
    add(
        [
            case(
                f"{rpc}-id-malformed-as_rights_holder",
                rpc,
                fixed(catalog_pb.GetLicenseeProfileRequest(id="lic_nope")),
                "id",
                caller="rights_holder",
            )
        ]
    )
    rpc = "CatalogService.ListLicenseeProfiles"
    profiles = catalog_pb.ListLicenseeProfilesRequest
    add(
        case(f"{rpc}-rights_holder_id-{k}", rpc, fixed(profiles(rights_holder_id=v)), "rights_holder_id")
        for k, v in some_bad_ids("rights_holder").items()
        if v
    )
    add(
        [
            case(f"{rpc}-page_size-negative", rpc, fixed(profiles(page_size=-1)), "page_size"),
            case(f"{rpc}-page_token-garbage", rpc, fixed(profiles(page_token="garbage!!")), "page_token"),
            case(
                f"{rpc}-page_token-from_licensees",
                rpc,
                lambda ctx: profiles(page_token=ctx.token("ListLicensees", catalog_pb.ListLicenseesRequest())),
                "page_token",
            ),
            case(
                f"{rpc}-page_token-other_rights_holder",
                rpc,
                lambda ctx: profiles(
                    page_token=ctx.token("ListLicenseeProfiles", profiles()), rights_holder_id=ctx.holder_id
                ),
                "page_token",
            ),
            case(
                f"{rpc}-page_size-as_rights_holder",
                rpc,
                fixed(profiles(page_size=-2)),
                "page_size",
                caller="rights_holder",
            ),
        ]
    )

    rpc = "CatalogService.UpdateLicensee"
    add(
        case(f"{rpc}-id-{k}", rpc, update_lic(["display_name"], id=v, display_name="New"), "licensee.id")
        for k, v in bad_ids("licensee").items()
    )
    for label, paths in {
        "unknown": ["nope"],
        "id": ["id"],
        "state": ["state"],
        "create_time": ["create_time"],
        "rights_holder_field": ["revenue_share_account"],
        "prefixed": ["licensee.platform"],
    }.items():
        add([case(f"{rpc}-update_mask-{label}", rpc, update_lic(paths, display_name="New"), "update_mask")])
    add(
        [
            case(f"{rpc}-update_mask-names_nothing", rpc, update_lic(None), "update_mask"),
            case(f"{rpc}-display_name-cleared", rpc, update_lic(["display_name"]), "licensee.display_name"),
            case(f"{rpc}-contact_email-bad", rpc, update_lic(None, contact_email="a@b"), "licensee.contact_email"),
            case(f"{rpc}-platform-cleared", rpc, update_lic(["platform"]), "licensee.platform"),
            case(f"{rpc}-platform-bad", rpc, update_lic(None, platform="Not A Slug"), "licensee.platform"),
            case(
                f"{rpc}-legal_name-control", rpc, update_lic(["legal_name"], legal_name="a\rb"), "licensee.legal_name"
            ),
        ]
    )

    # CreateApiKey.
    rpc = "AccessService.CreateApiKey"
    add(text_cases(rpc, create_key, "", "display_name", 200, required=True))
    add(case(f"{rpc}-request_id-{k}", rpc, create_key(request_id=v), "request_id") for k, v in BAD_REQUEST_IDS.items())

    def now_plus(delta: timedelta) -> Callable[[Ctx], timestamp_pb2.Timestamp]:
        def stamp(ctx: Ctx) -> timestamp_pb2.Timestamp:
            result = timestamp_pb2.Timestamp()
            result.FromDatetime(ctx.clock.now() + delta)
            return result

        return stamp

    holder = lambda ctx: ctx.holder_id  # noqa: E731 - reads best inline in the table
    lic = lambda ctx: ctx.licensee_id  # noqa: E731
    add(
        [
            case(f"{rpc}-role-unspecified", rpc, create_key(role=ROLE.ROLE_UNSPECIFIED), "role"),
            case(f"{rpc}-role-unknown", rpc, create_key(role=99), "role"),
            case(f"{rpc}-role-negative", rpc, create_key(role=-1), "role"),
            case(
                f"{rpc}-rights_holder-without_binding",
                rpc,
                create_key(role=ROLE.ROLE_RIGHTS_HOLDER),
                "rights_holder_id",
            ),
            case(
                f"{rpc}-rights_holder-malformed_binding",
                rpc,
                create_key(role=ROLE.ROLE_RIGHTS_HOLDER, rights_holder_id="rh_123"),
                "rights_holder_id",
            ),
            case(
                f"{rpc}-rights_holder-licensee_id_as_binding",
                rpc,
                create_key(role=ROLE.ROLE_RIGHTS_HOLDER, rights_holder_id=lic),
                "rights_holder_id",
            ),
            case(
                f"{rpc}-rights_holder-with_licensee",
                rpc,
                create_key(role=ROLE.ROLE_RIGHTS_HOLDER, rights_holder_id=holder, licensee_id=lic),
                "licensee_id",
            ),
            case(f"{rpc}-generator-without_binding", rpc, create_key(role=ROLE.ROLE_GENERATOR), "licensee_id"),
            case(
                f"{rpc}-generator-malformed_binding",
                rpc,
                create_key(role=ROLE.ROLE_GENERATOR, licensee_id="lic_" + HEX[:8]),
                "licensee_id",
            ),
            case(
                f"{rpc}-generator-with_rights_holder",
                rpc,
                create_key(role=ROLE.ROLE_GENERATOR, licensee_id=lic, rights_holder_id=holder),
                "rights_holder_id",
            ),
            case(
                f"{rpc}-admin-with_rights_holder",
                rpc,
                create_key(role=ROLE.ROLE_ADMIN, rights_holder_id=holder),
                "rights_holder_id",
            ),
            case(f"{rpc}-admin-with_licensee", rpc, create_key(role=ROLE.ROLE_ADMIN, licensee_id=lic), "licensee_id"),
            case(
                f"{rpc}-auditor-with_both",
                rpc,
                create_key(role=ROLE.ROLE_AUDITOR, rights_holder_id=holder, licensee_id=lic),
                "rights_holder_id",
                "licensee_id",
            ),
            case(f"{rpc}-expire_time-past", rpc, create_key(expire_time=now_plus(-timedelta(days=1))), "expire_time"),
            case(f"{rpc}-expire_time-now", rpc, create_key(expire_time=now_plus(-timedelta(seconds=1))), "expire_time"),
            case(f"{rpc}-expire_time-epoch", rpc, create_key(expire_time=timestamp_pb2.Timestamp()), "expire_time"),
            case(
                f"{rpc}-expire_time-bad_nanos",
                rpc,
                create_key(expire_time=timestamp_pb2.Timestamp(seconds=4_000_000_000, nanos=-1)),
                "expire_time",
            ),
            case(
                f"{rpc}-expire_time-too_many_nanos",
                rpc,
                create_key(expire_time=timestamp_pb2.Timestamp(seconds=4_000_000_000, nanos=10**9)),
                "expire_time",
            ),
            case(
                f"{rpc}-expire_time-after_year_9999",
                rpc,
                create_key(expire_time=timestamp_pb2.Timestamp(seconds=2**62)),
                "expire_time",
            ),
            case(
                f"{rpc}-expire_time-before_year_1",
                rpc,
                create_key(expire_time=timestamp_pb2.Timestamp(seconds=-(2**62))),
                "expire_time",
            ),
        ]
    )

    # GetApiKey / RevokeApiKey / ListApiKeys.
    for method, request_type in (
        ("GetApiKey", access_pb.GetApiKeyRequest),
        ("RevokeApiKey", access_pb.RevokeApiKeyRequest),
    ):
        rpc = f"AccessService.{method}"
        add(case(f"{rpc}-id-{k}", rpc, fixed(request_type(id=v)), "id") for k, v in bad_ids("api_key").items())
    rpc = "AccessService.ListApiKeys"
    keys_list = access_pb.ListApiKeysRequest
    add(
        [
            case(f"{rpc}-page_size-negative", rpc, fixed(keys_list(page_size=-7)), "page_size"),
            case(f"{rpc}-role-unknown", rpc, fixed(keys_list(role=99)), "role"),
            case(f"{rpc}-page_token-garbage", rpc, fixed(keys_list(page_token="%%%")), "page_token"),
            case(
                f"{rpc}-page_token-flipped",
                rpc,
                lambda ctx: keys_list(page_token=flipped(ctx.token("ListApiKeys", keys_list()))),
                "page_token",
            ),
            case(
                f"{rpc}-page_token-huge_cursor",
                rpc,
                lambda ctx: keys_list(page_token=with_cursor(ctx.token("ListApiKeys", keys_list()), lambda n: 2**63)),
                "page_token",
            ),
            case(
                f"{rpc}-page_token-other_role",
                rpc,
                lambda ctx: keys_list(page_token=ctx.token("ListApiKeys", keys_list()), role=ROLE.ROLE_ADMIN),
                "page_token",
            ),
            case(
                f"{rpc}-page_token-other_show_inactive",
                rpc,
                lambda ctx: keys_list(page_token=ctx.token("ListApiKeys", keys_list()), show_inactive=True),
                "page_token",
            ),
            case(
                f"{rpc}-page_token-from_rights_holders",
                rpc,
                lambda ctx: keys_list(page_token=ctx.token("ListRightsHolders", catalog_pb.ListRightsHoldersRequest())),
                "page_token",
            ),
        ]
    )
    return cases


# Characters, terms, import and collisions.


def character(ctx: Ctx, **changes: Any) -> dict[str, Any]:
    """A valid new character of the owner rights holder, with ``changes``."""
    base = {
        "rights_holder_id": ctx.targets.owner.id,
        "canonical_name": f"Chara {ctx.marker}",
        "aliases": [{"value": f"Alias {ctx.marker}", "language": "ja-Latn"}],
    }
    return {**base, **changes}


def create_chr(**changes: Any) -> Callable[[Ctx], message.Message]:
    request_id = changes.pop("request_id", "")
    return lambda ctx: catalog_pb.CreateCharacterRequest(character=character(ctx, **changes), request_id=request_id)


def update_chr(paths: list[str] | None, **values: Any) -> Callable[[Ctx], message.Message]:
    def build(ctx: Ctx) -> message.Message:
        given = {"id": ctx.targets.character_id, **values}
        return catalog_pb.UpdateCharacterRequest(
            character=given, update_mask=None if paths is None else field_mask_pb2.FieldMask(paths=paths)
        )

    return build


def valid_terms(**changes: Any) -> dict[str, Any]:
    return {
        "permitted_use_types": [terms_pb.USE_TYPE_IMAGE_GENERATION],
        "max_content_rating": terms_pb.CONTENT_RATING_TEEN,
        **changes,
    }


def resolved(ctx: Ctx, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with each callable replaced by its value for ``ctx``."""
    return {name: value(ctx) if callable(value) else value for name, value in values.items()}


def opt_in(**changes: Any) -> Callable[[Ctx], message.Message]:
    return lambda ctx: catalog_pb.OptInRequest(
        character_id=ctx.targets.character_id, terms=valid_terms(**resolved(ctx, changes))
    )


def update_terms(**changes: Any) -> Callable[[Ctx], message.Message]:
    return lambda ctx: catalog_pb.UpdateTermsRequest(
        character_id=ctx.targets.opted_in_id, terms=valid_terms(**resolved(ctx, changes))
    )


def import_row(*, terms: dict[str, Any] | None = None, **changes: Any) -> Callable[[Ctx], message.Message]:
    """An import of one row: valid (external id set) unless ``changes`` or ``terms`` break it."""

    def build(ctx: Ctx) -> message.Message:
        bad = {"character": character(ctx, **{"external_id": f"bad-{ctx.marker}", **changes})}
        if terms is not None:
            bad["terms"] = valid_terms(**resolved(ctx, terms))
        return catalog_pb.ImportCharactersRequest(rights_holder_id=ctx.targets.owner.id, rows=[bad])

    return build


def stamp(seconds: int, nanos: int = 0) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


BAD_EXTERNAL_IDS = {
    "space": "CAT 001",
    "too_long": "c" * 101,
    "non_ascii": "CAT-ü",
    "slash": "CAT/1",
    "newline": "CAT-1\n",
    "hash": "CAT#1",
}
BAD_URLS = {
    "ftp": "ftp://files.example/miku",
    "no_scheme": "piapro.example/miku",
    "no_host": "https://",
    "space": "https://piapro.example/a b",
    "javascript": "javascript:alert(1)",
    "too_long": "https://piapro.example/" + "a" * 1980,
    "empty": "",
}
BAD_LANGUAGES = {
    "empty": "",
    "words": "not a tag",
    "underscore": "ja_JP",
    "too_long_subtag": "japanese",
    "digits": "12",
    "trailing_dash": "ja-",
}
BAD_DESCRIPTIONS = {"too_long": "d" * 2001, "nul": "a\x00b", "escape": "a\x1bb", "delete": "a\x7fb", "c1": "a\x85b"}

# Bad terms: (label, the changes, the field path under ``terms.``). Callables receive the Ctx.
BAD_TERMS: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("permitted_use_types-empty", {"permitted_use_types": []}, ("permitted_use_types",)),
    ("permitted_use_types-unspecified", {"permitted_use_types": [0]}, ("permitted_use_types[0]",)),
    ("permitted_use_types-unknown", {"permitted_use_types": [1, 42]}, ("permitted_use_types[1]",)),
    ("max_content_rating-unspecified", {"max_content_rating": 0}, ("max_content_rating",)),
    ("max_content_rating-unknown", {"max_content_rating": 99}, ("max_content_rating",)),
    ("max_content_rating-negative", {"max_content_rating": -1}, ("max_content_rating",)),
    ("prohibited_categories-unspecified", {"prohibited_categories": [0]}, ("prohibited_categories[0]",)),
    ("prohibited_categories-unknown", {"prohibited_categories": [1, 2**31 - 1]}, ("prohibited_categories[1]",)),
    ("allowed_territories-ZZ", {"allowed_territories": ["ZZ"]}, ("allowed_territories[0]",)),
    ("allowed_territories-JPN", {"allowed_territories": ["JP", "JPN"]}, ("allowed_territories[1]",)),
    ("allowed_territories-empty", {"allowed_territories": [""]}, ("allowed_territories[0]",)),
    ("allowed_territories-too_many", {"allowed_territories": ["JP"] * 251}, ("allowed_territories",)),
    ("excluded_territories-XX", {"excluded_territories": ["XX"]}, ("excluded_territories[0]",)),
    (
        "excluded_territories-also_allowed",
        {"allowed_territories": ["JP"], "excluded_territories": ["jp"]},
        ("excluded_territories",),
    ),
    ("allowed_licensee_ids-malformed", {"allowed_licensee_ids": ["lic_nope"]}, ("allowed_licensee_ids[0]",)),
    (
        "allowed_licensee_ids-character_id",
        {"allowed_licensee_ids": lambda ctx: [ctx.targets.character_id]},
        ("allowed_licensee_ids[0]",),
    ),
    (
        "allowed_licensee_ids-missing",
        {"allowed_licensee_ids": lambda ctx: [ctx.licensee_id, ids.new_id("licensee")]},
        ("allowed_licensee_ids[1]",),
    ),
    ("allowed_platforms-not_a_slug", {"allowed_platforms": ["video-app", "Video App"]}, ("allowed_platforms[1]",)),
    ("allowed_platforms-empty", {"allowed_platforms": [""]}, ("allowed_platforms[0]",)),
    (
        "prohibited_co_appearance_ids-malformed",
        {"prohibited_co_appearance_ids": ["chr_1"]},
        ("prohibited_co_appearance_ids[0]",),
    ),
    (
        "prohibited_co_appearance_ids-missing",
        {"prohibited_co_appearance_ids": lambda ctx: [ids.new_id("character")]},
        ("prohibited_co_appearance_ids[0]",),
    ),
    ("valid_from-bad_nanos", {"valid_from": stamp(1_800_000_000, -1)}, ("valid_from",)),
    ("valid_from-after_year_9999", {"valid_from": stamp(2**62)}, ("valid_from",)),
    ("valid_until-too_many_nanos", {"valid_until": stamp(1_800_000_000, 10**9)}, ("valid_until",)),
    (
        "valid_until-before_valid_from",
        {"valid_from": stamp(1_800_000_000), "valid_until": stamp(1_799_999_999)},
        ("valid_until",),
    ),
    (
        "valid_until-equal_to_valid_from",
        {"valid_from": stamp(1_800_000_000), "valid_until": stamp(1_800_000_000)},
        ("valid_until",),
    ),
    ("attribution_text-too_long", {"attribution_text": "a" * 501}, ("attribution_text",)),
    ("attribution_text-control", {"attribution_text": "a\x00b"}, ("attribution_text",)),
    ("revenue_share_bps-above", {"revenue_share_bps": 10_001}, ("revenue_share_bps",)),
    ("revenue_share_bps-negative", {"revenue_share_bps": -1}, ("revenue_share_bps",)),
    (
        "per_use_fee-unknown_currency",
        {"per_use_fee": {"currency_code": "XYZ", "minor_units": 1}},
        ("per_use_fee.currency_code",),
    ),
    ("per_use_fee-no_currency", {"per_use_fee": {"minor_units": 1}}, ("per_use_fee.currency_code",)),
    (
        "per_use_fee-negative",
        {"per_use_fee": {"currency_code": "JPY", "minor_units": -1}},
        ("per_use_fee.minor_units",),
    ),
    ("daily_quota-negative", {"daily_quota": -1}, ("daily_quota",)),
    ("monthly_quota-negative", {"monthly_quota": -(2**62)}, ("monthly_quota",)),
]


def one_per_field(
    cases: list[tuple[str, dict[str, Any], tuple[str, ...]]],
) -> list[tuple[str, dict[str, Any], tuple[str, ...]]]:
    """The first bad-terms case of each terms field: UpdateTerms validates with the very code OptIn
    uses, whose every case runs through OptIn and import rows."""
    seen: set[str] = set()
    chosen = []
    for label, changes, fields in cases:
        field_name = re.sub(r"\[\d+\]", "", fields[0]).split(".")[0]
        if field_name not in seen:
            seen.add(field_name)
            chosen.append((label, changes, fields))
    return chosen


def character_cases() -> list[Case]:
    cases: list[Case] = []
    add = cases.extend

    # CreateCharacter.
    rpc = "CatalogService.CreateCharacter"
    add(text_cases(rpc, create_chr, "character.", "canonical_name", 200, required=True))
    add(text_cases(rpc, create_chr, "character.", "franchise", 200, required=False))
    add(
        case(f"{rpc}-description-{k}", rpc, create_chr(description=v), "character.description")
        for k, v in BAD_DESCRIPTIONS.items()
    )
    add(
        case(f"{rpc}-rights_holder_id-{k}", rpc, create_chr(rights_holder_id=v), "character.rights_holder_id")
        for k, v in bad_ids("rights_holder").items()
    )
    add(
        case(f"{rpc}-external_id-{k}", rpc, create_chr(external_id=v), "character.external_id")
        for k, v in BAD_EXTERNAL_IDS.items()
    )
    add(
        case(
            f"{rpc}-reference_urls-{k}",
            rpc,
            create_chr(reference_urls=["https://ok.example", v]),
            "character.reference_urls[1]",
        )
        for k, v in BAD_URLS.items()
    )
    add(
        case(
            f"{rpc}-aliases-language-{k}",
            rpc,
            create_chr(aliases=[{"value": "ミク", "language": v}]),
            "character.aliases[0].language",
        )
        for k, v in BAD_LANGUAGES.items()
    )
    add(case(f"{rpc}-request_id-{k}", rpc, create_chr(request_id=v), "request_id") for k, v in BAD_REQUEST_IDS.items())
    add(
        [
            case(
                f"{rpc}-canonical_name-only_punctuation",
                rpc,
                create_chr(canonical_name="!?・"),
                "character.canonical_name",
            ),
            case(
                f"{rpc}-reference_urls-too_many",
                rpc,
                create_chr(reference_urls=["https://ok.example"] * 21),
                "character.reference_urls",
            ),
            case(
                f"{rpc}-aliases-value-empty",
                rpc,
                create_chr(aliases=[{"value": "", "language": "ja"}]),
                "character.aliases[0].value",
            ),
            case(
                f"{rpc}-aliases-value-blank",
                rpc,
                create_chr(aliases=[{"value": " \u3000 ", "language": "ja"}]),
                "character.aliases[0].value",
            ),
            case(
                f"{rpc}-aliases-value-too_long",
                rpc,
                create_chr(aliases=[{"value": "ミ" * 201, "language": "ja"}]),
                "character.aliases[0].value",
            ),
            case(
                f"{rpc}-aliases-value-control",
                rpc,
                create_chr(aliases=[{"value": "ミ\x00ク", "language": "ja"}]),
                "character.aliases[0].value",
            ),
            case(
                f"{rpc}-aliases-value-only_punctuation",
                rpc,
                create_chr(aliases=[{"value": "・\uff01", "language": "ja"}]),
                "character.aliases[0].value",
            ),
            case(
                f"{rpc}-aliases-kind-unknown",
                rpc,
                create_chr(
                    aliases=[{"value": "ミク", "language": "ja"}, {"value": "Miku", "language": "en", "kind": 9}]
                ),
                "character.aliases[1].kind",
            ),
            case(
                f"{rpc}-aliases-kind-negative",
                rpc,
                create_chr(aliases=[{"value": "ミク", "language": "ja", "kind": -1}]),
                "character.aliases[0].kind",
            ),
            case(
                f"{rpc}-keyword_sets-one_keyword",
                rpc,
                create_chr(keyword_sets=[{"name": "set", "keywords": [{"variants": ["plumber"]}]}]),
                "character.keyword_sets[0].keywords",
            ),
            case(
                f"{rpc}-aliases-too_many",
                rpc,
                create_chr(aliases=[{"value": f"Alias {n}", "language": "en"} for n in range(101)]),
                "character.aliases",
            ),
            case(
                f"{rpc}-missing_resource",
                rpc,
                fixed(catalog_pb.CreateCharacterRequest()),
                "character.rights_holder_id",
                "character.canonical_name",
            ),
            case(
                f"{rpc}-everything_bad",
                rpc,
                create_chr(
                    rights_holder_id="rh_1",
                    canonical_name="",
                    franchise="f" * 201,
                    description="\x00",
                    external_id="a b",
                    reference_urls=["ftp://x"],
                    aliases=[{"value": "", "language": ""}],
                    request_id="bad id",
                ),
                "character.rights_holder_id",
                "character.canonical_name",
                "character.franchise",
                "character.description",
                "character.external_id",
                "character.reference_urls[0]",
                "character.aliases[0].value",
                "character.aliases[0].language",
                "request_id",
            ),
            case(
                f"{rpc}-as_rights_holder",
                rpc,
                create_chr(canonical_name=""),
                "character.canonical_name",
                caller="owner",
            ),
        ]
    )

    # Get / Archive / Reinstate / Suspend: the id.
    for method, request_type in (
        ("GetCharacter", catalog_pb.GetCharacterRequest),
        ("ArchiveCharacter", catalog_pb.ArchiveCharacterRequest),
        ("ReinstateCharacter", catalog_pb.ReinstateCharacterRequest),
    ):
        rpc = f"CatalogService.{method}"
        chosen = bad_ids("character") if method == "GetCharacter" else some_bad_ids("character")
        add(case(f"{rpc}-id-{k}", rpc, fixed(request_type(id=v)), "id") for k, v in chosen.items())
    add(
        [
            case(
                "CatalogService.GetCharacter-id-malformed-as_rights_holder",
                "CatalogService.GetCharacter",
                fixed(catalog_pb.GetCharacterRequest(id="chr_nope")),
                "id",
                caller="owner",
            )
        ]
    )
    rpc = "CatalogService.SuspendCharacter"
    suspend = catalog_pb.SuspendCharacterRequest
    add(
        case(f"{rpc}-id-{k}", rpc, fixed(suspend(id=v, reason="review")), "id")
        for k, v in some_bad_ids("character").items()
    )
    add(
        [
            case(f"{rpc}-reason-empty", rpc, lambda ctx: suspend(id=ctx.targets.opted_in_id), "reason"),
            case(f"{rpc}-reason-blank", rpc, lambda ctx: suspend(id=ctx.targets.opted_in_id, reason=" \t"), "reason"),
            case(
                f"{rpc}-reason-too_long",
                rpc,
                lambda ctx: suspend(id=ctx.targets.opted_in_id, reason="r" * 501),
                "reason",
            ),
            case(
                f"{rpc}-reason-control", rpc, lambda ctx: suspend(id=ctx.targets.opted_in_id, reason="a\x1bb"), "reason"
            ),
            case(f"{rpc}-both", rpc, fixed(suspend(id="chr_", reason="")), "id", "reason"),
        ]
    )

    # UpdateCharacter.
    rpc = "CatalogService.UpdateCharacter"
    add(
        case(f"{rpc}-id-{k}", rpc, update_chr(["franchise"], id=v, franchise="New"), "character.id")
        for k, v in bad_ids("character").items()
    )
    for label, paths in {
        "unknown": ["nope"],
        "id": ["id"],
        "rights_holder_id": ["rights_holder_id"],
        "state": ["state"],
        "terms_version": ["terms_version"],
        "create_time": ["create_time"],
        "empty_path": [""],
        "prefixed": ["character.franchise"],
        "nested": ["aliases.value"],
        "upper": ["FRANCHISE"],
        "one_good_one_bad": ["franchise", "nope"],
    }.items():
        add([case(f"{rpc}-update_mask-{label}", rpc, update_chr(paths, franchise="New"), "update_mask")])
    add(
        [
            case(f"{rpc}-update_mask-names_nothing", rpc, update_chr(None), "update_mask"),
            case(
                f"{rpc}-update_mask-only_output_fields_set",
                rpc,
                update_chr(None, state=2, terms_version=3),
                "update_mask",
            ),
            case(f"{rpc}-canonical_name-cleared", rpc, update_chr(["canonical_name"]), "character.canonical_name"),
            case(
                f"{rpc}-canonical_name-too_long", rpc, update_chr(None, canonical_name=LONG), "character.canonical_name"
            ),
            case(f"{rpc}-franchise-control", rpc, update_chr(["franchise"], franchise="a\nb"), "character.franchise"),
            case(f"{rpc}-description-too_long", rpc, update_chr(None, description="d" * 2001), "character.description"),
            case(
                f"{rpc}-external_id-bad", rpc, update_chr(["external_id"], external_id="a b"), "character.external_id"
            ),
            case(
                f"{rpc}-reference_urls-bad",
                rpc,
                update_chr(None, reference_urls=["mailto:a@b.example"]),
                "character.reference_urls[0]",
            ),
            case(
                f"{rpc}-aliases-bad_language",
                rpc,
                update_chr(["aliases"], aliases=[{"value": "ミク", "language": "ja"}, {"value": "x", "language": "?"}]),
                "character.aliases[1].language",
            ),
            case(
                f"{rpc}-aliases-unknown_kind",
                rpc,
                update_chr(["aliases"], aliases=[{"value": "ミク", "language": "ja", "kind": 99}]),
                "character.aliases[0].kind",
            ),
            case(
                f"{rpc}-keyword_sets-empty_variant",
                rpc,
                update_chr(
                    ["keyword_sets"],
                    keyword_sets=[{"name": "set", "keywords": [{"variants": [" "]}, {"variants": ["b2"]}]}],
                ),
                "character.keyword_sets[0].keywords[0].variants[0]",
            ),
            case(
                f"{rpc}-as_rights_holder",
                rpc,
                update_chr(["canonical_name"], canonical_name=" "),
                "character.canonical_name",
                caller="owner",
            ),
        ]
    )

    # ListCharacters.
    rpc = "CatalogService.ListCharacters"
    chars = catalog_pb.ListCharactersRequest
    add(
        case(f"{rpc}-rights_holder_id-{k}", rpc, fixed(chars(rights_holder_id=v)), "rights_holder_id")
        for k, v in bad_ids("rights_holder").items()
        if v
    )
    add(
        [
            case(f"{rpc}-page_size-negative", rpc, fixed(chars(page_size=-1)), "page_size"),
            case(f"{rpc}-state-unknown", rpc, fixed(chars(state=5)), "state"),
            case(f"{rpc}-state-negative", rpc, fixed(chars(state=-1)), "state"),
            case(f"{rpc}-franchise-too_long", rpc, fixed(chars(franchise=LONG)), "franchise"),
            case(f"{rpc}-franchise-control", rpc, fixed(chars(franchise="a\x00b")), "franchise"),
            case(f"{rpc}-query-too_long", rpc, fixed(chars(query=LONG)), "query"),
            case(f"{rpc}-query-control", rpc, fixed(chars(query="ミ\x7fク")), "query"),
            case(f"{rpc}-page_token-garbage", rpc, fixed(chars(page_token="garbage!!")), "page_token"),
            case(
                f"{rpc}-page_token-flipped",
                rpc,
                lambda ctx: chars(page_token=flipped(ctx.token("ListCharacters", chars()))),
                "page_token",
            ),
            case(
                f"{rpc}-page_token-forged_cursor",
                rpc,
                lambda ctx: chars(page_token=with_cursor(ctx.token("ListCharacters", chars()), lambda n: n + 1)),
                "page_token",
            ),
            case(
                f"{rpc}-page_token-other_query",
                rpc,
                lambda ctx: chars(page_token=ctx.token("ListCharacters", chars()), query="Chara"),
                "page_token",
            ),
            case(
                f"{rpc}-page_token-other_state",
                rpc,
                lambda ctx: chars(page_token=ctx.token("ListCharacters", chars()), state=2),
                "page_token",
            ),
            case(
                f"{rpc}-page_token-other_franchise",
                rpc,
                lambda ctx: chars(page_token=ctx.token("ListCharacters", chars()), franchise="Piapro"),
                "page_token",
            ),
            case(
                f"{rpc}-page_token-other_rights_holder",
                rpc,
                lambda ctx: chars(page_token=ctx.token("ListCharacters", chars()), rights_holder_id=ctx.holder_id),
                "page_token",
            ),
            case(
                f"{rpc}-page_token-from_rights_holders",
                rpc,
                lambda ctx: chars(page_token=ctx.token("ListRightsHolders", catalog_pb.ListRightsHoldersRequest())),
                "page_token",
            ),
            case(f"{rpc}-page_size-as_rights_holder", rpc, fixed(chars(page_size=-5)), "page_size", caller="owner"),
        ]
    )

    # OptIn / UpdateTerms: the character id and every terms field.
    for method, build, request_type, target in (
        ("OptIn", opt_in, catalog_pb.OptInRequest, "character_id"),
        ("UpdateTerms", update_terms, catalog_pb.UpdateTermsRequest, "opted_in_id"),
    ):
        rpc = f"CatalogService.{method}"
        add(
            case(
                f"{rpc}-character_id-{k}", rpc, fixed(request_type(character_id=v, terms=valid_terms())), "character_id"
            )
            for k, v in some_bad_ids("character").items()
        )
        add(
            case(f"{rpc}-terms-{label}", rpc, build(**changes), *(f"terms.{f}" for f in fields))
            for label, changes, fields in (BAD_TERMS if method == "OptIn" else one_per_field(BAD_TERMS))
        )
        add(
            [
                case(
                    f"{rpc}-terms-missing",
                    rpc,
                    lambda ctx, t=request_type, a=target: t(character_id=getattr(ctx.targets, a)),
                    "terms.permitted_use_types",
                    "terms.max_content_rating",
                ),
                case(
                    f"{rpc}-terms-as_rights_holder",
                    rpc,
                    build(revenue_share_bps=-5),
                    "terms.revenue_share_bps",
                    caller="owner",
                ),
            ]
        )
    add(
        [
            case(
                "CatalogService.OptIn-terms-itself",
                "CatalogService.OptIn",
                opt_in(prohibited_co_appearance_ids=lambda ctx: [ctx.targets.opted_in_id, ctx.targets.character_id]),
                "terms.prohibited_co_appearance_ids[1]",
            ),
            case(
                "CatalogService.UpdateTerms-terms-itself",
                "CatalogService.UpdateTerms",
                update_terms(prohibited_co_appearance_ids=lambda ctx: [ctx.targets.opted_in_id]),
                "terms.prohibited_co_appearance_ids[0]",
            ),
        ]
    )

    # OptOut.
    rpc = "CatalogService.OptOut"
    add(
        case(f"{rpc}-character_id-{k}", rpc, fixed(catalog_pb.OptOutRequest(character_id=v)), "character_id")
        for k, v in some_bad_ids("character").items()
    )
    add(
        case(
            f"{rpc}-reason-{k}",
            rpc,
            lambda ctx, v=v: catalog_pb.OptOutRequest(character_id=ctx.targets.opted_in_id, reason=v),
            "reason",
        )
        for k, v in {"too_long": "r" * 501, **BAD_TEXT}.items()
    )

    # GetTerms / ListTermsVersions.
    rpc = "CatalogService.GetTerms"
    add(
        case(f"{rpc}-character_id-{k}", rpc, fixed(catalog_pb.GetTermsRequest(character_id=v)), "character_id")
        for k, v in some_bad_ids("character").items()
    )
    add(
        [
            case(
                f"{rpc}-version-negative",
                rpc,
                lambda ctx: catalog_pb.GetTermsRequest(character_id=ctx.targets.opted_in_id, version=-1),
                "version",
            ),
            case(
                f"{rpc}-version-most_negative",
                rpc,
                lambda ctx: catalog_pb.GetTermsRequest(character_id=ctx.targets.opted_in_id, version=-(2**31)),
                "version",
            ),
            case(
                f"{rpc}-both",
                rpc,
                fixed(catalog_pb.GetTermsRequest(character_id="x", version=-1)),
                "character_id",
                "version",
            ),
        ]
    )
    rpc = "CatalogService.ListTermsVersions"
    history = catalog_pb.ListTermsVersionsRequest
    add(
        case(f"{rpc}-character_id-{k}", rpc, fixed(history(character_id=v)), "character_id")
        for k, v in some_bad_ids("character").items()
    )

    def history_token(ctx: Ctx) -> str:
        return ctx.token("ListTermsVersions", history(character_id=ctx.targets.opted_in_id))

    add(
        [
            case(
                f"{rpc}-page_size-negative",
                rpc,
                lambda ctx: history(character_id=ctx.targets.opted_in_id, page_size=-1),
                "page_size",
            ),
            case(
                f"{rpc}-page_token-garbage",
                rpc,
                lambda ctx: history(character_id=ctx.targets.opted_in_id, page_token="%%"),
                "page_token",
            ),
            case(
                f"{rpc}-page_token-flipped",
                rpc,
                lambda ctx: history(character_id=ctx.targets.opted_in_id, page_token=flipped(history_token(ctx))),
                "page_token",
            ),
            case(
                f"{rpc}-page_token-forged_cursor",
                rpc,
                lambda ctx: history(
                    character_id=ctx.targets.opted_in_id, page_token=with_cursor(history_token(ctx), lambda n: n + 1)
                ),
                "page_token",
            ),
            case(
                f"{rpc}-page_token-negative_cursor",
                rpc,
                lambda ctx: history(
                    character_id=ctx.targets.opted_in_id, page_token=with_cursor(history_token(ctx), lambda n: -1)
                ),
                "page_token",
            ),
            case(
                f"{rpc}-page_token-other_character",
                rpc,
                lambda ctx: history(character_id=ctx.targets.character_id, page_token=history_token(ctx)),
                "page_token",
            ),
            case(
                f"{rpc}-page_token-from_characters",
                rpc,
                lambda ctx: history(
                    character_id=ctx.targets.opted_in_id,
                    page_token=ctx.token("ListCharacters", catalog_pb.ListCharactersRequest()),
                ),
                "page_token",
            ),
        ]
    )

    # ListAliasCollisions.
    rpc = "CatalogService.ListAliasCollisions"
    collisions = catalog_pb.ListAliasCollisionsRequest
    add(
        [
            case(f"{rpc}-page_size-negative", rpc, fixed(collisions(page_size=-1)), "page_size"),
            case(f"{rpc}-page_token-garbage", rpc, fixed(collisions(page_token="!!")), "page_token"),
            case(f"{rpc}-page_token-too_long", rpc, fixed(collisions(page_token="A" * 4000)), "page_token"),
            case(
                f"{rpc}-page_token-flipped",
                rpc,
                lambda ctx: collisions(page_token=flipped(ctx.token("ListAliasCollisions", collisions()))),
                "page_token",
            ),
            case(
                f"{rpc}-page_token-from_characters",
                rpc,
                lambda ctx: collisions(page_token=ctx.token("ListCharacters", catalog_pb.ListCharactersRequest())),
                "page_token",
            ),
            case(
                f"{rpc}-page_token-as_auditor",
                rpc,
                fixed(collisions(page_token="nope")),
                "page_token",
                caller="auditor",
            ),
        ]
    )

    # ImportCharacters: the request itself.
    rpc = "CatalogService.ImportCharacters"
    imports = catalog_pb.ImportCharactersRequest
    add(
        case(
            f"{rpc}-rights_holder_id-{k}",
            rpc,
            fixed(imports(rights_holder_id=v, rows=[{"character": {"external_id": "x", "canonical_name": "X"}}])),
            "rights_holder_id",
        )
        for k, v in some_bad_ids("rights_holder").items()
    )

    def many_rows(count: int) -> Callable[[Ctx], message.Message]:
        return lambda ctx: imports(
            rights_holder_id=ctx.targets.owner.id,
            rows=[
                {"character": {"external_id": f"n-{ctx.marker}-{n}", "canonical_name": f"Chara {ctx.marker} {n}"}}
                for n in range(count)
            ],
        )

    add(
        [
            case(f"{rpc}-rows-empty", rpc, many_rows(0), "rows"),
            case(f"{rpc}-rows-too_many", rpc, many_rows(501), "rows"),
            case(f"{rpc}-rows-too_many-as_rights_holder", rpc, many_rows(501), "rows", caller="owner"),
        ]
    )

    # ImportCharacters: one bad row, reported in its result.
    add(
        [
            row_case("ImportRow-external_id-missing", import_row(external_id=""), "character.external_id"),
            row_case("ImportRow-canonical_name-empty", import_row(canonical_name=""), "character.canonical_name"),
            row_case("ImportRow-canonical_name-too_long", import_row(canonical_name=LONG), "character.canonical_name"),
            row_case("ImportRow-franchise-control", import_row(franchise="a\x00b"), "character.franchise"),
            row_case("ImportRow-description-too_long", import_row(description="d" * 2001), "character.description"),
            row_case("ImportRow-external_id-bad", import_row(external_id="a b"), "character.external_id"),
            row_case(
                "ImportRow-reference_urls-bad",
                import_row(reference_urls=["ftp://x.example"]),
                "character.reference_urls[0]",
            ),
            row_case(
                "ImportRow-aliases-language",
                import_row(aliases=[{"value": "ミク", "language": "ja_JP"}]),
                "character.aliases[0].language",
            ),
            row_case(
                "ImportRow-aliases-kind",
                import_row(aliases=[{"value": "ミク", "language": "ja", "kind": 77}]),
                "character.aliases[0].kind",
            ),
            row_case(
                "ImportRow-aliases-value",
                import_row(aliases=[{"value": "", "language": "ja"}]),
                "character.aliases[0].value",
            ),
            row_case(
                "ImportRow-everything",
                import_row(
                    external_id="",
                    canonical_name="",
                    aliases=[{"value": "x", "language": "", "kind": 50}],
                    terms={"permitted_use_types": [], "allowed_territories": ["ZZ"]},
                ),
                "character.external_id",
                "character.canonical_name",
                "character.aliases[0].language",
                "character.aliases[0].kind",
                "terms.permitted_use_types",
                "terms.allowed_territories[0]",
                caller="admin",
            ),
        ]
    )
    add(
        row_case(f"ImportRow-terms-{label}", import_row(terms=changes), *(f"terms.{f}" for f in fields))
        for label, changes, fields in BAD_TERMS
    )
    return cases


# Grants, signing keys and verification.


def issue_grant(**changes: Any) -> Callable[[Ctx], message.Message]:
    """A valid IssueGrant of the owner's opted-in character for the session licensee, with ``changes``
    (callables receive the Ctx)."""

    def build(ctx: Ctx) -> message.Message:
        expire = timestamp_pb2.Timestamp()
        expire.FromDatetime(ctx.clock.now() + timedelta(days=1))
        given: dict[str, Any] = {
            "character_id": ctx.targets.opted_in_id,
            "licensee_id": ctx.licensee_id,
            "expire_time": expire,
            **resolved(ctx, changes),
        }
        return grant_pb.IssueGrantRequest(**{k: v for k, v in given.items() if v is not None})

    return build


def later(delta: timedelta) -> Callable[[Ctx], timestamp_pb2.Timestamp]:
    def build(ctx: Ctx) -> timestamp_pb2.Timestamp:
        result = timestamp_pb2.Timestamp()
        result.FromDatetime(ctx.clock.now() + delta)
        return result

    return build


BAD_TIMESTAMPS = {
    "bad_nanos": stamp(1_900_000_000, -1),
    "too_many_nanos": stamp(1_900_000_000, 10**9),
    "after_year_9999": stamp(2**62),
    "before_year_1": stamp(-(2**62)),
}
BAD_SIGNING_KEY_IDS = {
    "empty": "",
    "prefix_only": "sk_",
    "short": "sk_" + HEX[:15],
    "long": "sk_" + HEX[:17],
    "upper": "sk_" + HEX[:16].upper(),
    "not_hex": "sk_" + "g" * 16,
    "wrong_kind": "key_" + HEX[:15],
    "trailing_newline": "sk_" + HEX[:15] + "\n",
}
BAD_REASONS = {"empty": "", "blank": " \t ", "too_long": "r" * 501, "nul": "a\x00b", "escape": "a\x1bb"}


def grant_cases() -> list[Case]:
    cases: list[Case] = []
    add = cases.extend

    # IssueGrant.
    rpc = "GrantService.IssueGrant"
    add(
        case(f"{rpc}-character_id-{k}", rpc, issue_grant(character_id=v), "character_id")
        for k, v in bad_ids("character").items()
    )
    add(
        case(f"{rpc}-licensee_id-{k}", rpc, issue_grant(licensee_id=v), "licensee_id")
        for k, v in some_bad_ids("licensee").items()
    )
    add(case(f"{rpc}-request_id-{k}", rpc, issue_grant(request_id=v), "request_id") for k, v in BAD_REQUEST_IDS.items())
    add(case(f"{rpc}-not_before-{k}", rpc, issue_grant(not_before=v), "not_before") for k, v in BAD_TIMESTAMPS.items())
    add(
        case(f"{rpc}-expire_time-{k}", rpc, issue_grant(expire_time=v), "expire_time")
        for k, v in BAD_TIMESTAMPS.items()
    )
    add(
        case(
            f"{rpc}-narrowed_terms-{label}",
            rpc,
            issue_grant(narrowed_terms=lambda ctx, c=changes: valid_terms(**resolved(ctx, c))),
            *(f"narrowed_terms.{f}" for f in fields),
        )
        for label, changes, fields in one_per_field(BAD_TERMS)
    )
    add(
        [
            case(f"{rpc}-max_uses-negative", rpc, issue_grant(max_uses=-1), "max_uses"),
            case(f"{rpc}-expire_time-missing", rpc, issue_grant(expire_time=None), "expire_time"),
            case(f"{rpc}-expire_time-past", rpc, issue_grant(expire_time=later(-timedelta(minutes=1))), "expire_time"),
            case(
                f"{rpc}-expire_time-before_not_before",
                rpc,
                issue_grant(not_before=stamp(4_000_000_000), expire_time=stamp(3_999_999_999)),
                "expire_time",
            ),
            case(
                f"{rpc}-expire_time-equal_to_not_before",
                rpc,
                issue_grant(not_before=stamp(4_000_000_000), expire_time=stamp(4_000_000_000)),
                "expire_time",
            ),
            case(
                f"{rpc}-expire_time-beyond_the_maximum_lifetime",
                rpc,
                issue_grant(expire_time=later(timedelta(days=367))),
                "expire_time",
            ),
            case(
                f"{rpc}-narrowed_terms-itself",
                rpc,
                issue_grant(
                    narrowed_terms=lambda ctx: valid_terms(prohibited_co_appearance_ids=[ctx.targets.opted_in_id])
                ),
                "narrowed_terms.prohibited_co_appearance_ids[0]",
            ),
            case(
                f"{rpc}-narrowed_terms-empty",
                rpc,
                issue_grant(narrowed_terms=terms_pb.Terms()),
                "narrowed_terms.permitted_use_types",
                "narrowed_terms.max_content_rating",
            ),
            case(
                f"{rpc}-missing_everything",
                rpc,
                fixed(grant_pb.IssueGrantRequest()),
                "character_id",
                "licensee_id",
                "expire_time",
            ),
        ]
    )

    # GetGrant / ReinstateGrant: the id.
    for method, request_type in (
        ("GetGrant", grant_pb.GetGrantRequest),
        ("ReinstateGrant", grant_pb.ReinstateGrantRequest),
    ):
        rpc = f"GrantService.{method}"
        chosen = bad_ids("grant") if method == "GetGrant" else some_bad_ids("grant")
        add(case(f"{rpc}-id-{k}", rpc, fixed(request_type(id=v)), "id") for k, v in chosen.items())
    add(
        [
            case(
                "GrantService.GetGrant-id-malformed-as_rights_holder",
                "GrantService.GetGrant",
                fixed(grant_pb.GetGrantRequest(id="grt_nope")),
                "id",
                caller="owner",
            )
        ]
    )

    # SuspendGrant / RevokeGrant: the id and the reason.
    for method, request_type in (
        ("SuspendGrant", grant_pb.SuspendGrantRequest),
        ("RevokeGrant", grant_pb.RevokeGrantRequest),
    ):
        rpc = f"GrantService.{method}"
        add(
            case(f"{rpc}-id-{k}", rpc, fixed(request_type(id=v, reason="review")), "id")
            for k, v in some_bad_ids("grant").items()
        )
        add(
            case(
                f"{rpc}-reason-{k}",
                rpc,
                lambda ctx, t=request_type, v=v: t(id=ctx.targets.grant_id, reason=v),
                "reason",
            )
            for k, v in BAD_REASONS.items()
        )
        add([case(f"{rpc}-both", rpc, fixed(request_type(id="grt_", reason="")), "id", "reason")])
    add(
        [
            case(
                "GrantService.RevokeGrant-reason-as_rights_holder",
                "GrantService.RevokeGrant",
                lambda ctx: grant_pb.RevokeGrantRequest(id=ctx.targets.grant_id, reason=" "),
                "reason",
                caller="owner",
            )
        ]
    )

    # ListGrants.
    rpc = "GrantService.ListGrants"
    grants = grant_pb.ListGrantsRequest
    for name, kind in (
        ("character_id", "character"),
        ("licensee_id", "licensee"),
        ("rights_holder_id", "rights_holder"),
    ):
        add(
            case(f"{rpc}-{name}-{k}", rpc, fixed(grants(**{name: v})), name) for k, v in some_bad_ids(kind).items() if v
        )
    add(
        [
            case(f"{rpc}-page_size-negative", rpc, fixed(grants(page_size=-1)), "page_size"),
            case(f"{rpc}-state-unknown", rpc, fixed(grants(state=9)), "state"),
            case(f"{rpc}-state-negative", rpc, fixed(grants(state=-1)), "state"),
            case(f"{rpc}-page_token-garbage", rpc, fixed(grants(page_token="garbage!!")), "page_token"),
            case(f"{rpc}-page_token-too_long", rpc, fixed(grants(page_token="A" * 4000)), "page_token"),
            case(
                f"{rpc}-page_token-flipped",
                rpc,
                lambda ctx: grants(page_token=flipped(ctx.token("ListGrants", grants()))),
                "page_token",
            ),
            case(
                f"{rpc}-page_token-forged_cursor",
                rpc,
                lambda ctx: grants(page_token=with_cursor(ctx.token("ListGrants", grants()), lambda n: n + 1)),
                "page_token",
            ),
            case(
                f"{rpc}-page_token-other_state",
                rpc,
                lambda ctx: grants(page_token=ctx.token("ListGrants", grants()), state=1),
                "page_token",
            ),
            case(
                f"{rpc}-page_token-other_character",
                rpc,
                lambda ctx: grants(page_token=ctx.token("ListGrants", grants()), character_id=ctx.targets.opted_in_id),
                "page_token",
            ),
            case(
                f"{rpc}-page_token-from_characters",
                rpc,
                lambda ctx: grants(page_token=ctx.token("ListCharacters", catalog_pb.ListCharactersRequest())),
                "page_token",
            ),
            case(f"{rpc}-page_size-as_rights_holder", rpc, fixed(grants(page_size=-2)), "page_size", caller="owner"),
        ]
    )

    # RevokeSigningKey.
    rpc = "KeyService.RevokeSigningKey"
    revoke_key = key_pb.RevokeSigningKeyRequest
    add(
        case(f"{rpc}-key_id-{k}", rpc, fixed(revoke_key(key_id=v, reason="leaked")), "key_id")
        for k, v in BAD_SIGNING_KEY_IDS.items()
    )
    add(
        case(
            f"{rpc}-reason-{k}",
            rpc,
            lambda ctx, v=v: revoke_key(key_id=ctx.targets.signing_key_id, reason=v),
            "reason",
        )
        for k, v in BAD_REASONS.items()
    )
    add([case(f"{rpc}-both", rpc, fixed(revoke_key()), "key_id", "reason")])

    # RotateSigningKey: a purpose that is none of the key purposes.
    rpc = "KeyService.RotateSigningKey"
    add([case(f"{rpc}-purpose-unknown", rpc, fixed(key_pb.RotateSigningKeyRequest(purpose=99)), "purpose")])  # type: ignore[arg-type]

    # ScreenPrompt: a prompt is required and at most 8000 code points long (an astral character
    # counts once, however many UTF-16 or UTF-8 units it takes).
    rpc = "AuthorizationService.ScreenPrompt"
    screen = authz_pb.ScreenPromptRequest
    add(
        case(f"{rpc}-prompt-{k}", rpc, fixed(screen(prompt=v)), "prompt")
        for k, v in {
            "empty": "",
            "blank": " \t\n\u3000",
            "too_long": "a" * 8001,
            "too_long_cjk": "初" * 8001,
            "too_long_astral": "😀" * 8001,
        }.items()
    )
    add([case(f"{rpc}-prompt-empty-as_generator", rpc, fixed(screen()), "prompt", caller="generator")])

    # VerifyGrant: who and what the grant is presented for, and that there is an envelope at all.
    rpc = "AuthorizationService.VerifyGrant"
    verify = authz_pb.VerifyGrantRequest

    def verify_request(**changes: Any) -> Callable[[Ctx], message.Message]:
        def build(ctx: Ctx) -> message.Message:
            given = {
                "envelope_json": '{"payload": "", "payloadType": "", "signatures": []}',
                "licensee_id": ctx.licensee_id,
                "character_id": ctx.targets.opted_in_id,
                **changes,
            }
            return verify(**{k: v for k, v in given.items() if v is not None})

        return build

    add(
        case(f"{rpc}-licensee_id-{k}", rpc, verify_request(licensee_id=v), "licensee_id")
        for k, v in bad_ids("licensee").items()
    )
    add(
        case(f"{rpc}-character_id-{k}", rpc, verify_request(character_id=v), "character_id")
        for k, v in some_bad_ids("character").items()
    )
    add(
        [
            case(f"{rpc}-envelope-missing", rpc, verify_request(envelope_json=None), "envelope"),
            case(f"{rpc}-envelope_json-empty", rpc, verify_request(envelope_json=""), "envelope_json"),
            case(
                f"{rpc}-licensee_id-malformed-as_generator",
                rpc,
                verify_request(licensee_id="lic_nope"),
                "licensee_id",
                caller="generator",
            ),
            case(f"{rpc}-missing_everything", rpc, fixed(verify()), "envelope", "licensee_id", "character_id"),
        ]
    )

    # WatchRevocations: where the stream starts; a sequence number the log has not reached would
    # let a watcher skip the events before it once they come, so it is refused too.
    rpc = "AuthorizationService.WatchRevocations"
    watch = authz_pb.WatchRevocationsRequest
    add(
        case(f"{rpc}-since_sequence-{k}", rpc, fixed(watch(since_sequence=v)), "since_sequence")
        for k, v in {"negative": -1, "most_negative": -(2**63), "beyond_head": 2**62}.items()
    )

    # Authorize: generator keys only; every field of the request and of its use context.
    rpc = "AuthorizationService.Authorize"

    def authorize_request(**changes: Any) -> Callable[[Ctx], message.Message]:
        def build(ctx: Ctx) -> message.Message:
            context = decision_pb.UseContext(
                use_type=terms_pb.USE_TYPE_VIDEO_GENERATION, content_rating=terms_pb.CONTENT_RATING_ALL_AGES
            )
            given_context = changes.get("context", {})
            for name, value in (given_context or {}).items():
                if name == "categories":
                    context.categories.extend(value)
                elif name == "duration":
                    context.duration.CopyFrom(value)
                else:
                    setattr(context, name, value)
            given: dict[str, Any] = {
                "character_ids": [ctx.targets.opted_in_id],
                **changes,
                "context": context if given_context is not None else None,
            }
            return authz_pb.AuthorizeRequest(**{k: v for k, v in given.items() if v is not None})

        return build

    def as_generator(name: str, build: Callable[[Ctx], message.Message], *fields: str) -> Case:
        return case(f"{rpc}-{name}", rpc, build, *fields, caller="generator")

    def grant_envelope(**fields: Any) -> envelope_pb.Envelope:
        given = {"payload_type": "application/vnd.charter.grant.v1+protobuf", "payload": b"", **fields}
        if "signatures" not in given:
            given["signatures"] = [envelope_pb.Signature(keyid="sk_0000000000000000", sig=b"s" * 64)]
        return envelope_pb.Envelope(**given)

    def duration(seconds: int, nanos: int = 0) -> duration_pb2.Duration:
        return duration_pb2.Duration(seconds=seconds, nanos=nanos)

    add(
        as_generator(f"character_ids-{k}", authorize_request(character_ids=[v]), "character_ids[0]")
        for k, v in some_bad_ids("character").items()
    )
    add(
        [
            as_generator(
                "character_ids-unknown", authorize_request(character_ids=[ids.new_id("character")]), "character_ids[0]"
            ),
            as_generator(
                "character_ids-duplicate",
                lambda ctx: authorize_request(character_ids=[ctx.targets.opted_in_id] * 2)(ctx),
                "character_ids[1]",
            ),
            as_generator(
                "character_ids-too_many",
                authorize_request(character_ids=[ids.new_id("character")] * 65),
                "character_ids",
            ),
            as_generator("nothing_to_decide", authorize_request(character_ids=[]), "character_ids"),
            as_generator(
                "nothing_to_decide-blank_prompt", authorize_request(character_ids=[], prompt=" \t"), "character_ids"
            ),
            as_generator("prompt-too_long", authorize_request(prompt="a" * 8001), "prompt"),
            as_generator("context-missing", authorize_request(context=None), "context"),
            as_generator(
                "context.use_type-unspecified", authorize_request(context={"use_type": 0}), "context.use_type"
            ),
            as_generator("context.use_type-unknown", authorize_request(context={"use_type": 99}), "context.use_type"),
            as_generator(
                "context.content_rating-unspecified",
                authorize_request(context={"content_rating": 0}),
                "context.content_rating",
            ),
            as_generator(
                "context.content_rating-unknown",
                authorize_request(context={"content_rating": 7}),
                "context.content_rating",
            ),
            as_generator(
                "context.categories-unknown",
                authorize_request(context={"categories": [1, 99]}),
                "context.categories[1]",
            ),
            as_generator(
                "context.categories-duplicate",
                authorize_request(context={"categories": [2, 2]}),
                "context.categories[1]",
            ),
            as_generator(
                "context.territory-unknown", authorize_request(context={"territory": "XX"}), "context.territory"
            ),
            as_generator(
                "context.territory-long", authorize_request(context={"territory": "JPN"}), "context.territory"
            ),
            as_generator(
                "context.duration-negative", authorize_request(context={"duration": duration(-1)}), "context.duration"
            ),
            as_generator(
                "context.duration-too_long",
                authorize_request(context={"duration": duration(24 * 3600, 1)}),
                "context.duration",
            ),
            as_generator(
                "grants-receipt_as_grant",
                authorize_request(grants=[grant_envelope(payload_type="application/vnd.charter.receipt.v1+protobuf")]),
                "grants[0].payload_type",
            ),
            as_generator(
                "grants-unsigned", authorize_request(grants=[grant_envelope(signatures=[])]), "grants[0].signatures"
            ),
            as_generator(
                "grants-undecodable_payload",
                authorize_request(grants=[grant_envelope(payload=b"\x0a\xff\xff\xff\xff\x0f")]),
                "grants[0].payload",
            ),
            as_generator("grants-too_many", authorize_request(grants=[grant_envelope()] * 65), "grants"),
            as_generator(
                "everything",
                authorize_request(character_ids=[], context={"use_type": 0, "content_rating": 0}),
                "character_ids",
                "context.use_type",
                "context.content_rating",
            ),
        ]
    )
    add(
        as_generator(f"request_id-{k}", authorize_request(request_id=v), "request_id")
        for k, v in BAD_REQUEST_IDS.items()
    )
    return cases


# Usage: reports, statements and closing.

GRANT_PAYLOAD_TYPE = "application/vnd.charter.grant.v1+protobuf"
BAD_PERIODS = {
    "empty": "",
    "month_13": "2020-13",
    "month_00": "2020-00",
    "one_digit_month": "2020-1",
    "short_year": "20-01",
    "before_1970": "1969-12",
    "a_day": "2020-01-01",
    "slash": "2020/01",
    "trailing_newline": "2020-01\n",
    "leading_space": " 2020-01",
}
# Digits of other scripts are digits to a regular expression's \d and to int(), not to YYYY-MM.
NON_ASCII_PERIOD = "\u0662\u0660\u0662\u0660-\u0660\u0661"  # 2020-01 in Arabic-Indic digits
BAD_DATES = {
    "february_30": "2020-02-30",
    "slash": "2020/01/01",
    "one_digit_day": "2020-01-1",
    "a_month": "2020-01",
    "compact": "20200101",
    "trailing_newline": "2020-01-01\n",
    "non_ascii_digits": "\uff12\uff10\uff12\uff10-\uff10\uff11-\uff10\uff11",
}
BAD_IDEMPOTENCY_KEYS = {
    "empty": "",
    "too_long": "k" * 129,
    "space": "a b",
    "slash": "a/b",
    "non_ascii": "key-\u00fc",
    "newline": "key\n",
    "nul": "key\x00",
}


def usage_record(**changes: Any) -> Callable[[Ctx], message.Message]:
    """A report of one record: valid (a use of the opted-in target under its receipt, now) unless
    ``changes`` break it (None leaves a field unset; callables receive the Ctx)."""

    def build(ctx: Ctx) -> message.Message:
        given: dict[str, Any] = {
            "idempotency_key": f"bad-{ctx.marker}",
            "receipt": ctx.targets.receipt,
            "character_id": ctx.targets.opted_in_id,
            "uses": 1,
            "happen_time": later(timedelta(0)),
            **changes,
        }
        record = usage_pb2.UsageRecord(**{k: v for k, v in resolved(ctx, given).items() if v is not None})
        return usage_pb.ReportUsageRequest(records=[record])

    return build


def money(currency_code: str, minor_units: int) -> terms_pb.Money:
    return terms_pb.Money(currency_code=currency_code, minor_units=minor_units)


def get_statement(**changes: Any) -> Callable[[Ctx], message.Message]:
    """The owner rights holder's statement of January 2020, with ``changes``."""
    return lambda ctx: usage_pb.GetStatementRequest(
        **{"rights_holder_id": ctx.targets.owner.id, "period": "2020-01", **changes}
    )


def a_range(
    start_date: str = "2020-01-01", end_date: str = "2020-01-31", **changes: Any
) -> Callable[[Ctx], message.Message]:
    """The owner rights holder's statement of a date range, with ``changes``."""
    return get_statement(**{"period": "", "start_date": start_date, "end_date": end_date, **changes})


def close_period(**changes: Any) -> Callable[[Ctx], message.Message]:
    """Closing the owner rights holder's January 2019 (long ended, never closed), with ``changes``."""
    return lambda ctx: usage_pb.CloseStatementPeriodRequest(
        **{"rights_holder_id": ctx.targets.owner.id, "period": "2019-01", **changes}
    )


def usage_cases() -> list[Case]:
    cases: list[Case] = []
    add = cases.extend

    # GetStatement.
    rpc = "UsageService.GetStatement"
    add(
        case(f"{rpc}-rights_holder_id-{k}", rpc, get_statement(rights_holder_id=v), "rights_holder_id")
        for k, v in some_bad_ids("rights_holder").items()
    )
    add(
        case(f"{rpc}-period-{k}", rpc, get_statement(period=v), "period")
        for k, v in BAD_PERIODS.items()
        if k != "empty"
    )
    add(case(f"{rpc}-start_date-{k}", rpc, a_range(start_date=v), "start_date") for k, v in BAD_DATES.items())
    add(case(f"{rpc}-end_date-{k}", rpc, a_range(end_date=v), "end_date") for k, v in BAD_DATES.items())
    add(
        case(f"{rpc}-licensee_id-{k}", rpc, get_statement(licensee_id=v), "licensee_id")
        for k, v in some_bad_ids("licensee").items()
        if v
    )
    add(
        [
            case(f"{rpc}-period-non_ascii_digits", rpc, get_statement(period=NON_ASCII_PERIOD), "period"),
            case(f"{rpc}-period-missing", rpc, get_statement(period=""), "period"),
            case(f"{rpc}-period-and_a_range", rpc, a_range(period="2020-01"), "period"),
            case(f"{rpc}-start_date-missing", rpc, a_range(start_date=""), "start_date"),
            case(f"{rpc}-end_date-missing", rpc, a_range(end_date=""), "end_date"),
            case(f"{rpc}-end_date-before_start_date", rpc, a_range(end_date="2019-12-31"), "end_date"),
            case(f"{rpc}-end_date-367_days_after_start_date", rpc, a_range(end_date="2021-01-02"), "end_date"),
            case(
                f"{rpc}-everything",
                rpc,
                a_range(rights_holder_id="", start_date="x", end_date="y", licensee_id="lic_"),
                "rights_holder_id",
                "start_date",
                "end_date",
                "licensee_id",
            ),
            case(
                f"{rpc}-rights_holder_id-malformed-as_rights_holder",
                rpc,
                get_statement(rights_holder_id="rh_nope"),
                "rights_holder_id",
                caller="owner",
            ),
            case(
                f"{rpc}-licensee_id-malformed-as_generator",
                rpc,
                get_statement(licensee_id="lic_nope"),
                "licensee_id",
                caller="generator",
            ),
        ]
    )

    # SimulateUse (what-if): the fields it shares with Authorize, the licensee and the proposal.
    rpc = "AuthorizationService.SimulateUse"

    def simulate_request(**given: Any) -> Callable[[Ctx], message.Message]:
        def build(ctx: Ctx) -> message.Message:
            changes = dict(given)
            context = decision_pb.UseContext(
                use_type=terms_pb.USE_TYPE_VIDEO_GENERATION, content_rating=terms_pb.CONTENT_RATING_ALL_AGES
            )
            for name, value in changes.pop("context", {}).items():
                if name == "categories":
                    context.categories.extend(value)
                elif name == "duration":
                    context.duration.CopyFrom(value)
                else:
                    setattr(context, name, value)
            proposed = changes.pop("proposed", None)
            changes.setdefault("character_ids", [ctx.targets.opted_in_id])
            request = authz_pb.SimulateUseRequest(context=context, **changes)
            if proposed is not None:
                request.proposed.character_id = proposed.get("character_id", ctx.targets.opted_in_id)
                request.proposed.terms.CopyFrom(proposed.get("terms", terms_pb.Terms()))
            return request

        return build

    def valid_terms() -> terms_pb.Terms:
        return terms_pb.Terms(
            permitted_use_types=[terms_pb.USE_TYPE_IMAGE_GENERATION], max_content_rating=terms_pb.CONTENT_RATING_TEEN
        )

    add(
        case(f"{rpc}-character_ids-{k}", rpc, simulate_request(character_ids=[v]), "character_ids[0]")
        for k, v in some_bad_ids("character").items()
    )
    add(
        case(f"{rpc}-licensee_id-{k}", rpc, simulate_request(licensee_id=v), "licensee_id")
        for k, v in some_bad_ids("licensee").items()
        if v
    )
    add(
        [
            case(f"{rpc}-prompt-too_long", rpc, simulate_request(prompt="a" * 8001), "prompt"),
            case(f"{rpc}-context-use_type", rpc, simulate_request(context={"use_type": 99}), "context.use_type"),
            case(
                f"{rpc}-context-content_rating",
                rpc,
                simulate_request(context={"content_rating": 0}),
                "context.content_rating",
            ),
            case(
                f"{rpc}-context-categories",
                rpc,
                simulate_request(context={"categories": [99]}),
                "context.categories[0]",
            ),
            case(f"{rpc}-context-territory", rpc, simulate_request(context={"territory": "XX"}), "context.territory"),
            case(
                f"{rpc}-context-duration",
                rpc,
                simulate_request(context={"duration": duration_pb2.Duration(seconds=-1)}),
                "context.duration",
            ),
            case(
                f"{rpc}-proposed.character_id-malformed",
                rpc,
                simulate_request(proposed={"character_id": "chr_nope", "terms": valid_terms()}),
                "proposed.character_id",
            ),
            case(
                f"{rpc}-proposed.terms-empty",
                rpc,
                simulate_request(proposed={}),
                "proposed.terms.permitted_use_types",
                "proposed.terms.max_content_rating",
            ),
            case(
                f"{rpc}-character_ids-malformed-as_rights_holder",
                rpc,
                simulate_request(character_ids=["chr_nope"]),
                "character_ids[0]",
                caller="owner",
            ),
            case(
                f"{rpc}-licensee_id-malformed-as_generator",
                rpc,
                simulate_request(licensee_id="lic_nope"),
                "licensee_id",
                caller="generator",
            ),
        ]
    )

    # PreviewTerms (what-if over history): the proposal and the window.
    rpc = "AuthorizationService.PreviewTerms"

    def preview_request(**given: Any) -> Callable[[Ctx], message.Message]:
        def build(ctx: Ctx) -> message.Message:
            request = authz_pb.PreviewTermsRequest(days=given.get("days", 0))
            if given.get("proposed", True):
                request.proposed.character_id = given.get("character_id", ctx.targets.opted_in_id)
                request.proposed.terms.CopyFrom(given.get("terms", valid_terms()))
            return request

        return build

    add(
        case(f"{rpc}-proposed.character_id-{k}", rpc, preview_request(character_id=v), "proposed.character_id")
        for k, v in some_bad_ids("character").items()
    )
    add(
        [
            case(f"{rpc}-proposed-missing", rpc, preview_request(proposed=False), "proposed"),
            case(
                f"{rpc}-proposed.terms-empty",
                rpc,
                preview_request(terms=terms_pb.Terms()),
                "proposed.terms.permitted_use_types",
                "proposed.terms.max_content_rating",
            ),
            case(f"{rpc}-days-negative", rpc, preview_request(days=-1), "days"),
            case(f"{rpc}-days-too_many", rpc, preview_request(days=91), "days"),
            case(f"{rpc}-days-huge", rpc, preview_request(days=2**31 - 1), "days"),
            case(
                f"{rpc}-proposed.character_id-malformed-as_rights_holder",
                rpc,
                preview_request(character_id="chr_nope"),
                "proposed.character_id",
                caller="owner",
            ),
        ]
    )

    # ListStatements: paging and filters.
    rpc = "UsageService.ListStatements"
    request_type = usage_pb.ListStatementsRequest
    add(
        case(f"{rpc}-rights_holder_id-{k}", rpc, fixed(request_type(rights_holder_id=v)), "rights_holder_id")
        for k, v in some_bad_ids("rights_holder").items()
        if v
    )
    add(
        case(f"{rpc}-licensee_id-{k}", rpc, fixed(request_type(licensee_id=v)), "licensee_id")
        for k, v in some_bad_ids("licensee").items()
        if v
    )
    add(
        [
            case(f"{rpc}-page_size-negative", rpc, fixed(request_type(page_size=-1)), "page_size"),
            case(f"{rpc}-page_token-garbage", rpc, fixed(request_type(page_token="garbage!!")), "page_token"),
            case(
                f"{rpc}-page_token-not_json",
                rpc,
                fixed(request_type(page_token=encode_token(b"\xff\x00"))),
                "page_token",
            ),
            case(
                f"{rpc}-page_token-json_list",
                rpc,
                fixed(request_type(page_token=encode_token(b"[1, 2]"))),
                "page_token",
            ),
            case(f"{rpc}-page_token-non_ascii", rpc, fixed(request_type(page_token="t\u00f6k\u00e9n")), "page_token"),
            case(f"{rpc}-page_token-too_long", rpc, fixed(request_type(page_token="A" * 4000)), "page_token"),
            case(
                f"{rpc}-page_token-flipped",
                rpc,
                lambda ctx: request_type(page_token=flipped(ctx.token("ListStatements", request_type()))),
                "page_token",
            ),
            case(
                f"{rpc}-page_token-truncated",
                rpc,
                lambda ctx: request_type(page_token=ctx.token("ListStatements", request_type())[:-3]),
                "page_token",
            ),
            case(
                f"{rpc}-page_token-extended",
                rpc,
                lambda ctx: request_type(page_token=ctx.token("ListStatements", request_type()) + "AAAA"),
                "page_token",
            ),
            case(
                f"{rpc}-page_token-other_rights_holder",
                rpc,
                lambda ctx: request_type(
                    page_token=ctx.token("ListStatements", request_type()), rights_holder_id=ctx.targets.owner.id
                ),
                "page_token",
            ),
            case(
                f"{rpc}-page_token-from_rights_holders",
                rpc,
                lambda ctx: request_type(
                    page_token=ctx.token("ListRightsHolders", catalog_pb.ListRightsHoldersRequest())
                ),
                "page_token",
            ),
            case(
                f"{rpc}-licensee_id-malformed-as_rights_holder",
                rpc,
                fixed(request_type(licensee_id="lic_nope")),
                "licensee_id",
                caller="owner",
            ),
        ]
    )

    # CloseStatementPeriod.
    rpc = "UsageService.CloseStatementPeriod"
    add(
        case(f"{rpc}-rights_holder_id-{k}", rpc, close_period(rights_holder_id=v), "rights_holder_id")
        for k, v in some_bad_ids("rights_holder").items()
    )
    add(case(f"{rpc}-period-{k}", rpc, close_period(period=v), "period") for k, v in BAD_PERIODS.items())
    add(
        [
            case(f"{rpc}-period-non_ascii_digits", rpc, close_period(period=NON_ASCII_PERIOD), "period"),
            case(f"{rpc}-everything", rpc, close_period(rights_holder_id="", period=""), "rights_holder_id", "period"),
        ]
    )

    # ReportUsage: the batch as a whole.
    rpc = REPORT_USAGE

    def many_records(count: int) -> Callable[[Ctx], message.Message]:
        def build(ctx: Ctx) -> message.Message:
            one = usage_record(uses=0)(ctx)
            assert isinstance(one, usage_pb.ReportUsageRequest)
            request = usage_pb.ReportUsageRequest()
            for n in range(count):
                added = request.records.add()
                added.CopyFrom(one.records[0])
                added.idempotency_key = f"bad-{ctx.marker}-{n}"
            return request

        return build

    add(
        [
            case(f"{rpc}-records-empty", rpc, many_records(0), "records", caller="generator"),
            case(f"{rpc}-records-too_many", rpc, many_records(1001), "records", caller="generator"),
        ]
    )

    # ReportUsage: one bad record, reported in its result.
    def record_case(name: str, build: Callable[[Ctx], message.Message], *fields: str) -> Case:
        return row_case(f"UsageRecord-{name}", build, *fields, caller="generator", rpc=REPORT_USAGE)

    add(
        record_case(f"idempotency_key-{k}", usage_record(idempotency_key=v), "idempotency_key")
        for k, v in BAD_IDEMPOTENCY_KEYS.items()
    )
    add(
        record_case(f"character_id-{k}", usage_record(character_id=v), "character_id")
        for k, v in bad_ids("character").items()
    )
    add(
        record_case(f"uses-{k}", usage_record(uses=v), "uses")
        for k, v in {"negative": -1, "two": 2, "huge": 2**62, "most_negative": -(2**63)}.items()
    )
    add(
        record_case(f"duration-{k}", usage_record(duration=duration_pb2.Duration(seconds=s, nanos=n)), "duration")
        for k, (s, n) in {
            "negative": (-1, 0),
            "negative_nanos": (0, -1),
            "mixed_signs": (1, -1),
            "too_many_nanos": (0, 10**9),
            "a_day_and_a_nanosecond": (24 * 3600, 1),
            "huge": (2**40, 0),
        }.items()
    )
    add(
        record_case(f"happen_time-{k}", usage_record(happen_time=v), "happen_time")
        for k, v in {**BAD_TIMESTAMPS, "before_1970": stamp(-1)}.items()
    )
    add(
        record_case(
            f"attributed_revenue.currency_code-{k}",
            usage_record(attributed_revenue=money(v, 100)),
            "attributed_revenue.currency_code",
        )
        for k, v in {
            "empty": "",
            "unknown": "XXY",
            "punctuation": "usd?",
            "two_letters": "US",
            "four_letters": "USDD",
            "a_number": "840",
            "long_s": "u\u017fd",  # upper-cases to USD, but is no currency code
        }.items()
    )
    add(
        record_case(
            f"attributed_revenue.minor_units-{k}",
            usage_record(attributed_revenue=money("USD", v)),
            "attributed_revenue.minor_units",
        )
        for k, v in {"negative": -1, "above_the_maximum": 10**14 + 1, "most_negative": -(2**63)}.items()
    )
    add(
        [
            record_case("receipt-missing", usage_record(receipt=None), "receipt"),
            record_case("receipt-empty", usage_record(receipt=envelope_pb.Envelope()), "receipt"),
            record_case(
                "receipt-a_grant",
                usage_record(
                    receipt=lambda ctx: envelope_pb.Envelope(
                        payload_type=GRANT_PAYLOAD_TYPE,
                        payload=ctx.targets.receipt.payload,
                        signatures=ctx.targets.receipt.signatures,
                    )
                ),
                "receipt.payload_type",
            ),
            record_case(
                "receipt-no_payload_type",
                usage_record(receipt=lambda ctx: envelope_pb.Envelope(payload=ctx.targets.receipt.payload)),
                "receipt.payload_type",
            ),
            record_case("happen_time-missing", usage_record(happen_time=None), "happen_time"),
            record_case(
                "decision_record-a_receipt",
                usage_record(receipt=None, decision_record=lambda ctx: ctx.targets.receipt),
                "decision_record.payload_type",
            ),
            record_case(
                "decision_record-and_a_receipt",
                usage_record(
                    decision_record=lambda ctx: envelope_pb.Envelope(
                        payload_type=DECISION_RECORD_PAYLOAD_TYPE, payload=b"{}"
                    )
                ),
                "receipt",
            ),
            record_case(
                "everything",
                usage_record(
                    idempotency_key="",
                    receipt=None,
                    character_id="",
                    uses=-1,
                    duration=duration_pb2.Duration(seconds=-1),
                    attributed_revenue=money("XXY", -1),
                    happen_time=None,
                ),
                "idempotency_key",
                "receipt",
                "character_id",
                "uses",
                "duration",
                "attributed_revenue.currency_code",
                "attributed_revenue.minor_units",
                "happen_time",
            ),
        ]
    )
    return cases


def transparency_cases() -> list[Case]:
    """Proof and listing requests out of range (sizes beyond the tree, zero, negative, inverted,
    hashes that are not 32 bytes, bad pages), for callers of every role (all may call)."""
    inclusion = "TransparencyService.GetInclusionProof"
    prove = ts_pb.GetInclusionProofRequest
    consistency = "TransparencyService.GetConsistencyProof"
    consistent = ts_pb.GetConsistencyProofRequest
    listing = "TransparencyService.ListEntries"
    entries = ts_pb.ListEntriesRequest
    beyond = 2**62
    return [
        case(f"{inclusion}-nothing", inclusion, fixed(prove(tree_size=1)), "entry"),
        case(f"{inclusion}-index-negative", inclusion, fixed(prove(index=-1)), "index"),
        case(f"{inclusion}-index-beyond", inclusion, fixed(prove(index=beyond)), "index", caller="generator"),
        case(f"{inclusion}-tree_size-negative", inclusion, fixed(prove(index=0, tree_size=-1)), "tree_size"),
        case(f"{inclusion}-tree_size-beyond", inclusion, fixed(prove(index=0, tree_size=beyond)), "tree_size"),
        case(f"{inclusion}-leaf_hash-short", inclusion, fixed(prove(leaf_hash=b"x" * 31)), "leaf_hash"),
        case(f"{inclusion}-leaf_hash-empty", inclusion, fixed(prove(leaf_hash=b"")), "leaf_hash", caller="auditor"),
        case(f"{inclusion}-receipt_digest-long", inclusion, fixed(prove(receipt_digest=b"x" * 33)), "receipt_digest"),
        case(f"{consistency}-from-zero", consistency, fixed(consistent(to_tree_size=1)), "from_tree_size"),
        case(
            f"{consistency}-from-negative",
            consistency,
            fixed(consistent(from_tree_size=-3, to_tree_size=1)),
            "from_tree_size",
        ),
        case(f"{consistency}-to-zero", consistency, fixed(consistent(from_tree_size=1)), "to_tree_size"),
        case(
            f"{consistency}-to-beyond",
            consistency,
            fixed(consistent(from_tree_size=1, to_tree_size=beyond)),
            "to_tree_size",
            caller="rights_holder",
        ),
        case(
            f"{consistency}-inverted",
            consistency,
            fixed(consistent(from_tree_size=2, to_tree_size=1)),
            "from_tree_size",
        ),
        case(f"{listing}-page_size-negative", listing, fixed(entries(page_size=-1)), "page_size"),
        case(f"{listing}-start_index-negative", listing, fixed(entries(start_index=-1)), "start_index"),
        case(f"{listing}-start_index-beyond", listing, fixed(entries(start_index=beyond)), "start_index"),
        case(
            f"{listing}-page_token-forged",
            listing,
            fixed(entries(page_token=encode_token(b'{"a":"0:9","f":"00"}'))),
            "page_token",
        ),
        case(
            f"{listing}-page_token-other_start",
            listing,
            lambda ctx: entries(start_index=1, page_token=ctx.token("ListEntries", entries())),
            "page_token",
        ),
    ]


def series_cases() -> list[Case]:
    """GetUsageSeries: ids, dates, grouping and the cap on series, each out of range."""
    rpc = "UsageService.GetUsageSeries"

    def series(**changes: Any) -> Callable[[Ctx], message.Message]:
        return lambda ctx: usage_pb.GetUsageSeriesRequest(
            **{
                "rights_holder_id": ctx.targets.owner.id,
                "start_date": "2020-01-01",
                "end_date": "2020-01-31",
                "grouping": usage_pb.USAGE_SERIES_GROUPING_CHARACTER,
                **changes,
            }
        )

    return [
        case(f"{rpc}-rights_holder_id-malformed", rpc, series(rights_holder_id="rh_nope"), "rights_holder_id"),
        case(f"{rpc}-character_id-malformed", rpc, series(character_id="chr_nope"), "character_id"),
        case(f"{rpc}-licensee_id-malformed", rpc, series(licensee_id="lic_nope"), "licensee_id"),
        case(f"{rpc}-max_series-negative", rpc, series(max_series=-1), "max_series"),
        case(f"{rpc}-dates-missing", rpc, series(start_date="", end_date=""), "start_date"),
        case(f"{rpc}-start_date-not_a_date", rpc, series(start_date="2020-13-01"), "start_date"),
        case(f"{rpc}-end_date-before_start", rpc, series(end_date="2019-12-31"), "end_date"),
        case(f"{rpc}-grouping-unknown", rpc, series(grouping=99), "grouping"),
    ]


def offline_cases() -> list[Case]:
    """OfflineService: licensee keys (staff naming the licensee) and quota leases (generators)."""
    register, listing, revoke = (
        "OfflineService.RegisterLicenseeKey",
        "OfflineService.ListLicenseeKeys",
        "OfflineService.RevokeLicenseeKey",
    )
    lease, renew, give_back = (
        "OfflineService.LeaseQuota",
        "OfflineService.RenewQuotaLease",
        "OfflineService.ReturnQuotaLease",
    )
    a_key = bytes(range(32))

    def registering(**changes: Any) -> Callable[[Ctx], message.Message]:
        return lambda ctx: offline_pb.RegisterLicenseeKeyRequest(
            **{"licensee_id": ctx.targets.licensee_id, "public_key": a_key, "display_name": "backend", **changes}
        )

    def leasing(**changes: Any) -> Callable[[Ctx], message.Message]:
        return lambda ctx: offline_pb.LeaseQuotaRequest(
            **{
                "character_id": ctx.targets.opted_in_id,
                "grant_id": ctx.targets.grant_id,
                "uses": 5,
                "ttl": duration_pb2.Duration(seconds=60),
                **changes,
            }
        )

    a_lease = ids.new_id("quota_lease")
    ttl = duration_pb2.Duration(seconds=60)
    snapshot = "OfflineService.GetRegistrySnapshot"
    return [
        case(
            f"{snapshot}-since_version-negative",
            snapshot,
            fixed(offline_pb.GetRegistrySnapshotRequest(since_version=-1)),
            "since_version",
            caller="generator",
        ),
        case(
            f"{snapshot}-since_version-beyond_the_log",
            snapshot,
            fixed(offline_pb.GetRegistrySnapshotRequest(since_version=2**62)),
            "since_version",
        ),
        case(
            f"{snapshot}-page_size-negative",
            snapshot,
            fixed(offline_pb.GetRegistrySnapshotRequest(page_size=-1)),
            "page_size",
            caller="generator",
        ),
        case(
            f"{snapshot}-page_token-made_up",
            snapshot,
            fixed(offline_pb.GetRegistrySnapshotRequest(page_token="bm9wZQ")),
            "page_token",
            caller="generator",
        ),
        case(f"{register}-public_key-short", register, registering(public_key=a_key[:31]), "public_key"),
        case(f"{register}-display_name-empty", register, registering(display_name=""), "display_name"),
        case(f"{register}-display_name-long", register, registering(display_name="x" * 201), "display_name"),
        case(f"{register}-licensee_id-malformed", register, registering(licensee_id="lic_nope"), "licensee_id"),
        case(
            f"{register}-replaces_key_id-malformed",
            register,
            registering(replaces_key_id="lk_nope"),
            "replaces_key_id",
        ),
        case(f"{listing}-licensee_id-malformed", listing, fixed(offline_pb.ListLicenseeKeysRequest()), "licensee_id"),
        case(
            f"{revoke}-everything",
            revoke,
            fixed(offline_pb.RevokeLicenseeKeyRequest(key_id="lk_nope", reason="")),
            "key_id",
            "reason",
        ),
        case(
            f"{lease}-everything",
            lease,
            leasing(character_id="chr_nope", grant_id="grt_nope", uses=0, ttl=None),
            "character_id",
            "grant_id",
            "uses",
            "ttl",
            caller="generator",
        ),
        case(
            f"{lease}-ttl-over_a_day",
            lease,
            leasing(ttl=duration_pb2.Duration(seconds=86_401)),
            "ttl",
            caller="generator",
        ),
        case(
            f"{renew}-everything",
            renew,
            fixed(offline_pb.RenewQuotaLeaseRequest(lease_id="ql_nope", add_uses=-1)),
            "lease_id",
            "add_uses",
            "ttl",
            caller="generator",
        ),
        case(
            f"{renew}-ttl-zero",
            renew,
            fixed(offline_pb.RenewQuotaLeaseRequest(lease_id=a_lease, ttl=duration_pb2.Duration(seconds=0))),
            "ttl",
            caller="generator",
        ),
        case(
            f"{give_back}-everything",
            give_back,
            fixed(offline_pb.ReturnQuotaLeaseRequest(lease_id="ql_nope", spent_uses=-1)),
            "lease_id",
            "spent_uses",
            caller="generator",
        ),
        case(
            f"{give_back}-spent_uses-negative",
            give_back,
            fixed(offline_pb.ReturnQuotaLeaseRequest(lease_id=a_lease, spent_uses=-1)),
            "spent_uses",
            caller="generator",
        ),
        case(
            f"{renew}-add_uses-negative",
            renew,
            fixed(offline_pb.RenewQuotaLeaseRequest(lease_id=a_lease, add_uses=-1, ttl=ttl)),
            "add_uses",
            caller="generator",
        ),
    ]


CASES = [
    *build_cases(),
    *character_cases(),
    *grant_cases(),
    *usage_cases(),
    *series_cases(),
    *transparency_cases(),
    *offline_cases(),
]


# The fields the .proto comments call output only, per message: the server ignores them on input.
LIFECYCLE_OUTPUT_ONLY = frozenset({"state", "create_time", "update_time", "archive_time"})
OUTPUT_ONLY = {
    "charter.v1.RightsHolder": LIFECYCLE_OUTPUT_ONLY,
    "charter.v1.Licensee": LIFECYCLE_OUTPUT_ONLY,
    "charter.v1.Character": frozenset({"state", "terms_version", "create_time", "update_time"}),
    "charter.v1.Terms": frozenset({"version", "character_id", "create_time", "author_key_id"}),
}
# Fields set at creation and immutable afterwards: an update ignores them.
IMMUTABLE = {"charter.v1.Character": frozenset({"rights_holder_id"})}
# Fields whose content is judged, not validated: VerifyGrant answers any envelope with an OK
# verdict (MALFORMED, SIGNATURE_INVALID, ...; test_verify_api shows each), so only a missing
# envelope is bad input.
JUDGED = {
    "AuthorizationService.VerifyGrant": frozenset({"envelope.payload", "envelope.payload_type", "envelope.signatures"})
}


def input_paths(method: Method) -> set[str]:
    """The field paths a caller can set in ``method``'s request and that can hold a bad value.

    Booleans have no bad value; a resource's output-only fields are ignored by the server, its id
    is input only on updates, and its immutable fields only on creation.
    """
    paths: set[str] = set()
    for top in method.request_type.DESCRIPTOR.fields:
        if top.type == top.TYPE_BOOL:
            continue
        resource = top.message_type
        if resource is None or resource.full_name.startswith("google.protobuf."):
            paths.add(top.name)
            continue
        update = method.name.startswith("Update")
        ignored = OUTPUT_ONLY.get(resource.full_name, frozenset()) | (
            IMMUTABLE.get(resource.full_name, frozenset()) if update else frozenset()
        )
        for sub in resource.fields:
            if sub.type == sub.TYPE_BOOL or sub.name in ignored or (sub.name == "id" and not update):
                continue
            paths.add(f"{top.name}.{sub.name}")
    return paths


def test_every_request_field_has_a_bad_input_case() -> None:
    """Each settable field of each request of every service is broken by at least one case."""
    covered: dict[str, set[str]] = {}
    for item in CASES:
        covered.setdefault(item.rpc, set()).update(item.covers())
    missing = {
        name: input_paths(m) - covered.get(name, set()) - JUDGED.get(name, frozenset()) for name, m in METHODS.items()
    }
    assert {name: paths for name, paths in missing.items() if paths} == {}
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.fixture(scope="module")
def targets(channel: grpc.Channel, catalog: Any, access: Any, keys: Any, clock: Any) -> Targets:
    """The rights holder and licensee the update cases aim at: those of the session keys, so the
    scoped keys may update them. Two more of each make sure every list has a second page.

    The character cases aim at a rights holder of their own, so other tests' listings of the
    session rights holder stay as they expect: an opted-out character, an opted-in one with two
    terms versions, and two names shared (as ambiguous) with another rights holder, so the
    characters, terms versions and alias collisions all have a second page. Two grants of the
    opted-in character give the grant cases an id to aim at and ListGrants a second page; a receipt
    that allowed it gives the usage record cases a receipt, and two closed months of the owner give
    ListStatements a second page."""
    for _ in range(2):
        marker = unique()
        catalog.CreateRightsHolder(
            catalog_pb.CreateRightsHolderRequest(
                rights_holder={"display_name": f"Studio {marker}", "contact_email": "rights@studio.example"}
            ),
            metadata=auth(keys.admin),
        )
        catalog.CreateLicensee(
            catalog_pb.CreateLicenseeRequest(
                licensee={"display_name": f"App {marker}", "contact_email": "ops@app.example", "platform": "video-app"}
            ),
            metadata=auth(keys.admin),
        )
    owner, neighbour = new_holder(catalog, access, keys.admin), new_holder(catalog, access, keys.admin)
    kana = kana_marker()
    shared = [{"value": f"{word}{kana}", "language": "ja", "ambiguous": True} for word in ("ミク", "リン")]

    def create(holder: Holder, **fields: Any) -> str:
        request = catalog_pb.CreateCharacterRequest(
            character={"rights_holder_id": holder.id, "canonical_name": f"Chara {unique()}", **fields}
        )
        return str(catalog.CreateCharacter(request, metadata=auth(holder.secret)).character.id)

    opted_out = create(owner, aliases=shared)
    create(neighbour, aliases=shared)
    opted_in = create(owner)
    for share in (1, 2):
        terms = {
            "permitted_use_types": [terms_pb.USE_TYPE_IMAGE_GENERATION],
            "max_content_rating": terms_pb.CONTENT_RATING_TEEN,
            "revenue_share_bps": share,
        }
        call = catalog.OptIn if share == 1 else catalog.UpdateTerms
        request_type = catalog_pb.OptInRequest if share == 1 else catalog_pb.UpdateTermsRequest
        call(request_type(character_id=opted_in, terms=terms), metadata=auth(owner.secret))
    grants = grant_service_pb2_grpc.GrantServiceStub(channel)
    expire = timestamp_pb2.Timestamp()
    expire.FromDatetime(clock.now() + timedelta(days=30))
    grant_ids = [
        grants.IssueGrant(
            grant_pb.IssueGrantRequest(character_id=opted_in, licensee_id=keys.licensee_id, expire_time=expire),
            metadata=auth(keys.admin),
        ).grant.id
        for _ in range(2)
    ]
    signing_key_id = next(
        k.key_id
        for k in key_service_pb2_grpc.KeyServiceStub(channel)
        .ListSigningKeys(key_pb.ListSigningKeysRequest(), metadata=auth(keys.admin))
        .keys
    )
    context = decision_pb.UseContext(
        use_type=terms_pb.USE_TYPE_IMAGE_GENERATION, content_rating=terms_pb.CONTENT_RATING_ALL_AGES
    )
    allowed = authorization_service_pb2_grpc.AuthorizationServiceStub(channel).Authorize(
        authz_pb.AuthorizeRequest(character_ids=[opted_in], context=context), metadata=auth(keys.generator)
    )
    assert allowed.decision.allowed
    for period in ("2020-01", "2020-02"):
        usage_service_pb2_grpc.UsageServiceStub(channel).CloseStatementPeriod(
            usage_pb.CloseStatementPeriodRequest(rights_holder_id=owner.id, period=period), metadata=auth(keys.admin)
        )
    return Targets(
        keys.rights_holder_id,
        keys.licensee_id,
        owner,
        opted_out,
        opted_in,
        grant_ids[0],
        signing_key_id,
        allowed.receipt,
    )


def drain_as(secret: str, call: Callable[..., Any], request: message.Message, items: str) -> list[Any]:
    """Every item of a list, page by page."""
    found: list[Any] = []
    while True:
        response = call(request, metadata=auth(secret))
        found.extend(getattr(response, items))
        if not response.next_page_token:
            return found
        request.page_token = response.next_page_token


def everything(catalog: Any, access: Any, keys: Any) -> dict[str, list[Any]]:
    """Every rights holder, licensee and API key, in every state, as the admin sees them."""

    def drain(call: Callable[..., Any], request: message.Message, items: str) -> list[Any]:
        return drain_as(keys.admin, call, request, items)

    return {
        "rights_holders": [
            *drain(catalog.ListRightsHolders, catalog_pb.ListRightsHoldersRequest(page_size=1000), "rights_holders"),
            *drain(
                catalog.ListRightsHolders,
                catalog_pb.ListRightsHoldersRequest(page_size=1000, state=2),
                "rights_holders",
            ),
        ],
        "licensees": [
            *drain(catalog.ListLicensees, catalog_pb.ListLicenseesRequest(page_size=1000), "licensees"),
            *drain(catalog.ListLicensees, catalog_pb.ListLicenseesRequest(page_size=1000, state=2), "licensees"),
        ],
        "api_keys": drain(
            access.ListApiKeys, access_pb.ListApiKeysRequest(page_size=1000, show_inactive=True), "api_keys"
        ),
    }


def every_character(catalog: Any, keys: Any, targets: Targets) -> dict[str, list[Any]]:
    """What the character cases could change: the owner rights holder's characters (the only ones
    they write to; a character created, changed, opted in or out, suspended or archived shows here)
    and the terms versions of the opted-in target (an accepted UpdateTerms shows there)."""
    return {
        "characters": drain_as(
            keys.admin,
            catalog.ListCharacters,
            catalog_pb.ListCharactersRequest(rights_holder_id=targets.owner.id),
            "characters",
        ),
        "terms": drain_as(
            keys.admin,
            catalog.ListTermsVersions,
            catalog_pb.ListTermsVersionsRequest(character_id=targets.opted_in_id),
            "terms",
        ),
    }


def every_grant_and_key(channel: grpc.Channel, keys: Any) -> dict[str, list[Any]]:
    """What the grant, signing-key and verification cases could change: every grant (its state
    included) and every signing key."""
    return {
        "grants": drain_as(
            keys.admin,
            grant_service_pb2_grpc.GrantServiceStub(channel).ListGrants,
            grant_pb.ListGrantsRequest(page_size=1000),
            "grants",
        ),
        "signing_keys": list(
            key_service_pb2_grpc.KeyServiceStub(channel)
            .ListSigningKeys(key_pb.ListSigningKeysRequest(), metadata=auth(keys.admin))
            .keys
        ),
    }


def every_statement(channel: grpc.Channel, keys: Any) -> list[Any]:
    """What the usage cases could change: every statement (its state and totals), as the admin sees them."""
    usage = usage_service_pb2_grpc.UsageServiceStub(channel)
    return drain_as(keys.admin, usage.ListStatements, usage_pb.ListStatementsRequest(page_size=1000), "statements")


CHARACTER_RPCS = frozenset(c.rpc for c in character_cases())
GRANT_RPCS = frozenset(c.rpc for c in grant_cases())
USAGE_RPCS = frozenset(c.rpc for c in usage_cases())


_SEEN: dict[tuple[str, ...], dict[str, list[Any]]] = {}
"""The state each run of cases last saw after a case, by (test, database, what the cases may change)."""


def _state_before(key: tuple[str, ...], state: Callable[[], dict[str, list[Any]]]) -> dict[str, list[Any]]:
    """The state before a case: what the previous case of the same test, database and kind saw
    after it (the cases of one test run one after another in this module's worker, and a case that
    changes nothing leaves it as it was), read anew for the first. A change a case made shows in
    its own comparison; the next case then starts from what that one saw after it."""
    if key not in _SEEN:
        _SEEN[key] = state()
    return _SEEN[key]


def _state_after(key: tuple[str, ...], state: Callable[[], dict[str, list[Any]]]) -> dict[str, list[Any]]:
    """The state after a case, kept as the next case's state before."""
    _SEEN[key] = state()
    return _SEEN[key]


@pytest.mark.parametrize("bad", [c for c in CASES if not c.row], ids=str)
def test_bad_input_is_rejected_naming_the_field_and_changes_nothing(
    channel: grpc.Channel,
    catalog: Any,
    access: Any,
    keys: Any,
    clock: Any,
    targets: Targets,
    database_url: str,
    bad: Case,
) -> None:
    ctx = Ctx(
        catalog,
        access,
        keys,
        clock,
        targets,
        grants=grant_service_pb2_grpc.GrantServiceStub(channel),
        usage=usage_service_pb2_grpc.UsageServiceStub(channel),
        transparency=transparency_service_pb2_grpc.TransparencyServiceStub(channel),
    )
    request = bad.build(ctx)
    method = METHODS[bad.rpc]

    def state() -> dict[str, list[Any]]:
        if bad.rpc in CHARACTER_RPCS:
            return every_character(catalog, keys, targets)
        if bad.rpc in GRANT_RPCS:
            return every_grant_and_key(channel, keys)
        if bad.rpc in USAGE_RPCS:
            return {"statements": every_statement(channel, keys)}
        return everything(catalog, access, keys)

    kind = "character" if bad.rpc in CHARACTER_RPCS else "grant" if bad.rpc in GRANT_RPCS else ""
    kind = kind or ("usage" if bad.rpc in USAGE_RPCS else "everything")
    before = _state_before(("rejected", database_url, kind), state)

    with pytest.raises(grpc.RpcError) as raised:
        invoke(channel, method, request, auth(ctx.secret(bad.caller)))

    got = failure(raised.value)
    assert (got.code, got.reason, got.domain) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", ERROR_DOMAIN)
    assert set(got.fields) == bad.fields
    assert got.request_id
    assert _state_after(("rejected", database_url, kind), state) == before


@pytest.mark.parametrize("bad", [c for c in CASES if c.row and c.rpc == IMPORT_CHARACTERS], ids=str)
def test_a_bad_import_row_fails_alone_naming_the_field_and_writes_nothing(
    channel: grpc.Channel,
    catalog: Any,
    access: Any,
    keys: Any,
    clock: Any,
    targets: Targets,
    database_url: str,
    bad: Case,
) -> None:
    ctx = Ctx(catalog, access, keys, clock, targets)
    request = bad.build(ctx)
    key = ("import", database_url)
    before = _state_before(key, lambda: every_character(catalog, keys, targets))

    (response,) = invoke(channel, METHODS[bad.rpc], request, auth(ctx.secret(bad.caller)))

    (result,) = response.results
    assert (result.index, result.outcome, result.error_reason, result.character_id) == (
        0,
        catalog_pb.ImportRowResult.OUTCOME_FAILED,
        "INVALID_FIELD",
        "",
    )
    assert {v.field for v in result.field_violations} == bad.fields
    assert all(v.description for v in result.field_violations)
    assert _state_after(key, lambda: every_character(catalog, keys, targets)) == before


@pytest.mark.parametrize("bad", [c for c in CASES if c.row and c.rpc == REPORT_USAGE], ids=str)
def test_a_bad_usage_record_fails_alone_naming_the_field_and_records_nothing(
    channel: grpc.Channel,
    catalog: Any,
    access: Any,
    keys: Any,
    clock: Any,
    targets: Targets,
    database_url: str,
    bad: Case,
) -> None:
    ctx = Ctx(catalog, access, keys, clock, targets)
    request = bad.build(ctx)
    key = ("usage_record", database_url)
    before = _state_before(key, lambda: {"statements": every_statement(channel, keys)})

    (response,) = invoke(channel, METHODS[bad.rpc], request, auth(ctx.secret(bad.caller)))

    (result,) = response.results
    assert (result.index, result.status, result.error_code, result.error_reason, result.usage_id) == (
        0,
        usage_pb2.USAGE_STATUS_REJECTED,
        "INVALID_ARGUMENT",
        "INVALID_FIELD",
        "",
    )
    assert {v.field for v in result.field_violations} == bad.fields
    assert all(v.description for v in result.field_violations)
    assert _state_after(key, lambda: {"statements": every_statement(channel, keys)}) == before


def test_longest_allowed_values_are_accepted(catalog: Any, keys: Any) -> None:
    """The length limits are not off by one: the maxima themselves pass."""
    local = "r" * 64
    email = f"{local}@{'s' * (254 - len(local) - 1 - len('.example'))}.example"
    request = catalog_pb.CreateRightsHolderRequest(
        rights_holder={
            "display_name": "d" * 200,
            "legal_name": "l" * 300,
            "contact_email": email,
            "revenue_share_account": "a" * 200,
        },
        request_id="r" * 64,
    )

    created = catalog.CreateRightsHolder(request, metadata=auth(keys.admin)).rights_holder
    licensee = catalog.CreateLicensee(
        catalog_pb.CreateLicenseeRequest(
            licensee={"display_name": "d" * 200, "contact_email": "ops@app.example", "platform": "p" * 63}
        ),
        metadata=auth(keys.admin),
    ).licensee

    assert len(email) == 254
    assert (len(created.display_name), len(created.legal_name), created.contact_email) == (200, 300, email)
    assert licensee.platform == "p" * 63


# Fuzz: random bytes as the serialized request of every method never crash the server.

FUZZ_PER_METHOD = 60
CALLERS = ("admin", "rights_holder", "generator", "auditor")


PIECES = (
    "",
    "a",
    "Z",
    " ",
    "\t",
    "\x00",
    "\n",
    "\x7f",
    "%",
    "_",
    "\\",
    "'",
    "ü",
    "\u202e",
    "\U0001d518",
    "@",
    ".",
    "-",
    "rh_",
    "lic_",
    "key_",
    HEX,
    "x" * 300,
    "'; DROP TABLE rights_holders; --",
)
NUMBERS = (0, 1, 2, 3, 4, 5, 42, -1, 2**31 - 1, -(2**31), 2**62, -(2**62))


def random_value(rng: random.Random, descriptor: Any) -> Any:
    if descriptor.type == descriptor.TYPE_BYTES:
        return rng.randbytes(rng.randint(0, 80))
    if descriptor.type == descriptor.TYPE_STRING:
        return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 4)))
    if descriptor.type == descriptor.TYPE_BOOL:
        return rng.random() < 0.5
    if descriptor.type == descriptor.TYPE_ENUM:
        return rng.choice((*NUMBERS[:8], 2**31 - 1, -(2**31)))
    if descriptor.type in (descriptor.TYPE_INT32, descriptor.TYPE_SINT32, descriptor.TYPE_SFIXED32):
        return rng.choice([n for n in NUMBERS if -(2**31) <= n < 2**31])
    return rng.choice(NUMBERS)


def random_message(rng: random.Random, target: message.Message, depth: int = 0) -> None:
    """Fill some fields of ``target`` with hostile but well-typed values."""
    for descriptor in target.DESCRIPTOR.fields:
        if rng.random() < 0.3:
            continue
        if descriptor.message_type is not None:
            if depth < 2 and not descriptor.is_repeated:
                random_message(rng, getattr(target, descriptor.name), depth + 1)
        elif descriptor.is_repeated:
            getattr(target, descriptor.name).extend(random_value(rng, descriptor) for _ in range(rng.randint(0, 3)))
        else:
            setattr(target, descriptor.name, random_value(rng, descriptor))


def fuzz_payloads(method: Method) -> list[bytes]:
    """Random bytes, valid requests with bytes overwritten, and well-typed requests with hostile
    values (seeded by the method, so a failure reproduces)."""
    rng = random.Random(method.path)
    payloads = [b"", b"\x00", b"\xff" * 8, b"\x0a\xff\xff\xff\xff\x0f"]
    template = method.request_type()
    random_message(rng, template)
    seed = template.SerializeToString()
    while len(payloads) < FUZZ_PER_METHOD:
        kind = rng.randrange(3)
        if kind == 0 and seed:
            mutated = bytearray(seed)
            for _ in range(rng.randint(1, 4)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            payloads.append(bytes(mutated))
        elif kind == 1:
            hostile = method.request_type()
            random_message(rng, hostile)
            payloads.append(hostile.SerializeToString())
        else:
            payloads.append(rng.randbytes(rng.randint(1, 64)))
    return payloads


@pytest.mark.parametrize("method", list(METHODS.values()), ids=str)
def test_random_bytes_never_crash_the_server(channel: grpc.Channel, keys: Any, method: Method) -> None:
    outcomes = []
    for number, payload in enumerate(fuzz_payloads(method)):
        caller = getattr(keys, CALLERS[number % len(CALLERS)])
        try:
            invoke(channel, method, payload, auth(caller))
        except grpc.RpcError as error:
            outcomes.append((payload, failure(error)))

    crashed = [(payload, got.code) for payload, got in outcomes if got.code in NEVER]
    assert crashed == []
    assert all(got.domain == ERROR_DOMAIN and got.reason for _, got in outcomes), outcomes


UNDECODABLE = b"\x0a\xff\xff\xff\xff\x0f"  # a length-delimited field longer than the message


@pytest.mark.parametrize("method", list(METHODS.values()), ids=str)
def test_an_undecodable_request_is_invalid_argument_after_authentication(
    channel: grpc.Channel, keys: Any, method: Method
) -> None:
    permitted = keys.admin if Role.ADMIN in POLICY[method.path] else keys.generator
    with pytest.raises(grpc.RpcError) as as_admin:
        invoke(channel, method, UNDECODABLE, auth(permitted))
    with pytest.raises(grpc.RpcError) as anonymous:
        invoke(channel, method, UNDECODABLE, auth())

    got = failure(as_admin.value)
    assert (got.code, got.reason, got.fields) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", ("",))
    assert got.request_id
    refused = failure(anonymous.value)
    assert (refused.code, refused.reason) == (grpc.StatusCode.UNAUTHENTICATED, "CREDENTIALS_MISSING")
