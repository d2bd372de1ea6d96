"""A small demo catalogue for the quick start.

A rights holder with an opted-in character, a licensee holding a grant for it, a key per role,
and one use of the character, authorized and reported, so this month's statement has a line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from charter.v1 import authorization_service_pb2, decision_pb2, terms_pb2, usage_pb2
from google.protobuf import timestamp_pb2

from charter_server.api import convert_usage
from charter_server.api.authorization import authorize_command
from charter_server.app import Services
from charter_server.domain.models import AliasKind, Principal, Role
from charter_server.services.access import ApiKeyInput
from charter_server.services.catalog import LicenseeInput, RightsHolderInput
from charter_server.services.characters import AliasInput, CharacterInput
from charter_server.services.grants import IssueInput
from charter_server.services.templates import TEMPLATES


@dataclass(frozen=True)
class DemoData:
    """What ``seed`` created; the secrets exist nowhere else."""

    rights_holder_id: str
    licensee_id: str
    character_id: str
    grant_id: str
    secrets: dict[Role, str]


def seed(services: Services) -> DemoData:
    """Create the demo records and one key per role through the real services."""
    admin = services.access.create_bootstrap_admin("demo admin")
    staff = Principal(admin.api_key.id, Role.ADMIN)
    holder = services.catalog.create_rights_holder(
        staff,
        RightsHolderInput(
            display_name="Example Studio (demo)",
            contact_email="licensing@studio.example",
            legal_name="Example Studio K.K.",
            revenue_share_account="ACCT-DEMO-001",
        ),
    )
    licensee = services.catalog.create_licensee(
        staff,
        LicenseeInput(
            display_name="Example Video App (demo)",
            contact_email="partners@video.example",
            platform="example-video-app",
        ),
    )
    secrets = {Role.ADMIN: admin.secret}
    generator = Principal("", Role.GENERATOR, licensee_id=licensee.id)
    for role, rh, lic in (
        (Role.RIGHTS_HOLDER, holder.id, ""),
        (Role.GENERATOR, "", licensee.id),
        (Role.AUDITOR, "", ""),
    ):
        created = services.access.create_api_key(
            staff, ApiKeyInput(f"demo {role.value}", role, rights_holder_id=rh, licensee_id=lic)
        )
        secrets[role] = created.secret
        if role is Role.GENERATOR:
            generator = Principal(created.api_key.id, role, licensee_id=licensee.id)
    character = services.characters.create_character(
        staff,
        CharacterInput(
            rights_holder_id=holder.id,
            canonical_name="Aoi Hoshino",
            franchise="Example Star Stage (demo)",
            description="A fictional idol singer used by the demo.",
            aliases=(
                AliasInput("星野アオイ", "ja", AliasKind.OFFICIAL_NAME),
                AliasInput("Hoshino Aoi", "ja-Latn", AliasKind.ROMANIZATION),
                AliasInput("アオイ", "ja", AliasKind.SHORT_NAME, ambiguous=True),
            ),
            external_id="demo-001",
        ),
    )
    services.characters.opt_in(staff, character.id, TEMPLATES["fan-noncommercial"].terms)
    grant = services.grants.issue(
        staff, IssueInput(character.id, licensee.id, expire_time=datetime.now(UTC) + timedelta(days=365))
    )
    _first_use(services, generator, character.id)
    return DemoData(holder.id, licensee.id, character.id, grant.id, secrets)


def _first_use(services: Services, generator: Principal, character_id: str) -> None:
    """Authorize one image of the character as the licensee, and report it as rendered."""
    context = decision_pb2.UseContext(
        use_type=terms_pb2.USE_TYPE_IMAGE_GENERATION, content_rating=terms_pb2.CONTENT_RATING_ALL_AGES
    )
    request = authorization_service_pb2.AuthorizeRequest(character_ids=[character_id], context=context)
    decided = services.authorization.authorize(generator, authorize_command(request))
    happened = timestamp_pb2.Timestamp()
    happened.FromDatetime(datetime.now(UTC))
    record = usage_pb2.UsageRecord(
        idempotency_key="demo-first-use",
        receipt=decided.receipt,
        character_id=character_id,
        uses=1,
        happen_time=happened,
    )
    services.usage.report(generator, [convert_usage.usage_record(record)])
