"""Helpers of the character, terms and import API tests: fresh rights holders with their own keys,
characters with names no other test uses, valid terms to start from, and paging.

Names are global: an alias of one rights holder collides with the same name of another. Every
name made here carries a fresh marker, in Latin letters or in kana, so tests sharing the
session's server never collide by accident.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from charter.v1 import access_service_pb2 as access_pb
from charter.v1 import api_key_pb2, character_pb2, terms_pb2
from charter.v1 import catalog_service_pb2 as catalog_pb
from google.protobuf import field_mask_pb2

from .helpers import Failure, auth, failure, unique

Character = character_pb2.Character
Alias = character_pb2.Alias
Terms = terms_pb2.Terms

OPTED_OUT = Character.STATE_OPTED_OUT
OPTED_IN = Character.STATE_OPTED_IN
SUSPENDED = Character.STATE_SUSPENDED
ARCHIVED = Character.STATE_ARCHIVED

# One katakana letter per hex digit, and its half-width form: unique names in Japanese script.
_KATAKANA = "アイウエオカキクケコサシスセソタ"
_HALF_WIDTH = "ｱｲｳｴｵｶｷｸｹｺｻｼｽｾｿﾀ"


def kana_marker() -> str:
    """A fresh run of 10 katakana letters."""
    return "".join(_KATAKANA[int(d, 16)] for d in uuid.uuid4().hex[:10])


def hiragana(text: str) -> str:
    """Katakana letters of ``text`` as hiragana."""
    return "".join(chr(ord(c) - 0x60) if "ァ" <= c <= "ヶ" else c for c in text)


def half_width(text: str) -> str:
    """Katakana letters of the marker alphabet (and ミク) as half-width katakana."""
    table = dict(zip(_KATAKANA, _HALF_WIDTH, strict=True)) | {"ミ": "ﾐ", "ク": "ｸ"}
    return "".join(table.get(c, c) for c in text)


def full_width(text: str) -> str:
    """Printable ASCII of ``text`` as full-width forms (a space becomes an ideographic space)."""
    return "".join("\u3000" if c == " " else chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


@dataclass(frozen=True)
class Holder:
    """A rights holder and the secret of a rights-holder key bound to it."""

    id: str
    secret: str


def new_holder(catalog: Any, access: Any, admin: str) -> Holder:
    """A new rights holder with its own rights-holder key, made through the API by staff."""
    holder = catalog.CreateRightsHolder(
        catalog_pb.CreateRightsHolderRequest(
            rights_holder={"display_name": f"Studio {unique()}", "contact_email": "rights@studio.example"}
        ),
        metadata=auth(admin),
    ).rights_holder
    key = access.CreateApiKey(
        access_pb.CreateApiKeyRequest(
            display_name=f"key {unique()}", role=api_key_pb2.ROLE_RIGHTS_HOLDER, rights_holder_id=holder.id
        ),
        metadata=auth(admin),
    )
    return Holder(holder.id, key.secret)


def alias(value: str, language: str = "ja", kind: int = Alias.KIND_NICKNAME, *, ambiguous: bool = False) -> Alias:
    return Alias(value=value, language=language, kind=kind, ambiguous=ambiguous)


def create(
    catalog: Any,
    secret: str,
    holder_id: str,
    *,
    name: str | None = None,
    aliases: tuple[Alias, ...] = (),
    request_id: str = "",
    **fields: Any,
) -> Character:
    """Create a character (a unique canonical name unless one is given)."""
    character = Character(
        rights_holder_id=holder_id, canonical_name=name or f"Chara {unique()}", aliases=list(aliases), **fields
    )
    request = catalog_pb.CreateCharacterRequest(character=character, request_id=request_id)
    return catalog.CreateCharacter(request, metadata=auth(secret)).character


def get(catalog: Any, secret: str, character_id: str) -> Character:
    return catalog.GetCharacter(catalog_pb.GetCharacterRequest(id=character_id), metadata=auth(secret)).character


def terms(**changes: Any) -> Terms:
    """Valid terms to start from, with ``changes`` applied."""
    base: dict[str, Any] = {
        "permitted_use_types": [terms_pb2.USE_TYPE_IMAGE_GENERATION],
        "max_content_rating": terms_pb2.CONTENT_RATING_TEEN,
    }
    return Terms(**{**base, **changes})


def opt_in(catalog: Any, secret: str, character_id: str, given: Terms | None = None) -> catalog_pb.OptInResponse:
    request = catalog_pb.OptInRequest(character_id=character_id, terms=given or terms())
    return catalog.OptIn(request, metadata=auth(secret))


def update_terms(catalog: Any, secret: str, character_id: str, given: Terms) -> Terms:
    request = catalog_pb.UpdateTermsRequest(character_id=character_id, terms=given)
    return catalog.UpdateTerms(request, metadata=auth(secret)).terms


def versions(catalog: Any, secret: str, character_id: str) -> list[Terms]:
    """Every terms version of a character, newest first."""
    found, _ = list_all(
        catalog.ListTermsVersions, catalog_pb.ListTermsVersionsRequest(character_id=character_id), "terms", secret
    )
    return found


def list_all(call: Callable[..., Any], request: Any, items: str, secret: str) -> tuple[list[Any], int]:
    """Every item of a list, page by page; also the number of pages."""
    found: list[Any] = []
    pages = 0
    while True:
        response = call(request, metadata=auth(secret))
        pages += 1
        found.extend(getattr(response, items))
        if not response.next_page_token:
            return found, pages
        request.page_token = response.next_page_token


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


def refused(call: Callable[..., Any], request: Any, secret: str) -> Failure:
    """The failure of a call that must fail."""
    with pytest.raises(grpc.RpcError) as raised:
        call(request, metadata=auth(secret))
    return failure(raised.value)
