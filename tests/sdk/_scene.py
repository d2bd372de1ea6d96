"""A scene for the generation-time tests: a fresh rights holder, licensee and generator key on a real
server, and characters opted in under `TERMS` with names no other test uses."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable

from charter import Client
from charter.decision_records import DecisionRecordSigner, generate_key
from charter.terms import Obligations
from charter.v1 import api_key_pb2, character_pb2, grant_pb2, terms_pb2

from ._live import Live, unique

IMAGE = terms_pb2.USE_TYPE_IMAGE_GENERATION
VIDEO = terms_pb2.USE_TYPE_VIDEO_GENERATION
TEEN = terms_pb2.CONTENT_RATING_TEEN
ADULT = terms_pb2.CONTENT_RATING_ADULT
SEXUAL = terms_pb2.CONTENT_CATEGORY_SEXUAL
HATE = terms_pb2.CONTENT_CATEGORY_HATE

TERMS = terms_pb2.Terms(
    permitted_use_types=[IMAGE],
    max_content_rating=TEEN,
    prohibited_categories=[SEXUAL],
    attribution_text="© Example Studio",
    watermark_required=True,
    revenue_share_bps=1500,
    per_use_fee=terms_pb2.Money(currency_code="JPY", minor_units=100),
)
OWED = Obligations(
    attribution_text="© Example Studio",
    watermark_required=True,
    revenue_share_bps=1500,
    per_use_fee_minor_units=100,
    per_use_fee_currency="JPY",
)


@dataclasses.dataclass(frozen=True)
class Scene:
    """A fresh rights holder and licensee, a generator key of the licensee, and staff to set things up."""

    live: Live
    staff: Client
    rights_holder_id: str
    licensee_id: str
    generator_key: str

    def character(
        self,
        *,
        granted: bool = True,
        opted_in: bool = True,
        name: str = "",
        aliases: Iterable[character_pb2.Alias] = (),
        max_uses: int | None = None,
    ) -> character_pb2.Character:
        """A character opted in under `TERMS` (unless not `opted_in`) with a 30-day grant for the
        licensee (unless not `granted`), in the server's prompt screen at once."""
        character = self.staff.create_character(
            rights_holder_id=self.rights_holder_id, canonical_name=name or unique("Character "), aliases=aliases
        )
        if opted_in:
            self.staff.opt_in(character.id, TERMS)
        if opted_in and granted:
            self.grant(character.id, max_uses=max_uses)
        # The screen refreshes its index within a second by itself; a test does not wait for that.
        self.live.server.services.screen.refresh_now()
        return character

    def grant(self, character_id: str, *, licensee_id: str = "", max_uses: int | None = None) -> grant_pb2.Grant:
        """A 30-day grant of the character, for the scene's licensee unless another is given."""
        return self.staff.issue_grant(
            character_id=character_id,
            licensee_id=licensee_id or self.licensee_id,
            expire_time=dt.datetime.now(dt.UTC) + dt.timedelta(days=30),
            max_uses=max_uses,
        )

    def signer(self) -> DecisionRecordSigner:
        """A licensee key registered through the licensee's own admin key, to sign decision records."""
        admin_key = self.staff.create_api_key(
            display_name="licensee admin", role=api_key_pb2.ROLE_LICENSEE_ADMIN, licensee_id=self.licensee_id
        )
        seed, public = generate_key()
        with Client(self.live.target, api_key=admin_key.secret) as admin:
            key_id = admin.register_licensee_key(public, display_name="edge").key.key_id
        return DecisionRecordSigner(key_id=key_id, private_key=seed, licensee_id=self.licensee_id)

    def revoke(self, count: int) -> list[tuple[int, str]]:
        """Revokes `count` fresh grants; returns their (sequence, grant id) in the revocation log."""
        character = self.character(granted=False)
        revoked = []
        for _ in range(count):
            response = self.staff.revoke_grant(self.grant(character.id).id, reason="test")
            revoked.append((response.sequence, response.grant.id))
        return revoked


def make_scene(live: Live, staff: Client) -> Scene:
    """A `Scene` on the server, set up by staff (an admin client of it)."""
    holder = staff.create_rights_holder(display_name="Example Studio", contact_email="rights@studio.example")
    licensee = staff.create_licensee(display_name="Render App", contact_email="ops@app.example", platform="render-app")
    key = staff.create_api_key(display_name="renderer", role=api_key_pb2.ROLE_GENERATOR, licensee_id=licensee.id)
    return Scene(live, staff, holder.id, licensee.id, key.secret)
