"""What callers give for characters and import rows, and how it is checked."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import langcodes
from charter.names import normalize
from charter.screen import KeywordSet, look_alike_key
from charter.v1 import terms_pb2

from charter_server.domain.models import Alias, AliasKind
from charter_server.services.readings import MAX_NAME_KEY, NameWarning, check_keyword_sets
from charter_server.services.validation import Checker, Unreadable, has_bidi_control

CHARACTER_MUTABLE = (
    "canonical_name",
    "franchise",
    "description",
    "reference_urls",
    "aliases",
    "external_id",
    "canonical_name_ambiguous",
    "keyword_sets",
)
_EXTERNAL_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")
MAX_ALIASES = 100
MAX_URLS = 20
MAX_IMPORT_ROWS = 500


@dataclass(frozen=True, slots=True)
class AliasInput:
    """An alias as given by the caller."""

    value: str
    language: str
    kind: AliasKind | Unreadable | None = None
    ambiguous: bool = False
    derived: bool = False


@dataclass(frozen=True, slots=True)
class CharacterInput:
    """The caller-settable fields of a character."""

    rights_holder_id: str
    canonical_name: str
    franchise: str = ""
    description: str = ""
    reference_urls: tuple[str, ...] = ()
    aliases: tuple[AliasInput, ...] = ()
    external_id: str = ""
    canonical_name_ambiguous: bool = False
    keyword_sets: tuple[KeywordSet, ...] = ()


@dataclass(frozen=True, slots=True)
class RowResult:
    """The outcome of one import row."""

    index: int
    external_id: str
    outcome: str  # created, updated, unchanged, failed
    character_id: str = ""
    error_reason: str = ""
    violations: tuple[tuple[str, str], ...] = ()
    warnings: tuple[NameWarning, ...] = ()


@dataclass(frozen=True, slots=True)
class ImportRowInput:
    """One import row: the character and, optionally, terms to opt it in with."""

    character: CharacterInput
    terms: terms_pb2.Terms | None = None


def _check_key(checker: Checker, field: str, value: str, key: str) -> None:
    """A name shows as what it is, and its normalised key (and look-alike key) fits the name table."""
    if has_bidi_control(value):
        checker.add(field, "must not contain bidirectional controls or line separators")
    elif len(key) > MAX_NAME_KEY or len(look_alike_key(value) or "") > MAX_NAME_KEY:
        checker.add(field, f"must be at most {MAX_NAME_KEY} characters once normalised")


def check_character(checker: Checker, value: CharacterInput, fields: Sequence[str], p: str) -> tuple[Alias, ...]:
    """Record invalid fields; return the aliases with their normalised keys."""
    if "canonical_name" in fields:
        before = len(checker.violations)
        checker.text(f"{p}.canonical_name", value.canonical_name, max_len=200, required=True)
        key = normalize(value.canonical_name)
        if value.canonical_name.strip() and not key:
            checker.add(f"{p}.canonical_name", "must contain a letter or digit")
        elif len(checker.violations) == before:
            _check_key(checker, f"{p}.canonical_name", value.canonical_name, key)
    if "franchise" in fields:
        before = len(checker.violations)
        checker.text(f"{p}.franchise", value.franchise, max_len=200)
        # Franchises are filtered by their case-folded form, which can be longer ("ß" is "ss").
        if len(checker.violations) == before and len(value.franchise.strip().casefold()) > 200:
            checker.add(f"{p}.franchise", "must be at most 200 characters once case-folded")
        elif len(checker.violations) == before and has_bidi_control(value.franchise):
            checker.add(f"{p}.franchise", "must not contain bidirectional controls or line separators")
    if "description" in fields:
        checker.text(f"{p}.description", value.description.replace("\n", " "), max_len=2000)
    if "external_id" in fields and value.external_id and not _EXTERNAL_ID.fullmatch(value.external_id):
        checker.add(f"{p}.external_id", "must be 1-100 letters, digits, '.', '_', ':' or '-'")
    if "reference_urls" in fields:
        if len(value.reference_urls) > MAX_URLS:
            checker.add(f"{p}.reference_urls", f"must have at most {MAX_URLS} entries")
        for index, url in enumerate(value.reference_urls[:MAX_URLS]):
            parts = urlsplit(url) if len(url) <= 2000 else None
            if parts is None or parts.scheme not in ("http", "https") or not parts.netloc or " " in url:
                checker.add(f"{p}.reference_urls[{index}]", "must be an http(s) URL of at most 2000 characters")
    aliases: list[Alias] = []
    if "aliases" in fields:
        if len(value.aliases) > MAX_ALIASES:
            checker.add(f"{p}.aliases", f"must have at most {MAX_ALIASES} entries")
        for index, alias in enumerate(value.aliases[:MAX_ALIASES]):
            f = f"{p}.aliases[{index}]"
            before = len(checker.violations)
            checker.text(f"{f}.value", alias.value, max_len=200, required=True)
            key = normalize(alias.value)
            if alias.value.strip() and not key and len(checker.violations) == before:
                checker.add(f"{f}.value", "must contain a letter or digit")
            elif len(checker.violations) == before:
                _check_key(checker, f"{f}.value", alias.value, key)
            if not alias.language or "_" in alias.language or not langcodes.tag_is_valid(alias.language):
                checker.add(f"{f}.language", "must be a BCP 47 language tag such as ja, ja-Latn or en")
            kind = alias.kind
            if isinstance(kind, Unreadable):
                checker.add(f"{f}.kind", kind.description)
                kind = None
            aliases.append(
                Alias(
                    value=alias.value.strip(),
                    language=alias.language,
                    kind=kind or AliasKind.NICKNAME,
                    ambiguous=alias.ambiguous,
                    normalized=key,
                    derived=alias.derived,
                )
            )
    if "keyword_sets" in fields:
        check_keyword_sets(checker, value.keyword_sets, f"{p}.keyword_sets")
    return tuple(aliases)
