"""``PreviewTerms``: the decisions ``Authorize`` made about one character, replayed under proposed
terms, counted by licensee and reason.

What is replayed comes from the decisions per hour (``domain.decision_history``), kept from the
receipts as they are logged: per character, hour, licensee, use and outcome, how many. A decision
whose outcome the character's terms made (allowed, or denied only for failed terms other than a
used-up quota) is evaluated again with `CompiledTerms.evaluate` under the proposed terms, as if
its grant carried them (as ``SimulateUse`` does with a licensee); the others (no grant, a revoked
or expired grant, the character or the licensee not in a state to use, a quota) are counted as not
replayed, since no terms would change them. The work is bounded by the distinct uses, not by the
decisions: rows are summed over the window by the database, and each distinct (licensee, use,
outcome) is evaluated once, or once per part of the window when the proposed terms' validity
window starts or ends inside it (the window is applied at the start of each hour).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from charter.terms import CompiledTerms, DenyReason, UseContext
from charter.territories import territory_code
from charter.v1 import terms_pb2

from charter_server.domain import ids
from charter_server.domain.clock import Clock
from charter_server.domain.decision_history import DecisionTally, hour_of, start_of
from charter_server.domain.errors import NotFound, PermissionDenied
from charter_server.domain.models import Principal, Role
from charter_server.services.authorization.simulate import ProposedTerms
from charter_server.services.ownership import not_owned
from charter_server.services.terms_rules import check_terms
from charter_server.services.validation import Checker
from charter_server.storage.database import Database

DEFAULT_DAYS = 30
"""The window replayed when the request names none."""
MAX_DAYS = 90
"""The longest window (decisions per hour are kept that long)."""
_REPLAYABLE = frozenset(list(DenyReason)[: list(DenyReason).index(DenyReason.QUOTA_EXHAUSTED)])


@dataclass(frozen=True, slots=True)
class PreviewCommand:
    """One ``PreviewTerms`` request: the proposed terms, and the days to replay (0: the default)."""

    proposed: ProposedTerms | None
    days: int = 0


@dataclass(frozen=True, slots=True)
class TermsChange:
    """Decisions of one licensee whose answer the proposed terms change, for one reason.

    Attributes:
        would_deny: True: allowed then, denied now (``reason`` the first term failed); False:
            denied then for failed terms, allowed now (``reason`` the first reason then).
        licensee_id: The licensee.
        licensee_display_name: Its display name.
        reason: The reason.
        decisions: How many.
    """

    would_deny: bool
    licensee_id: str
    licensee_display_name: str
    reason: DenyReason
    decisions: int


@dataclass(frozen=True, slots=True)
class PreviewResult:
    """The answer (see ``PreviewTermsResponse``)."""

    replayed: int
    allowed_then: int
    would_deny: int
    would_allow: int
    not_replayed: int
    changes: list[TermsChange]
    start_time: datetime
    end_time: datetime


class TermsPreviewer:
    """Answers ``PreviewTerms``; see the module documentation."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def preview(self, principal: Principal, command: PreviewCommand) -> PreviewResult:
        """Replay the character's decisions of the window under the proposed terms.

        Raises:
            PermissionDenied: The role may not preview terms, or a rights holder names a character
                that is not its own (or does not exist).
            InvalidArgument: A field is invalid (each one named).
            NotFound: (For staff) the character does not exist.
        """
        if principal.role not in (Role.ADMIN, Role.AUDITOR, Role.RIGHTS_HOLDER):
            raise PermissionDenied("this role may not preview terms", reason="ROLE_NOT_PERMITTED")
        proposed = _validate(command)
        days = command.days or DEFAULT_DAYS
        now = self._clock.now()
        first_hour, end_hour = hour_of(now - timedelta(days=days)), hour_of(now) + 1
        compiled = CompiledTerms.from_terms(proposed.terms)
        with self._db.uow() as uow:
            character = uow.characters.get(proposed.character_id)
            if principal.role is Role.RIGHTS_HOLDER:
                if character is None or character.rights_holder_id != principal.rights_holder_id:
                    raise not_owned()
            elif character is None:
                raise NotFound("no such character", reason="CHARACTER_NOT_FOUND")
            parts = [
                (start, uow.decisions.tallies(proposed.character_id, start, end))
                for start, end in _parts(proposed.terms, first_hour, end_hour)
            ]
            licensee_ids = sorted({t.licensee_id for _, tallies in parts for t in tallies})
            licensees = uow.licensees.get_many(licensee_ids) if licensee_ids else {}
        platforms = {lid: licensee.platform for lid, licensee in licensees.items()}
        counts = Counter[str]()
        changes = Counter[tuple[bool, str, DenyReason]]()
        for start, tallies in parts:
            when = start_of(start)
            for tally in tallies:
                then = _replayable(tally)
                if then is None:
                    counts["not_replayed"] += tally.decisions
                    continue
                counts["replayed"] += tally.decisions
                counts["allowed_then"] += tally.decisions if tally.allowed else 0
                use = tally.use
                context = UseContext(
                    use.use_type,
                    use.content_rating,
                    when,
                    categories=use.categories,
                    territory=use.territory,
                    platform=platforms.get(tally.licensee_id, ""),
                    licensee_id=tally.licensee_id,
                    commercial=use.commercial,
                    co_characters=use.co_characters,
                )
                now_reasons = compiled.evaluate(context).reasons
                if tally.allowed and now_reasons:
                    counts["would_deny"] += tally.decisions
                    changes[(True, tally.licensee_id, now_reasons[0])] += tally.decisions
                elif not tally.allowed and not now_reasons:
                    counts["would_allow"] += tally.decisions
                    changes[(False, tally.licensee_id, then[0])] += tally.decisions
        names = {lid: licensee.display_name for lid, licensee in licensees.items()}
        ordered = sorted(changes.items(), key=lambda item: (-item[1], not item[0][0], item[0][1], item[0][2].value))
        return PreviewResult(
            replayed=counts["replayed"],
            allowed_then=counts["allowed_then"],
            would_deny=counts["would_deny"],
            would_allow=counts["would_allow"],
            not_replayed=counts["not_replayed"],
            changes=[
                TermsChange(deny, licensee_id, names.get(licensee_id, ""), reason, count)
                for (deny, licensee_id, reason), count in ordered
            ],
            start_time=start_of(first_hour),
            end_time=now,
        )


def _validate(command: PreviewCommand) -> ProposedTerms:
    checker = Checker()
    proposed = command.proposed
    if proposed is None:
        checker.add("proposed", "is required")
    else:
        if not ids.is_valid("character", proposed.character_id):
            checker.add("proposed.character_id", "must be a character id (chr_ and 32 hex digits)")
        check_terms(checker, proposed.terms, "proposed.terms", character_id=proposed.character_id)
    if not 0 <= command.days <= MAX_DAYS:
        checker.add("days", f"must be from 1 to {MAX_DAYS} (0 for {DEFAULT_DAYS})")
    checker.done()
    assert proposed is not None
    return proposed


def _parts(terms: terms_pb2.Terms, first_hour: int, end_hour: int) -> Iterator[tuple[int, int]]:
    """The window's hours cut where the terms' validity window starts or ends, so that within each
    part the window decides every hour alike (a bound inside an hour counts from the next one)."""
    cuts = {first_hour, end_hour}
    for field in ("valid_from", "valid_until"):
        if terms.HasField(field):
            bound = getattr(terms, field).ToDatetime(tzinfo=UTC)
            hour = -(-int(bound.timestamp()) // 3600)  # the first hour starting at or after it
            if first_hour < hour < end_hour:
                cuts.add(hour)
    ordered = sorted(cuts)
    yield from itertools.pairwise(ordered)


def _replayable(tally: DecisionTally) -> tuple[DenyReason, ...] | None:
    """The reasons decided then (empty when allowed), or None when the terms did not decide it or
    it cannot be asked again (a territory recorded before territories had to be ASCII)."""
    try:
        reasons = tuple(DenyReason(name) for name in tally.outcome)
        territory_code(tally.use.territory)
    except ValueError:  # a reason this server does not know, or such a territory
        return None
    return reasons if all(reason in _REPLAYABLE for reason in reasons) else None
