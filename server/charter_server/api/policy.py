"""Which roles may call which RPC. Every charter.v1 method must be listed: unlisted means denied.

Ownership (a rights holder's own catalogue, a generator's own licensee) is checked by the
services after this table admits the role, and before any lookup.
"""

from __future__ import annotations

from charter_server.domain.models import Role

ADMIN = frozenset({Role.ADMIN})
STAFF_READ = frozenset({Role.ADMIN, Role.AUDITOR})
ANY = frozenset(Role)

# Methods that need no credentials: the standard health and reflection services.
PUBLIC_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)

POLICY: dict[str, frozenset[Role]] = {
    # CatalogService: rights holders.
    "/charter.v1.CatalogService/CreateRightsHolder": ADMIN,
    "/charter.v1.CatalogService/GetRightsHolder": STAFF_READ | {Role.RIGHTS_HOLDER},
    "/charter.v1.CatalogService/ListRightsHolders": STAFF_READ | {Role.RIGHTS_HOLDER},
    "/charter.v1.CatalogService/UpdateRightsHolder": ADMIN | {Role.RIGHTS_HOLDER},
    "/charter.v1.CatalogService/ArchiveRightsHolder": ADMIN,
    # CatalogService: licensees.
    "/charter.v1.CatalogService/CreateLicensee": ADMIN,
    "/charter.v1.CatalogService/GetLicensee": STAFF_READ | {Role.GENERATOR},
    "/charter.v1.CatalogService/ListLicensees": STAFF_READ,
    "/charter.v1.CatalogService/UpdateLicensee": ADMIN,
    "/charter.v1.CatalogService/ArchiveLicensee": ADMIN,
    "/charter.v1.CatalogService/GetLicenseeProfile": STAFF_READ | {Role.RIGHTS_HOLDER},
    "/charter.v1.CatalogService/ListLicenseeProfiles": STAFF_READ | {Role.RIGHTS_HOLDER},
    # CatalogService: characters, terms, templates, import and collisions.
    "/charter.v1.CatalogService/CreateCharacter": ADMIN | {Role.RIGHTS_HOLDER},
    "/charter.v1.CatalogService/GetCharacter": STAFF_READ | {Role.RIGHTS_HOLDER},
    "/charter.v1.CatalogService/ListCharacters": STAFF_READ | {Role.RIGHTS_HOLDER},
    "/charter.v1.CatalogService/UpdateCharacter": ADMIN | {Role.RIGHTS_HOLDER},
    "/charter.v1.CatalogService/ArchiveCharacter": ADMIN | {Role.RIGHTS_HOLDER},
    "/charter.v1.CatalogService/SuspendCharacter": ADMIN,
    "/charter.v1.CatalogService/ReinstateCharacter": ADMIN,
    "/charter.v1.CatalogService/OptIn": ADMIN | {Role.RIGHTS_HOLDER},
    "/charter.v1.CatalogService/UpdateTerms": ADMIN | {Role.RIGHTS_HOLDER},
    "/charter.v1.CatalogService/OptOut": ADMIN | {Role.RIGHTS_HOLDER},
    "/charter.v1.CatalogService/GetTerms": STAFF_READ | {Role.RIGHTS_HOLDER},
    "/charter.v1.CatalogService/ListTermsVersions": STAFF_READ | {Role.RIGHTS_HOLDER},
    "/charter.v1.CatalogService/ListTermsTemplates": ANY,
    "/charter.v1.CatalogService/ImportCharacters": ADMIN | {Role.RIGHTS_HOLDER},
    "/charter.v1.CatalogService/ListAliasCollisions": STAFF_READ,
    # GrantService.
    "/charter.v1.GrantService/IssueGrant": ADMIN,
    "/charter.v1.GrantService/GetGrant": STAFF_READ | {Role.RIGHTS_HOLDER},
    "/charter.v1.GrantService/ListGrants": STAFF_READ | {Role.RIGHTS_HOLDER},
    "/charter.v1.GrantService/SuspendGrant": ADMIN,
    "/charter.v1.GrantService/ReinstateGrant": ADMIN,
    "/charter.v1.GrantService/RevokeGrant": ADMIN | {Role.RIGHTS_HOLDER},
    # KeyService.
    "/charter.v1.KeyService/RotateSigningKey": ADMIN,
    "/charter.v1.KeyService/RevokeSigningKey": ADMIN,
    "/charter.v1.KeyService/ListSigningKeys": STAFF_READ,
    # OfflineService: a licensee's own keys (staff or its licensee-admin key), its bundle and leases.
    "/charter.v1.OfflineService/RegisterLicenseeKey": ADMIN | {Role.LICENSEE_ADMIN},
    "/charter.v1.OfflineService/ListLicenseeKeys": STAFF_READ | {Role.LICENSEE_ADMIN, Role.GENERATOR},
    "/charter.v1.OfflineService/RevokeLicenseeKey": ADMIN | {Role.LICENSEE_ADMIN},
    "/charter.v1.OfflineService/GetGrantBundle": frozenset({Role.GENERATOR}),
    "/charter.v1.OfflineService/LeaseQuota": frozenset({Role.GENERATOR}),
    "/charter.v1.OfflineService/RenewQuotaLease": frozenset({Role.GENERATOR}),
    "/charter.v1.OfflineService/ReturnQuotaLease": frozenset({Role.GENERATOR}),
    "/charter.v1.OfflineService/GetRegistrySnapshot": STAFF_READ | {Role.GENERATOR},
    # AuthorizationService.
    "/charter.v1.AuthorizationService/Authorize": frozenset({Role.GENERATOR}),
    "/charter.v1.AuthorizationService/GetKeySet": ANY,
    "/charter.v1.AuthorizationService/VerifyGrant": ANY,
    "/charter.v1.AuthorizationService/ScreenPrompt": ANY,
    "/charter.v1.AuthorizationService/WatchRevocations": ANY,
    # What-if (issue 15): staff, rights holders (own characters) and generators (own licensee).
    "/charter.v1.AuthorizationService/SimulateUse": STAFF_READ | {Role.RIGHTS_HOLDER, Role.GENERATOR},
    "/charter.v1.AuthorizationService/PreviewTerms": STAFF_READ | {Role.RIGHTS_HOLDER},
    # UsageService: generators report; statements for staff, their rights holder, or (own lines) a generator.
    "/charter.v1.UsageService/ReportUsage": frozenset({Role.GENERATOR}),
    "/charter.v1.UsageService/GetStatement": STAFF_READ | {Role.RIGHTS_HOLDER, Role.GENERATOR},
    "/charter.v1.UsageService/ListStatements": STAFF_READ | {Role.RIGHTS_HOLDER, Role.GENERATOR},
    "/charter.v1.UsageService/CloseStatementPeriod": ADMIN,
    "/charter.v1.UsageService/GetUsageSeries": STAFF_READ | {Role.RIGHTS_HOLDER, Role.GENERATOR},
    # AccessService.
    "/charter.v1.AccessService/CreateApiKey": ADMIN,
    "/charter.v1.AccessService/GetApiKey": STAFF_READ,
    "/charter.v1.AccessService/ListApiKeys": STAFF_READ,
    "/charter.v1.AccessService/RevokeApiKey": ADMIN,
    "/charter.v1.AccessService/GetCaller": ANY,
    # TransparencyService: checkpoints, hashes and proofs are public; the service filters entry bodies
    # by tenancy.
    "/charter.v1.TransparencyService/GetCheckpoint": ANY,
    "/charter.v1.TransparencyService/GetInclusionProof": ANY,
    "/charter.v1.TransparencyService/GetConsistencyProof": ANY,
    "/charter.v1.TransparencyService/ListEntries": ANY,
}


def is_public(method: str) -> bool:
    """Whether ``method`` is served without credentials."""
    return method.startswith(PUBLIC_PREFIXES)
