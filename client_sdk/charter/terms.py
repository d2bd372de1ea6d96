"""Terms evaluation: may this use of a character go ahead under these terms, and what does it owe?

The same pure code decides on the server (``Authorize``) and in the SDK's offline authorizer. It
does no I/O and keeps no clock: the caller passes the time in the `UseContext` and says whether a
quota is exhausted (quotas are counted by whoever records the uses).

`CompiledTerms.from_terms` turns a ``charter.v1.Terms`` message into frozensets and bounds once,
so that `CompiledTerms.evaluate` is a handful of set look-ups and comparisons. An allowed use
gets the obligations of the terms; a denied use gets **every** failed term, as `DenyReason`
values in their declaration order. The rules, one per reason:

1. ``USE_TYPE_NOT_PERMITTED``: the use type is not one of ``permitted_use_types``
   (``USE_TYPE_UNSPECIFIED`` never is).
2. ``RATING_EXCEEDS_TERMS``: the content rating is above ``max_content_rating`` on the ladder
   ALL_AGES < TEEN < MATURE < ADULT. An unspecified rating counts as ADULT and a rating not on
   the ladder is above every maximum (fail closed); terms without a maximum permit no rating.
3. ``CATEGORY_PROHIBITED``: a flagged content category is in ``prohibited_categories``.
4. ``TERRITORY_NOT_LICENSED``: the territory is in ``excluded_territories`` (which wins), or
   ``allowed_territories`` is not empty and the territory is not in it, or the context names no
   territory while the terms restrict territories at all. Codes compare upper case.
5. ``COMMERCIAL_USE_NOT_PERMITTED``: a commercial use under terms without
   ``commercial_use_allowed``.
6. ``CO_APPEARANCE_PROHIBITED``: one of the other characters in the content is in
   ``prohibited_co_appearance_ids``.
7. ``OUTSIDE_VALIDITY_WINDOW``: the time is before ``valid_from`` (inclusive) or at or after
   ``valid_until`` (exclusive); an unset bound does not limit.
8. ``LICENSEE_NOT_PERMITTED``: ``allowed_licensee_ids`` is not empty and the licensee is not in
   it (an empty licensee id never is).
9. ``PLATFORM_NOT_PERMITTED``: ``allowed_platforms`` is not empty and the platform is not in it
   (an empty platform never is).
10. ``QUOTA_EXHAUSTED``: the caller says a quota is exhausted, or ``daily_quota`` or
    ``monthly_quota`` is set to 0 (or less), which permits no use at all.

Example:
    ```python
    from datetime import UTC, datetime

    from charter.terms import CompiledTerms, UseContext
    from charter.v1 import terms_pb2

    compiled = CompiledTerms.from_terms(terms)  # once per terms version
    context = UseContext(
        terms_pb2.USE_TYPE_VIDEO_GENERATION,
        terms_pb2.CONTENT_RATING_TEEN,
        datetime.now(UTC),
        territory="JP",
        platform="video-app",
        licensee_id="lic_...",
    )
    result = compiled.evaluate(context)
    if not result.allowed:
        print([str(reason) for reason in result.reasons])
    ```
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from google.protobuf.timestamp_pb2 import Timestamp

from charter._slots import slot_setters
from charter.territories import territory_code
from charter.v1.terms_pb2 import (
    CONTENT_RATING_ADULT,
    CONTENT_RATING_ALL_AGES,
    CONTENT_RATING_MATURE,
    CONTENT_RATING_TEEN,
    CONTENT_RATING_UNSPECIFIED,
    USE_TYPE_UNSPECIFIED,
    Terms,
)

__all__ = ["CompiledTerms", "DenyReason", "Evaluation", "Obligations", "UseContext", "evaluate"]


class DenyReason(enum.StrEnum):
    """Why a use is denied: a failed term (``USE_TYPE_NOT_PERMITTED`` to ``QUOTA_EXHAUSTED``) or one
    of the authorization's own reasons (the rest). The declaration order is the order of the
    ``charter.v1.DenyReason`` values and the order in which reasons are reported."""

    USE_TYPE_NOT_PERMITTED = "USE_TYPE_NOT_PERMITTED"
    """The use type is not one the terms permit."""
    RATING_EXCEEDS_TERMS = "RATING_EXCEEDS_TERMS"
    """The content rating is above the terms' maximum (or unknown)."""
    CATEGORY_PROHIBITED = "CATEGORY_PROHIBITED"
    """A flagged content category is prohibited by the terms."""
    TERRITORY_NOT_LICENSED = "TERRITORY_NOT_LICENSED"
    """The territory is excluded, not among the allowed ones, or missing where the terms restrict territories."""
    COMMERCIAL_USE_NOT_PERMITTED = "COMMERCIAL_USE_NOT_PERMITTED"
    """The use is commercial and the terms do not permit commercial use."""
    CO_APPEARANCE_PROHIBITED = "CO_APPEARANCE_PROHIBITED"
    """Another character in the same content is one this character may not appear with."""
    OUTSIDE_VALIDITY_WINDOW = "OUTSIDE_VALIDITY_WINDOW"
    """The time is before ``valid_from`` or at or after ``valid_until``."""
    LICENSEE_NOT_PERMITTED = "LICENSEE_NOT_PERMITTED"
    """The terms name the only licensees permitted, and this licensee is not one of them."""
    PLATFORM_NOT_PERMITTED = "PLATFORM_NOT_PERMITTED"
    """The terms name the only platforms permitted, and this platform is not one of them."""
    QUOTA_EXHAUSTED = "QUOTA_EXHAUSTED"
    """A daily or monthly quota is used up, or is 0."""
    # The reasons below are not terms: `CompiledTerms.evaluate` never returns them. They come from
    # an authorization (``Authorize`` or the SDK's offline authorizer) and mirror the values of
    # ``charter.v1.DenyReason`` of the same name.
    CHARACTER_NOT_OPTED_IN = "CHARACTER_NOT_OPTED_IN"
    """The character is not opted in (never was, or opted out)."""
    CHARACTER_SUSPENDED = "CHARACTER_SUSPENDED"
    """The character is suspended by Charter staff."""
    NO_GRANT = "NO_GRANT"
    """The licensee holds no grant for the character."""
    GRANT_REVOKED = "GRANT_REVOKED"
    """The grant has been revoked."""
    GRANT_SUSPENDED = "GRANT_SUSPENDED"
    """The grant is suspended."""
    GRANT_EXPIRED = "GRANT_EXPIRED"
    """The grant has expired."""
    GRANT_NOT_YET_VALID = "GRANT_NOT_YET_VALID"
    """The grant is not valid yet."""
    GRANT_INVALID = "GRANT_INVALID"
    """A presented grant does not verify (key, signature, or another licensee's grant)."""
    LICENSEE_ARCHIVED = "LICENSEE_ARCHIVED"
    """The licensee is archived."""
    SERVER_UNREACHABLE = "SERVER_UNREACHABLE"
    """The SDK could not decide offline and could not reach the server: it failed closed."""
    SNAPSHOT_STALE = "SNAPSHOT_STALE"
    """The SDK's registry snapshot is older than its staleness bound (never sent by the server)."""
    REVOCATIONS_STALE = "REVOCATIONS_STALE"
    """The SDK's revocation view is too old and the server could not refresh it (SDK only)."""
    LEASE_EXPIRED = "LEASE_EXPIRED"
    """The quota lease the use would be spent from expired or is spent, and no new one could be leased (SDK only)."""
    UNKNOWN_KEY = "UNKNOWN_KEY"
    """A grant's signing key is not in the SDK's key set, or it holds no licensee key to sign with (SDK only)."""
    CACHE_CORRUPTED = "CACHE_CORRUPTED"
    """The SDK's cache failed its integrity check and the server could not be reached (SDK only)."""
    SNAPSHOT_INVALID = "SNAPSHOT_INVALID"
    """The registry snapshot the SDK was given does not verify, and the server could not be reached (SDK only)."""


# One bit per terms reason, in declaration order, so a set of failed terms is one int and its
# reasons come out in declaration order by walking the bits upwards.
_REASONS: Final = tuple(DenyReason)[: list(DenyReason).index(DenyReason.QUOTA_EXHAUSTED) + 1]
_USE_TYPE, _RATING, _CATEGORY, _TERRITORY, _COMMERCIAL, _CO_APPEARANCE, _WINDOW, _LICENSEE, _PLATFORM, _QUOTA = (
    1 << i for i in range(len(_REASONS))
)

_LADDER: Final = (CONTENT_RATING_ALL_AGES, CONTENT_RATING_TEEN, CONTENT_RATING_MATURE, CONTENT_RATING_ADULT)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_TIME: Final = datetime.min.replace(tzinfo=UTC)
_MIN_MICROS: Final = (_MIN_TIME - _EPOCH) // timedelta(microseconds=1)
_MAX_MICROS: Final = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
_NO_CATEGORIES: Final[frozenset[int]] = frozenset()
_NO_CHARACTERS: Final[frozenset[str]] = frozenset()


def in_utc(time: datetime) -> datetime:
    """A use's time as `UseContext` holds it: in UTC.

    Raises:
        ValueError: When ``time`` is naive.
    """
    if time.tzinfo is None or time.utcoffset() is None:
        raise ValueError("UseContext.time must be timezone-aware")
    return time.astimezone(UTC)


@dataclasses.dataclass(frozen=True, slots=True, init=False)
class UseContext:
    """One intended use of a character, as the generation service describes it.

    The first three fields may be given by position; the rest are keyword-only. Construction
    normalises: the time to UTC, the territory to upper case, and any iterable of categories or
    co-characters to a frozenset.

    Attributes:
        use_type: A ``charter.v1.UseType`` value.
        content_rating: A ``charter.v1.ContentRating`` value. ``CONTENT_RATING_UNSPECIFIED``
            counts as ``CONTENT_RATING_ADULT`` (fail closed).
        time: When the use happens; timezone-aware, stored in UTC.
        categories: ``charter.v1.ContentCategory`` values the service's own classifiers flagged.
        territory: The ISO 3166-1 alpha-2 code of where the content is served, stored upper case.
            Empty when unknown, which fails any terms that restrict territories.
        platform: The licensee's platform slug.
        licensee_id: The licensee making the use.
        commercial: Whether the use is commercial (advertising, paid products, monetised content).
        duration_seconds: The length of the content, for usage records; no term limits it.
        co_characters: The ids of the other characters in the same content.
    """

    use_type: int
    content_rating: int
    time: datetime
    _: dataclasses.KW_ONLY
    categories: frozenset[int] = frozenset()
    territory: str = ""
    platform: str = ""
    licensee_id: str = ""
    commercial: bool = False
    duration_seconds: float = 0.0
    co_characters: frozenset[str] = frozenset()

    def __init__(
        self,
        use_type: int,
        content_rating: int,
        time: datetime,
        *,
        categories: Iterable[int] = _NO_CATEGORIES,
        territory: str = "",
        platform: str = "",
        licensee_id: str = "",
        commercial: bool = False,
        duration_seconds: float = 0.0,
        co_characters: Iterable[str] = _NO_CHARACTERS,
    ) -> None:
        """Describe a use; see the class attributes.

        Raises:
            ValueError: When ``time`` is naive, or ``territory`` is neither empty nor two ASCII
                letters (`charter.territories.territory_code`).
        """
        # Written out rather than generated by dataclasses: a frozen dataclass sets each field
        # through object.__setattr__, which made construction cost several evaluations. The
        # slots' own descriptors set them at about half the cost (a test pins the signature to
        # the fields). `charter._use_context` normalises the same way, by position.
        if time.tzinfo is not UTC:  # checked here: the call is paid only by other zones
            time = in_utc(time)
        _set_use_type(self, use_type)
        _set_content_rating(self, content_rating)
        _set_time(self, time)
        _set_categories(self, categories if type(categories) is frozenset else frozenset(categories))
        _set_territory(self, territory_code(territory))
        _set_platform(self, platform)
        _set_licensee_id(self, licensee_id)
        _set_commercial(self, commercial)
        _set_duration_seconds(self, duration_seconds)
        _set_co_characters(self, co_characters if type(co_characters) is frozenset else frozenset(co_characters))


_SLOTS: Final[dict[str, Any]] = {name: UseContext.__dict__[name] for name in UseContext.__slots__}
_set_use_type: Final = _SLOTS["use_type"].__set__
_set_content_rating: Final = _SLOTS["content_rating"].__set__
_set_time: Final = _SLOTS["time"].__set__
_set_categories: Final = _SLOTS["categories"].__set__
_set_territory: Final = _SLOTS["territory"].__set__
_set_platform: Final = _SLOTS["platform"].__set__
_set_licensee_id: Final = _SLOTS["licensee_id"].__set__
_set_commercial: Final = _SLOTS["commercial"].__set__
_set_duration_seconds: Final = _SLOTS["duration_seconds"].__set__
_set_co_characters: Final = _SLOTS["co_characters"].__set__


@dataclasses.dataclass(frozen=True, slots=True, init=False)
class Obligations:
    """What an allowed use owes the rights holder.

    Attributes:
        attribution_text: Attribution that must accompany the content; empty when none.
        watermark_required: Whether the content must carry a visible or embedded watermark.
        revenue_share_bps: The rights holder's share of attributed revenue, in basis points.
        per_use_fee_minor_units: The fee per use in minor units of ``per_use_fee_currency``;
            0 when none.
        per_use_fee_currency: The ISO 4217 code of the fee (upper case); empty when no fee is set.
    """

    attribution_text: str
    watermark_required: bool
    revenue_share_bps: int
    per_use_fee_minor_units: int
    per_use_fee_currency: str

    def __init__(
        self,
        attribution_text: str,
        watermark_required: bool,
        revenue_share_bps: int,
        per_use_fee_minor_units: int,
        per_use_fee_currency: str,
    ) -> None:
        # Written out (as `UseContext`): the slots' own descriptors set the fields at about half
        # the cost of the generated frozen __init__, and every cold decision compiles terms.
        _set_attribution_text(self, attribution_text)
        _set_watermark_required(self, watermark_required)
        _set_revenue_share_bps(self, revenue_share_bps)
        _set_per_use_fee_minor_units(self, per_use_fee_minor_units)
        _set_per_use_fee_currency(self, per_use_fee_currency)


(
    _set_attribution_text,
    _set_watermark_required,
    _set_revenue_share_bps,
    _set_per_use_fee_minor_units,
    _set_per_use_fee_currency,
) = slot_setters(Obligations)


@dataclasses.dataclass(frozen=True, slots=True, init=False)
class Evaluation:
    """The outcome of evaluating terms against a use.

    Attributes:
        allowed: Whether the use may go ahead.
        reasons: When denied, every failed term, in `DenyReason` declaration order and without
            duplicates; empty when allowed.
        obligations: When allowed, what the use owes; None when denied.
    """

    allowed: bool
    reasons: tuple[DenyReason, ...]
    obligations: Obligations | None

    def __init__(self, allowed: bool, reasons: tuple[DenyReason, ...], obligations: Obligations | None) -> None:
        # Written out, as `Obligations`.
        _set_allowed(self, allowed)
        _set_reasons(self, reasons)
        _set_obligations(self, obligations)


_set_allowed, _set_reasons, _set_obligations = slot_setters(Evaluation)


# Denials carry no obligations, so one Evaluation per combination of failed terms serves every
# CompiledTerms; they are made on first use (at most 2**10 of them).
_DENIALS: dict[int, Evaluation] = {}


def _denial(failed: int) -> Evaluation:
    denial = _DENIALS.get(failed)
    if denial is None:
        reasons = tuple(reason for bit, reason in enumerate(_REASONS) if failed >> bit & 1)
        denial = _DENIALS.setdefault(failed, Evaluation(allowed=False, reasons=reasons, obligations=None))
    return denial


def _bound(stamp: Timestamp) -> datetime | None:
    """A Timestamp rounded up to whole microseconds, or None when it lies beyond the datetime range.

    Rounding up is exact for both bounds, as every datetime is a whole number of microseconds:
    ``t >= from`` exactly when ``t >= ceil(from)``, and ``t < until`` exactly when
    ``t < ceil(until)``. Below the range it clamps to the earliest datetime.
    """
    micros = -(-(stamp.seconds * 1_000_000_000 + stamp.nanos) // 1000)
    if micros > _MAX_MICROS:
        return None
    return _EPOCH + timedelta(microseconds=max(micros, _MIN_MICROS))


_NOTHING: Final[frozenset[Any]] = frozenset()
_UNSPECIFIED_USE: Final = frozenset({USE_TYPE_UNSPECIFIED})
_NO_TERRITORY: Final = frozenset({""})
_RATINGS_UP_TO: dict[int, frozenset[int]] = {}


def _ratings_up_to(maximum: int) -> frozenset[int]:
    """The ratings a ``max_content_rating`` permits (an unspecified rating counts as ADULT);
    computed once per value."""
    found = _RATINGS_UP_TO.get(maximum)
    if found is None:
        ratings = {rating for rating in _LADDER if rating <= maximum}
        if CONTENT_RATING_ADULT in ratings:
            ratings.add(CONTENT_RATING_UNSPECIFIED)
        found = _RATINGS_UP_TO.setdefault(maximum, frozenset(ratings))
    return found


def _ids(values: Iterable[str]) -> frozenset[str]:
    """Ids of a restricting list; an empty id matches nothing, so it is left out."""
    return frozenset(filter(None, values))  # (no generator: a cold decision compiles terms)


class CompiledTerms:
    """Terms prepared for fast, repeated evaluation. Immutable and safe to share between threads.

    Attributes:
        version: The terms version (``Terms.version``).
        character_id: The character the terms are for (``Terms.character_id``).
        obligations: What every allowed use owes under these terms.
        daily_quota: Uses per licensee per UTC day; None when unlimited.
        monthly_quota: Uses per licensee per UTC calendar month; None when unlimited.
    """

    __slots__ = (
        "_allowed",
        "_categories",
        "_co_appearance",
        "_commercial",
        "_has_window",
        "_licensees",
        "_platforms",
        "_quota_closed",
        "_ratings",
        "_seldom",
        "_territory_allow",
        "_territory_deny",
        "_until",
        "_use_types",
        "_valid_from",
        "character_id",
        "daily_quota",
        "monthly_quota",
        "obligations",
        "version",
    )

    def __init__(self, terms: Terms) -> None:
        """Compile ``terms``; prefer the equivalent `CompiledTerms.from_terms`.

        Args:
            terms: The terms, as stored or as carried in grant claims.
        """
        # Each field is read once (a protobuf attribute read costs as much as a dict look-up or
        # two) and empty lists share one empty set: grants are compiled on a cold decision.
        self.version = terms.version
        self.character_id = terms.character_id
        # A repeated field is read whole with a slice (a list): iterating the container itself
        # goes through its item look-up until an IndexError, whose message is formatted each time.
        use_types = terms.permitted_use_types
        if use_types:
            found = frozenset(use_types[:])
            self._use_types = found - _UNSPECIFIED_USE if USE_TYPE_UNSPECIFIED in found else found
        else:
            self._use_types = _NOTHING
        self._ratings = _ratings_up_to(terms.max_content_rating)
        categories = terms.prohibited_categories
        self._categories = frozenset(categories[:]) if categories else _NOTHING
        # Territories reduce to one look-up: with an allow list, the allowed minus the excluded
        # (and minus "", so that a missing territory fails); without one, the excluded plus "".
        allowed_territories, excluded_territories = terms.allowed_territories, terms.excluded_territories
        if allowed_territories:
            excluded = frozenset(map(str.upper, excluded_territories[:])) if excluded_territories else _NOTHING
            self._territory_allow: frozenset[str] | None = (
                frozenset(map(str.upper, allowed_territories[:])) - _NO_TERRITORY - excluded
            )
            self._territory_deny: frozenset[str] | None = None
        else:
            self._territory_allow = None
            self._territory_deny = (
                frozenset([*map(str.upper, excluded_territories[:]), ""]) if excluded_territories else None
            )
        self._commercial = terms.commercial_use_allowed
        co_appearance = terms.prohibited_co_appearance_ids
        self._co_appearance = frozenset(co_appearance[:]) if co_appearance else _NOTHING
        licensees, platforms = terms.allowed_licensee_ids, terms.allowed_platforms
        self._licensees = _ids(licensees[:]) if licensees else None
        self._platforms = _ids(platforms[:]) if platforms else None
        valid_from = until = None
        if terms.HasField("valid_from"):
            valid_from = _bound(terms.valid_from)
            if valid_from is None:
                until = _MIN_TIME  # starts after the last datetime: never valid
        if until is None and terms.HasField("valid_until"):
            until = _bound(terms.valid_until)
        self._valid_from = valid_from
        self._until = until
        self._has_window = valid_from is not None or until is not None
        daily = terms.daily_quota if terms.HasField("daily_quota") else None
        monthly = terms.monthly_quota if terms.HasField("monthly_quota") else None
        self.daily_quota = daily
        self.monthly_quota = monthly
        self._quota_closed = (daily is not None and daily <= 0) or (monthly is not None and monthly <= 0)
        # Whether any of the terms that `_seldom_failures` checks restricts anything.
        self._seldom = bool(self._categories or self._co_appearance or self._has_window or self._quota_closed)
        self._seldom = self._seldom or self._licensees is not None
        fee = terms.per_use_fee
        # By position: a keyword call of a class builds a dict of the arguments.
        obligations = Obligations(
            terms.attribution_text,
            terms.watermark_required,
            terms.revenue_share_bps,
            fee.minor_units,
            fee.currency_code.upper(),
        )
        self.obligations = obligations
        self._allowed = Evaluation(True, (), obligations)

    @classmethod
    def from_terms(cls, terms: Terms) -> CompiledTerms:
        """Compile ``terms`` once, to evaluate many uses against them.

        Args:
            terms: The terms, as stored or as carried in grant claims.

        Returns:
            The compiled terms.
        """
        return cls(terms)

    def relabelled(self, version: int, character_id: str) -> CompiledTerms:
        """These compiled terms under another ``version`` and ``character_id``, which nothing else
        depends on (`charter.terms_sharing`); the rest is shared, not copied.

        Args:
            version: The terms version.
            character_id: The character.

        Returns:
            New compiled terms that evaluate every use as these do.
        """
        other = CompiledTerms.__new__(CompiledTerms)
        other.version = version
        other.character_id = character_id
        other.daily_quota = self.daily_quota
        other.monthly_quota = self.monthly_quota
        other.obligations = self.obligations
        other._allowed = self._allowed
        other._use_types = self._use_types
        other._ratings = self._ratings
        other._categories = self._categories
        other._territory_allow = self._territory_allow
        other._territory_deny = self._territory_deny
        other._commercial = self._commercial
        other._co_appearance = self._co_appearance
        other._licensees = self._licensees
        other._platforms = self._platforms
        other._valid_from = self._valid_from
        other._until = self._until
        other._has_window = self._has_window
        other._quota_closed = self._quota_closed
        other._seldom = self._seldom
        return other

    def evaluate(self, context: UseContext, *, quota_exhausted: bool = False) -> Evaluation:
        """Decide whether ``context`` satisfies these terms.

        Args:
            context: The intended use.
            quota_exhausted: Whether the caller's count of uses has reached a quota of the terms.

        Returns:
            On allow, a shared `Evaluation` carrying the obligations; on deny, one naming every
            failed term in `DenyReason` order.
        """
        return self.evaluate_by_position(context, quota_exhausted)

    def evaluate_by_position(self, context: UseContext, quota_exhausted: bool = False) -> Evaluation:
        """`evaluate` by position, for `charter.decide` (a call that leaves a keyword-only argument
        to its default is not specialized by the interpreter, which looks the default up by name)."""
        failed = 0
        if context.use_type not in self._use_types:
            failed = _USE_TYPE
        if context.content_rating not in self._ratings:
            failed |= _RATING
        if self._territory_allow is not None:
            if context.territory not in self._territory_allow:
                failed |= _TERRITORY
        elif self._territory_deny is not None and context.territory in self._territory_deny:
            failed |= _TERRITORY
        if context.commercial and not self._commercial:
            failed |= _COMMERCIAL
        if self._platforms is not None and context.platform not in self._platforms:
            failed |= _PLATFORM
        if self._seldom or quota_exhausted:
            failed |= self._seldom_failures(context, quota_exhausted)
        if failed:
            return _DENIALS.get(failed) or _denial(failed)
        return self._allowed

    def _seldom_failures(self, context: UseContext, quota_exhausted: bool) -> int:
        """The failed terms among those few terms restrict: apart, so that terms without them (the
        usual) pass them with one test (evaluating is about a sixth of a warm offline decision)."""
        failed = 0
        if self._categories and not self._categories.isdisjoint(context.categories):
            failed = _CATEGORY
        if self._co_appearance and not self._co_appearance.isdisjoint(context.co_characters):
            failed |= _CO_APPEARANCE
        if self._has_window:
            time = context.time
            if (self._valid_from is not None and time < self._valid_from) or (
                self._until is not None and time >= self._until
            ):
                failed |= _WINDOW
        if self._licensees is not None and context.licensee_id not in self._licensees:
            failed |= _LICENSEE
        if quota_exhausted or self._quota_closed:
            failed |= _QUOTA
        return failed

    def __repr__(self) -> str:
        return f"CompiledTerms(character_id={self.character_id!r}, version={self.version})"


def evaluate(terms: Terms, context: UseContext, *, quota_exhausted: bool = False) -> Evaluation:
    """Evaluate ``terms`` against ``context`` without keeping the compiled form.

    Compiling costs more than evaluating; to decide many uses under the same terms, compile them
    once with `CompiledTerms.from_terms`.

    Args:
        terms: The terms.
        context: The intended use.
        quota_exhausted: Whether the caller's count of uses has reached a quota of the terms.

    Returns:
        The same `Evaluation` as ``CompiledTerms.from_terms(terms).evaluate(context, ...)``.
    """
    return CompiledTerms.from_terms(terms).evaluate(context, quota_exhausted=quota_exhausted)
