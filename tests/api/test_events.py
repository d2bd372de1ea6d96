"""Every write announces itself: a table over every served RPC.

Each RPC is either read-only, a write that ``Authorize`` does not cache (with the reason), or a
write driven here through the real server: the test records what ``Authorize`` reads (characters,
licensees, grants, signing keys, API keys) before and after, and the events published on the
server's bus. A write that changes that record and raises no event that affects authorization
fails, and so does one that may take a permission away without an event saying so (the caller
would return before other servers stopped allowing). A new RPC fails `test_every_rpc_is_classified`
until it is put in one of the tables.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import charter_server
import grpc
import pytest
from charter.v1 import access_service_pb2 as access_pb
from charter.v1 import api_key_pb2, usage_service_pb2_grpc
from charter.v1 import catalog_service_pb2 as catalog_pb
from charter.v1 import grant_service_pb2 as gs
from charter.v1 import key_service_pb2 as ks
from charter.v1 import usage_service_pb2 as us
from charter_server.app import CharterServer
from charter_server.domain import events as ev
from charter_server.storage.tables import ApiKeyRow, CharacterRow, CounterRow, GrantRow, LicenseeRow, SigningKeyRow
from google.protobuf import field_mask_pb2
from sqlalchemy import select

from .character_helpers import Holder, alias, create, new_holder, opt_in, terms
from .grant_helpers import Stubs, issue, new_licensee, opted_in_character, rotate, signing_keys, stubs
from .helpers import all_methods, auth, unique

CATALOG = "/charter.v1.CatalogService/"
GRANTS = "/charter.v1.GrantService/"
KEYS = "/charter.v1.KeyService/"
AUTHZ = "/charter.v1.AuthorizationService/"
USAGE = "/charter.v1.UsageService/"
ACCESS = "/charter.v1.AccessService/"
OFFLINE = "/charter.v1.OfflineService/"
LOG = "/charter.v1.TransparencyService/"

READ_ONLY = frozenset(
    {
        *(
            CATALOG + name
            for name in (
                "GetRightsHolder",
                "ListRightsHolders",
                "GetLicensee",
                "ListLicensees",
                "GetLicenseeProfile",
                "ListLicenseeProfiles",
                "GetCharacter",
                "ListCharacters",
                "GetTerms",
                "ListTermsVersions",
                "ListTermsTemplates",
                "ListAliasCollisions",
            )
        ),
        GRANTS + "GetGrant",
        GRANTS + "ListGrants",
        KEYS + "ListSigningKeys",
        AUTHZ + "GetKeySet",
        AUTHZ + "VerifyGrant",
        AUTHZ + "ScreenPrompt",
        AUTHZ + "SimulateUse",  # what-if: reads only, counts and signs nothing
        AUTHZ + "PreviewTerms",  # what-if over history: reads only
        AUTHZ + "WatchRevocations",
        USAGE + "GetStatement",
        USAGE + "ListStatements",
        USAGE + "GetUsageSeries",
        ACCESS + "GetApiKey",
        ACCESS + "ListApiKeys",
        ACCESS + "GetCaller",
        OFFLINE + "ListLicenseeKeys",
        OFFLINE + "GetGrantBundle",
        OFFLINE + "GetRegistrySnapshot",
        LOG + "GetCheckpoint",
        LOG + "GetInclusionProof",
        LOG + "GetConsistencyProof",
        LOG + "ListEntries",
    }
)

# Writes of records that no server caches for Authorize: read in the deciding transaction itself.
UNCACHED_WRITES = {
    AUTHZ + "Authorize": "counts quotas and keeps receipts; both are read under lock when deciding",
    USAGE + "ReportUsage": "records usage (what is owed), never read by Authorize",
    OFFLINE + "RegisterLicenseeKey": "licensee keys verify decision records in ReportUsage; Authorize never reads them",
    OFFLINE + "RevokeLicenseeKey": "licensee keys verify decision records in ReportUsage; Authorize never reads them",
    OFFLINE + "LeaseQuota": "takes uses from the quota counters, which Authorize reads under lock when deciding",
    OFFLINE + "RenewQuotaLease": "moves uses between the quota counters, read under lock when deciding",
    OFFLINE + "ReturnQuotaLease": "gives uses back to the quota counters, read under lock when deciding",
}


@dataclass(frozen=True)
class Scene:
    api: Stubs
    usage: usage_service_pb2_grpc.UsageServiceStub
    admin: str
    clock: Any


@dataclass(frozen=True)
class Write:
    """How to drive one write: ``prepare`` sets the scene up and returns the call to observe."""

    prepare: Callable[[Scene], Callable[[], object]]
    expected: tuple[type[ev.DomainEvent], ...]
    takes_away: bool


def _holder(scene: Scene) -> Holder:
    return new_holder(scene.api.catalog, scene.api.access, scene.admin)


def _granted(scene: Scene) -> tuple[Holder, str, str]:
    """A holder, one of its characters opted in and a grant of it to a fresh licensee."""
    holder = _holder(scene)
    character_id = opted_in_character(scene.api, holder)
    grant = issue(scene.api, scene.admin, scene.clock, character_id, new_licensee(scene.api, scene.admin))
    return holder, character_id, str(grant.id)


def _create_rights_holder(scene: Scene) -> Callable[[], object]:
    request = catalog_pb.CreateRightsHolderRequest(
        rights_holder={"display_name": f"Studio {unique()}", "contact_email": "rights@studio.example"}
    )
    return lambda: scene.api.catalog.CreateRightsHolder(request, metadata=auth(scene.admin))


def _update_rights_holder(scene: Scene) -> Callable[[], object]:
    holder = _holder(scene)
    request = catalog_pb.UpdateRightsHolderRequest(
        rights_holder={"id": holder.id, "display_name": f"Renamed {unique()}"},
        update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
    )
    return lambda: scene.api.catalog.UpdateRightsHolder(request, metadata=auth(scene.admin))


def _archive_rights_holder(scene: Scene) -> Callable[[], object]:
    holder = _holder(scene)
    request = catalog_pb.ArchiveRightsHolderRequest(id=holder.id)
    return lambda: scene.api.catalog.ArchiveRightsHolder(request, metadata=auth(scene.admin))


def _create_licensee(scene: Scene) -> Callable[[], object]:
    return lambda: new_licensee(scene.api, scene.admin)


def _update_licensee(scene: Scene) -> Callable[[], object]:
    _, _, grant_id = _granted(scene)
    licensee_id = scene.api.grants.GetGrant(gs.GetGrantRequest(id=grant_id), metadata=auth(scene.admin)).grant
    request = catalog_pb.UpdateLicenseeRequest(
        licensee={"id": licensee_id.licensee_id, "platform": f"other-{unique()}"},
        update_mask=field_mask_pb2.FieldMask(paths=["platform"]),
    )
    return lambda: scene.api.catalog.UpdateLicensee(request, metadata=auth(scene.admin))


def _archive_licensee(scene: Scene) -> Callable[[], object]:
    request = catalog_pb.ArchiveLicenseeRequest(id=new_licensee(scene.api, scene.admin))
    return lambda: scene.api.catalog.ArchiveLicensee(request, metadata=auth(scene.admin))


def _create_character(scene: Scene) -> Callable[[], object]:
    holder = _holder(scene)
    return lambda: create(scene.api.catalog, holder.secret, holder.id)


def _update_character(scene: Scene) -> Callable[[], object]:
    holder = _holder(scene)
    character = create(scene.api.catalog, holder.secret, holder.id)
    request = catalog_pb.UpdateCharacterRequest(
        character={"id": character.id, "aliases": [alias(f"Nick {unique()}", "en")]},
        update_mask=field_mask_pb2.FieldMask(paths=["aliases"]),
    )
    return lambda: scene.api.catalog.UpdateCharacter(request, metadata=auth(holder.secret))


def _archive_character(scene: Scene) -> Callable[[], object]:
    holder, character_id, _ = _granted(scene)
    request = catalog_pb.ArchiveCharacterRequest(id=character_id)
    return lambda: scene.api.catalog.ArchiveCharacter(request, metadata=auth(holder.secret))


def _suspend_character(scene: Scene) -> Callable[[], object]:
    _, character_id, _ = _granted(scene)
    request = catalog_pb.SuspendCharacterRequest(id=character_id, reason="dispute")
    return lambda: scene.api.catalog.SuspendCharacter(request, metadata=auth(scene.admin))


def _reinstate_character(scene: Scene) -> Callable[[], object]:
    _, character_id, _ = _granted(scene)
    suspend = catalog_pb.SuspendCharacterRequest(id=character_id, reason="dispute")
    scene.api.catalog.SuspendCharacter(suspend, metadata=auth(scene.admin))
    request = catalog_pb.ReinstateCharacterRequest(id=character_id)
    return lambda: scene.api.catalog.ReinstateCharacter(request, metadata=auth(scene.admin))


def _opt_in(scene: Scene) -> Callable[[], object]:
    holder = _holder(scene)
    character = create(scene.api.catalog, holder.secret, holder.id)
    return lambda: opt_in(scene.api.catalog, holder.secret, character.id)


def _update_terms(scene: Scene) -> Callable[[], object]:
    holder = _holder(scene)
    character_id = opted_in_character(scene.api, holder)
    request = catalog_pb.UpdateTermsRequest(character_id=character_id, terms=terms(commercial_use_allowed=True))
    return lambda: scene.api.catalog.UpdateTerms(request, metadata=auth(holder.secret))


def _opt_out(scene: Scene) -> Callable[[], object]:
    holder, character_id, _ = _granted(scene)
    licensee_id = new_licensee(scene.api, scene.admin)
    issue(scene.api, scene.admin, scene.clock, character_id, licensee_id)  # two grants, one commit
    request = catalog_pb.OptOutRequest(character_id=character_id, reason="leaving")
    return lambda: scene.api.catalog.OptOut(request, metadata=auth(holder.secret))


def _import_characters(scene: Scene) -> Callable[[], object]:
    holder = _holder(scene)
    rows = [catalog_pb.ImportRow(character={"external_id": f"x-{unique()}", "canonical_name": f"Imported {unique()}"})]
    request = catalog_pb.ImportCharactersRequest(rights_holder_id=holder.id, rows=rows)
    return lambda: scene.api.catalog.ImportCharacters(request, metadata=auth(holder.secret))


def _issue_grant(scene: Scene) -> Callable[[], object]:
    holder = _holder(scene)
    character_id = opted_in_character(scene.api, holder)
    licensee_id = new_licensee(scene.api, scene.admin)
    return lambda: issue(scene.api, scene.admin, scene.clock, character_id, licensee_id)


def _suspend_grant(scene: Scene) -> Callable[[], object]:
    _, _, grant_id = _granted(scene)
    request = gs.SuspendGrantRequest(id=grant_id, reason="audit")
    return lambda: scene.api.grants.SuspendGrant(request, metadata=auth(scene.admin))


def _reinstate_grant(scene: Scene) -> Callable[[], object]:
    _, _, grant_id = _granted(scene)
    scene.api.grants.SuspendGrant(gs.SuspendGrantRequest(id=grant_id, reason="audit"), metadata=auth(scene.admin))
    request = gs.ReinstateGrantRequest(id=grant_id)
    return lambda: scene.api.grants.ReinstateGrant(request, metadata=auth(scene.admin))


def _revoke_grant(scene: Scene) -> Callable[[], object]:
    holder, _, grant_id = _granted(scene)
    request = gs.RevokeGrantRequest(id=grant_id, reason="ended")
    return lambda: scene.api.grants.RevokeGrant(request, metadata=auth(holder.secret))


def _rotate_signing_key(scene: Scene) -> Callable[[], object]:
    return lambda: rotate(scene.api, scene.admin)


def _revoke_signing_key(scene: Scene) -> Callable[[], object]:
    retired = rotate(scene.api, scene.admin).retired_key.key_id
    assert retired in {k.key_id for k in signing_keys(scene.api, scene.admin)}
    request = ks.RevokeSigningKeyRequest(key_id=retired, reason="compromised")
    return lambda: scene.api.keys.RevokeSigningKey(request, metadata=auth(scene.admin))


def _create_api_key(scene: Scene) -> Callable[[], object]:
    request = access_pb.CreateApiKeyRequest(display_name=f"key {unique()}", role=api_key_pb2.ROLE_AUDITOR)
    return lambda: scene.api.access.CreateApiKey(request, metadata=auth(scene.admin))


def _revoke_api_key(scene: Scene) -> Callable[[], object]:
    created = scene.api.access.CreateApiKey(
        access_pb.CreateApiKeyRequest(display_name=f"key {unique()}", role=api_key_pb2.ROLE_AUDITOR),
        metadata=auth(scene.admin),
    )
    request = access_pb.RevokeApiKeyRequest(id=created.api_key.id)
    return lambda: scene.api.access.RevokeApiKey(request, metadata=auth(scene.admin))


def _close_statement_period(scene: Scene) -> Callable[[], object]:
    holder = _holder(scene)
    request = us.CloseStatementPeriodRequest(rights_holder_id=holder.id, period="2020-01")
    return lambda: scene.usage.CloseStatementPeriod(request, metadata=auth(scene.admin))


WRITES: dict[str, Write] = {
    CATALOG + "CreateRightsHolder": Write(_create_rights_holder, (ev.RightsHolderCreated,), False),
    CATALOG + "UpdateRightsHolder": Write(_update_rights_holder, (ev.RightsHolderChanged,), False),
    CATALOG + "ArchiveRightsHolder": Write(_archive_rights_holder, (ev.RightsHolderChanged,), False),
    CATALOG + "CreateLicensee": Write(_create_licensee, (ev.LicenseeCreated,), False),
    CATALOG + "UpdateLicensee": Write(_update_licensee, (ev.LicenseeChanged,), True),
    CATALOG + "ArchiveLicensee": Write(_archive_licensee, (ev.LicenseeChanged,), True),
    CATALOG + "CreateCharacter": Write(_create_character, (ev.CharacterCreated,), False),
    CATALOG + "UpdateCharacter": Write(_update_character, (ev.AliasesChanged,), False),
    CATALOG + "ArchiveCharacter": Write(
        _archive_character, (ev.CharacterStateChanged, ev.GrantStateChanged, ev.RevocationAppended), True
    ),
    CATALOG + "SuspendCharacter": Write(_suspend_character, (ev.CharacterStateChanged, ev.RevocationAppended), True),
    CATALOG + "ReinstateCharacter": Write(
        _reinstate_character, (ev.CharacterStateChanged, ev.RevocationAppended), False
    ),
    CATALOG + "OptIn": Write(_opt_in, (ev.TermsChanged, ev.CharacterStateChanged), False),
    CATALOG + "UpdateTerms": Write(_update_terms, (ev.TermsChanged, ev.CharacterChanged), False),
    CATALOG + "OptOut": Write(_opt_out, (ev.CharacterStateChanged, ev.GrantStateChanged, ev.RevocationAppended), True),
    CATALOG + "ImportCharacters": Write(_import_characters, (ev.CharacterCreated,), False),
    GRANTS + "IssueGrant": Write(_issue_grant, (ev.GrantIssued,), False),
    GRANTS + "SuspendGrant": Write(_suspend_grant, (ev.GrantStateChanged, ev.RevocationAppended), True),
    GRANTS + "ReinstateGrant": Write(_reinstate_grant, (ev.GrantStateChanged, ev.RevocationAppended), False),
    GRANTS + "RevokeGrant": Write(_revoke_grant, (ev.GrantStateChanged, ev.RevocationAppended), True),
    KEYS + "RotateSigningKey": Write(_rotate_signing_key, (ev.SigningKeyStateChanged, ev.SigningKeyAdded), False),
    KEYS + "RevokeSigningKey": Write(_revoke_signing_key, (ev.SigningKeyStateChanged,), True),
    ACCESS + "CreateApiKey": Write(_create_api_key, (ev.ApiKeyCreated,), False),
    ACCESS + "RevokeApiKey": Write(_revoke_api_key, (ev.ApiKeyRevoked,), True),
    USAGE + "CloseStatementPeriod": Write(_close_statement_period, (ev.StatementPeriodClosed,), False),
}


def test_every_rpc_is_classified() -> None:
    served = {m.path for m in all_methods()}
    tables = (READ_ONLY, set(UNCACHED_WRITES), set(WRITES))
    unclassified = served - set().union(*tables)
    # A new RPC: a write goes in WRITES (with the events it raises), anything else in READ_ONLY.
    assert unclassified == set()
    assert set().union(*tables) - served == set()
    assert sum(len(t) for t in tables) == len(served)  # no RPC in two tables


# New rows of these tables change what Authorize answers (a grant for a pair it cached as having
# none, a key in the ring); a new character, licensee or API key allows nothing until changed again.
NEW_ROWS_MATTER = frozenset({"grant", "signing_key"})


def _what_authorize_reads(server: CharterServer) -> tuple[dict[tuple[str, str], tuple[Any, ...]], int]:
    """Every row field the authorization view (and the key cache) may hold, by (table, id); and the epoch."""
    with server.db.uow() as uow:
        session = uow.session
        rows = {
            (table, str(row[0])): tuple(row[1:])
            for table, stmt in (
                ("character", select(CharacterRow.id, CharacterRow.state, CharacterRow.rights_holder_id)),
                ("licensee", select(LicenseeRow.id, LicenseeRow.state, LicenseeRow.platform)),
                ("grant", select(GrantRow.id, GrantRow.state, GrantRow.expire_time, GrantRow.not_before)),
                ("signing_key", select(SigningKeyRow.key_id, SigningKeyRow.state)),
                ("api_key", select(ApiKeyRow.id, ApiKeyRow.revoke_time)),
            )
            for row in session.execute(stmt)
        }
        epoch = session.scalar(select(CounterRow.value).where(CounterRow.name == "authz_epoch"))
    return rows, int(epoch or 0)


def _changes_authorize_inputs(before: dict[tuple[str, str], Any], after: dict[tuple[str, str], Any]) -> bool:
    changed = any(after.get(key) != value for key, value in before.items())
    return changed or any(key not in before and key[0] in NEW_ROWS_MATTER for key in after)


class _Captured:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.batches: list[tuple[ev.DomainEvent, ...]] = []

    def __call__(self, events: Sequence[ev.DomainEvent]) -> None:
        with self.lock:
            self.batches.append(tuple(events))


@pytest.fixture(scope="module")
def scene(channel: grpc.Channel, keys: Any, clock: Any) -> Scene:
    return Scene(stubs(channel), usage_service_pb2_grpc.UsageServiceStub(channel), keys.admin, clock)


@pytest.mark.parametrize("path", sorted(WRITES), ids=lambda p: p.rsplit("/", 1)[-1])
def test_every_write_announces_what_it_changed(path: str, scene: Scene, server: CharterServer) -> None:
    write = WRITES[path]
    call = write.prepare(scene)
    before, epoch_before = _what_authorize_reads(server)
    captured = _Captured()
    unsubscribe = server.db.events.subscribe(captured)
    try:
        call()
    finally:
        unsubscribe()
    after, epoch_after = _what_authorize_reads(server)

    assert len(captured.batches) == 1  # one commit, published once
    events = captured.batches[0]
    kinds = {type(e) for e in events}
    assert set(write.expected) <= kinds, kinds
    affects = any(e.affects_authorization for e in events)
    if _changes_authorize_inputs(before, after):
        assert affects  # Authorize's inputs moved: servers must hear of it
    assert any(e.takes_away for e in events) == write.takes_away
    assert epoch_after - epoch_before == (1 if affects else 0)  # once per commit, however many events


def test_only_the_unit_of_work_bumps_the_epoch() -> None:
    """No service or repository decides by hand when servers reload: they raise events."""
    root = Path(charter_server.__file__).parent
    callers = sorted(
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "bump_authz_epoch(" in path.read_text(encoding="utf-8")
        and "def bump_authz_epoch(" not in path.read_text(encoding="utf-8")
    )
    assert callers == ["storage/uow.py"]
