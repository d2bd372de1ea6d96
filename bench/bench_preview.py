"""Benchmark: ``PreviewTerms`` over 30 days of 1 million decisions about one character, next to a
plain read of the same character, same run.

Target (issue 15): ``PreviewTerms`` over 30 days of 1 million decisions ≤ 2 s.

Per backend (``--backend``; PostgreSQL in a fresh database of ``CHARTER_BENCH_POSTGRES_URL``,
created and dropped by the run), a Charter server built in this process by the production
composition root, and through its real services: a rights holder, one opted-in character and
``--licensees`` licensees. Then ``--decisions`` decisions about the character are counted into the
decisions per hour (``decision_hours``, exactly as the receipt log counts them: the repository's
upsert, in batches) over the last 30 days: every hour, every licensee, a few of ``--uses`` distinct
use contexts (use type, rating, territory, commercial), most allowed, some denied for failed terms
or for having no grant. What is timed is the service call a ``PreviewTerms`` RPC makes
(`AuthorizationService.preview_terms`, in process: server time, no network), with proposed terms
that change some answers; and the same with a validity window ending in the middle of the 30 days
(two parts of the window summed apart). The baseline is a read of the character in its own
transaction, the cheapest thing a request of the console does. Printed: rows, decisions, p50 and
p95 of ``--rounds`` calls, the ratio to the baseline, and the verdict.

    .venv/bin/python bench/bench_preview.py                 # both backends
    .venv/bin/python bench/bench_preview.py --quick         # 50,000 decisions, a smoke run
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BACKENDS, charter_server, fresh_database, line, machine, quiet_logs, today
from charter.v1 import terms_pb2
from charter_server.domain.decision_history import DecidedUse, DecisionTally, hour_of
from charter_server.domain.models import Principal, Role
from charter_server.services.authorization import PreviewCommand, ProposedTerms
from charter_server.services.catalog import LicenseeInput, RightsHolderInput
from charter_server.services.character_inputs import CharacterInput
from charter_server.storage.database import Database
from charter_server.storage.tables import DecisionHourRow
from google.protobuf import timestamp_pb2
from sqlalchemy import func, select

TARGET_SECONDS = 2.0
IMAGE, VIDEO = terms_pb2.USE_TYPE_IMAGE_GENERATION, terms_pb2.USE_TYPE_VIDEO_GENERATION
TERMS = terms_pb2.Terms(
    permitted_use_types=[IMAGE, VIDEO],
    max_content_rating=terms_pb2.CONTENT_RATING_TEEN,
    commercial_use_allowed=True,
    revenue_share_bps=1_000,
)
TERRITORIES = ("JP", "US", "FR", "KR", "")
BATCH = 20_000


def _uses(count: int) -> list[tuple[DecidedUse, tuple[str, ...]]]:
    """Distinct use contexts with the outcome the character's terms gave them."""
    found = []
    for n in range(count):
        use_type = (IMAGE, VIDEO, terms_pb2.USE_TYPE_INTERACTIVE)[n % 3]
        rating = (terms_pb2.CONTENT_RATING_ALL_AGES, terms_pb2.CONTENT_RATING_TEEN, terms_pb2.CONTENT_RATING_MATURE)[
            n // 3 % 3
        ]
        use = DecidedUse(use_type, rating, (), TERRITORIES[n % len(TERRITORIES)], n % 2 == 0, ())
        reasons = []
        if use_type not in TERMS.permitted_use_types:
            reasons.append("USE_TYPE_NOT_PERMITTED")
        if rating > TERMS.max_content_rating:
            reasons.append("RATING_EXCEEDS_TERMS")
        found.append((use, tuple(reasons)))
    return found


def _fill(db: Database, character_id: str, licensees: list[str], decisions: int, uses: int, now: datetime) -> int:
    """Count ``decisions`` decisions into the last 30 days' hours; how many rows they made."""
    rng = random.Random(7)
    contexts = _uses(uses)
    first = hour_of(now - timedelta(days=30)) + 1
    hours = list(range(first, hour_of(now) + 1))
    # Every hour, every licensee: a few contexts, so the rows are what a busy month makes.
    cells = [(h, lic, ctx) for h in hours for lic in licensees for ctx in rng.sample(contexts, k=min(3, len(contexts)))]
    per_cell, left = divmod(decisions, len(cells))
    batch: list[DecisionTally] = []
    for number, (hour, licensee, (use, outcome)) in enumerate(cells):
        count = per_cell + (1 if number < left else 0)
        no_grant = count // 20  # some decisions the terms did not decide
        batch.append(DecisionTally(character_id, hour, licensee, use, outcome, count - no_grant))
        if no_grant:
            batch.append(DecisionTally(character_id, hour, licensee, use, ("NO_GRANT",), no_grant))
        if len(batch) >= BATCH:
            with db.uow(write=True) as uow:
                uow.decisions.add(batch)
                uow.commit()
            batch = []
    if batch:
        with db.uow(write=True) as uow:
            uow.decisions.add(batch)
            uow.commit()
    with db.uow() as uow:
        return int(uow.session.scalar(select(func.count()).select_from(DecisionHourRow)) or 0)


def _timed(call: object, rounds: int) -> list[float]:
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()  # type: ignore[operator]
        seconds.append(time.perf_counter() - started)
    return seconds


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(backend: str, args: argparse.Namespace) -> bool:
    with fresh_database(backend) as url, charter_server(url) as server:
        services = server.services
        admin = services.access.create_bootstrap_admin("bench admin")
        staff = Principal(admin.api_key.id, Role.ADMIN)
        holder = services.catalog.create_rights_holder(
            staff, RightsHolderInput(display_name="Bench Studio", contact_email="rights@bench.example")
        )
        character = services.characters.create_character(staff, CharacterInput(holder.id, "Preview Hero"))
        services.characters.opt_in(staff, character.id, TERMS)
        licensees = [
            services.catalog.create_licensee(
                staff, LicenseeInput(f"App {n}", "ops@app.example", ("web", "mobile")[n % 2])
            ).id
            for n in range(args.licensees)
        ]
        now = datetime.now(UTC)
        started = time.perf_counter()
        rows = _fill(server.db, character.id, licensees, args.decisions, args.uses, now)
        filled = time.perf_counter() - started

        narrower = terms_pb2.Terms()
        narrower.CopyFrom(TERMS)
        narrower.max_content_rating = terms_pb2.CONTENT_RATING_ALL_AGES
        del narrower.permitted_use_types[:]
        narrower.permitted_use_types.extend([IMAGE, terms_pb2.USE_TYPE_INTERACTIVE])
        windowed = terms_pb2.Terms()
        windowed.CopyFrom(narrower)
        windowed.valid_until.CopyFrom(timestamp_pb2.Timestamp(seconds=int((now - timedelta(days=15)).timestamp())))

        def preview(terms: terms_pb2.Terms) -> object:
            command = PreviewCommand(ProposedTerms(character.id, terms), 30)
            return services.authorization.preview_terms(staff, command)

        def baseline() -> object:
            with server.db.uow() as uow:
                return uow.characters.get(character.id)

        answer = preview(narrower)
        assert answer.replayed + answer.not_replayed == args.decisions, answer  # type: ignore[attr-defined]
        base = _timed(baseline, args.rounds)
        plain = _timed(lambda: preview(narrower), args.rounds)
        cut = _timed(lambda: preview(windowed), args.rounds)
        base_p50 = statistics.median(base)
        line(f"{backend}: rows / decisions", f"{rows:,} rows of decision_hours for {args.decisions:,} decisions")
        line(f"{backend}: filled in", f"{filled:.1f} s ({args.decisions / filled:,.0f} decisions/s counted)")
        line(f"{backend}: baseline (read it)", f"p50 {base_p50 * 1e3:.2f} ms")
        ok = True
        for label, seconds in (("PreviewTerms", plain), ("PreviewTerms + window", cut)):
            p95 = _p(seconds, 0.95)
            met = p95 <= TARGET_SECONDS
            ok &= met
            line(
                f"{backend}: {label}",
                f"p50 {statistics.median(seconds) * 1e3:.0f} ms, p95 {p95 * 1e3:.0f} ms, "
                f"{statistics.median(seconds) / base_p50:,.0f}x the read; target <= {TARGET_SECONDS:.0f} s: "
                f"{'met' if met else 'MISSED'}",
            )
        deny, allow, apart = answer.would_deny, answer.would_allow, answer.not_replayed  # type: ignore[attr-defined]
        line(f"{backend}: answer", f"would deny {deny:,}, would allow {allow:,}, not replayed {apart:,}")
        return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--licensees", type=int, default=20)
    parser.add_argument("--uses", type=int, default=18, help="distinct use contexts")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="50,000 decisions, 5 rounds")
    args = parser.parse_args()
    if args.quick:
        args.decisions, args.rounds = 50_000, 5
    quiet_logs()
    line("date / machine", f"{today()} {machine()}")
    backends = BACKENDS if args.backend == "both" else (args.backend,)
    results = [run(backend, args) for backend in backends]
    print("SUMMARY", "met" if all(results) else "MISSED", flush=True)


if __name__ == "__main__":
    main()
