"""Terms templates: named starting points a rights holder applies and then adjusts.

``fan-noncommercial`` follows the shape of real character licences for fan works (for
example the Piapro Character License and the fan-work guidelines of VTuber agencies):
non-commercial only, nothing sexual or that damages the character's image, no implied
endorsement, attribution required. ``commercial-partner`` is a paid partnership:
commercial use, watermarking, a revenue share and a per-use fee. ``promotional-cameo``
lets fans place a character in their own videos for promotion.
"""

from __future__ import annotations

from dataclasses import dataclass

from charter.v1 import terms_pb2 as t


@dataclass(frozen=True)
class Template:
    """A named set of terms."""

    name: str
    description: str
    terms: t.Terms


def _templates() -> dict[str, Template]:
    fan = t.Terms(
        permitted_use_types=[t.USE_TYPE_IMAGE_GENERATION, t.USE_TYPE_VIDEO_GENERATION, t.USE_TYPE_CAMEO],
        max_content_rating=t.CONTENT_RATING_TEEN,
        prohibited_categories=[
            t.CONTENT_CATEGORY_SEXUAL,
            t.CONTENT_CATEGORY_GRAPHIC_VIOLENCE,
            t.CONTENT_CATEGORY_HATE,
            t.CONTENT_CATEGORY_POLITICAL,
            t.CONTENT_CATEGORY_RELIGIOUS,
            t.CONTENT_CATEGORY_SELF_HARM,
            t.CONTENT_CATEGORY_DRUGS,
            t.CONTENT_CATEGORY_CHARACTER_DAMAGING,
            t.CONTENT_CATEGORY_IMPLIED_ENDORSEMENT,
            t.CONTENT_CATEGORY_THIRD_PARTY_ADVERTISING,
        ],
        commercial_use_allowed=False,
        attribution_text="Fan work. The character belongs to its rights holder.",
        watermark_required=True,
    )
    partner = t.Terms(
        permitted_use_types=[
            t.USE_TYPE_IMAGE_GENERATION,
            t.USE_TYPE_VIDEO_GENERATION,
            t.USE_TYPE_INTERACTIVE,
            t.USE_TYPE_CAMEO,
        ],
        max_content_rating=t.CONTENT_RATING_TEEN,
        prohibited_categories=[
            t.CONTENT_CATEGORY_SEXUAL,
            t.CONTENT_CATEGORY_HATE,
            t.CONTENT_CATEGORY_POLITICAL,
            t.CONTENT_CATEGORY_SELF_HARM,
            t.CONTENT_CATEGORY_DRUGS,
            t.CONTENT_CATEGORY_CHARACTER_DAMAGING,
        ],
        commercial_use_allowed=True,
        attribution_text="Used under licence from the rights holder.",
        watermark_required=True,
        revenue_share_bps=1500,
        per_use_fee=t.Money(currency_code="USD", minor_units=5),
        daily_quota=10_000,
    )
    cameo = t.Terms(
        permitted_use_types=[t.USE_TYPE_CAMEO],
        max_content_rating=t.CONTENT_RATING_ALL_AGES,
        prohibited_categories=[
            t.CONTENT_CATEGORY_SEXUAL,
            t.CONTENT_CATEGORY_GRAPHIC_VIOLENCE,
            t.CONTENT_CATEGORY_HATE,
            t.CONTENT_CATEGORY_POLITICAL,
            t.CONTENT_CATEGORY_CHARACTER_DAMAGING,
            t.CONTENT_CATEGORY_IMPLIED_ENDORSEMENT,
        ],
        commercial_use_allowed=False,
        attribution_text="Cameo courtesy of the rights holder.",
        watermark_required=True,
        daily_quota=1_000,
    )
    return {
        "fan-noncommercial": Template(
            "fan-noncommercial",
            "Non-commercial fan works: images, video and cameos up to teen rating; no sexual, violent, "
            "hateful, political or image-damaging content; no implied endorsement; attribution and watermark.",
            fan,
        ),
        "commercial-partner": Template(
            "commercial-partner",
            "A paid partnership: commercial use up to teen rating, watermark, 15% revenue share, "
            "a fee of 5 US cents per use, at most 10,000 uses per licensee per day.",
            partner,
        ),
        "promotional-cameo": Template(
            "promotional-cameo",
            "Fans may place the character in their own all-ages videos as a cameo, non-commercially, "
            "at most 1,000 uses per licensee per day.",
            cameo,
        ),
    }


TEMPLATES = _templates()
