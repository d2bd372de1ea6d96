"""Repositories, one module per aggregate: they speak domain records and hide the SQL.

Each takes the unit of work's session; those with database-specific statements take its
`~charter_server.storage.dialect.Dialect`, and those whose writes matter to others raise domain
events on the unit of work (``charter_server.domain.events``). The unit of work builds each on
first use (``storage.uow``).
"""

from charter_server.storage.repositories.access import ApiKeyRepository, RequestRecordRepository
from charter_server.storage.repositories.authz import AUTHZ_EPOCH, GrantViewRepository, bump_authz_epoch
from charter_server.storage.repositories.catalog import LicenseeRepository, RightsHolderRepository
from charter_server.storage.repositories.characters import CharacterRepository, CollisionPage
from charter_server.storage.repositories.decisions import DecisionHistoryRepository
from charter_server.storage.repositories.grants import GrantRepository
from charter_server.storage.repositories.keys import SigningKeyRepository
from charter_server.storage.repositories.quotas import AuthorizationRepository, QuotaRepository
from charter_server.storage.repositories.revocations import RevocationLogRepository
from charter_server.storage.repositories.statements import StatementRepository
from charter_server.storage.repositories.terms import TermsRepository
from charter_server.storage.repositories.usage import UsageRepository

__all__ = [
    "AUTHZ_EPOCH",
    "ApiKeyRepository",
    "AuthorizationRepository",
    "CharacterRepository",
    "CollisionPage",
    "DecisionHistoryRepository",
    "GrantRepository",
    "GrantViewRepository",
    "LicenseeRepository",
    "QuotaRepository",
    "RequestRecordRepository",
    "RevocationLogRepository",
    "RightsHolderRepository",
    "SigningKeyRepository",
    "StatementRepository",
    "TermsRepository",
    "UsageRepository",
    "bump_authz_epoch",
]
