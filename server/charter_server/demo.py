"""A small demo catalogue for the quick start.

A rights holder with an opted-in character, a licensee holding a grant for it, and a key per role.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

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
    for role, rh, lic in (
        (Role.RIGHTS_HOLDER, holder.id, ""),
        (Role.GENERATOR, "", licensee.id),
        (Role.AUDITOR, "", ""),
    ):
        created = services.access.create_api_key(
            staff, ApiKeyInput(f"demo {role.value}", role, rights_holder_id=rh, licensee_id=lic)
        )
        secrets[role] = created.secret
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
    return DemoData(holder.id, licensee.id, character.id, grant.id, secrets)
