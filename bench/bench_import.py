"""Benchmark: bulk import of a generated catalogue through ``CatalogService/ImportCharacters``.

Generates a deterministic catalogue (default 10,000 characters, three aliases each in mixed
scripts, every fourth row with terms), imports it in batches against a fresh server, checks every
row came back CREATED, then imports the same catalogue again and checks every row came back
UNCHANGED. In the same run it measures the baseline, sequential empty unary gRPC calls, before
and after the imports, and prints how many empty round trips one imported row costs.

    .venv/bin/python bench/bench_import.py                        # SQLite, 10,000 rows
    .venv/bin/python bench/bench_import.py --backend postgresql   # PostgreSQL on 127.0.0.1:5432
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import grpc
from _common import (
    BACKENDS,
    Deadline,
    Measurement,
    Stopwatch,
    TimeLimitExceeded,
    charter_server,
    fresh_database,
    line,
    machine,
    measure_empty_calls,
    quiet_logs,
    rights_holder_key,
    today,
)
from charter.names import normalize
from charter.v1 import catalog_service_pb2 as pb
from charter.v1 import catalog_service_pb2_grpc, character_pb2, terms_pb2

MAX_BATCH = 500  # the RPC's own limit per call
RPC_TIMEOUT = 120.0

# Forty consonant-vowel syllables. Every syllable starts with a consonant and ends with a vowel,
# so a romanised name splits into syllables one way only, and a name's syllables encode its
# index: every generated name is unique, and so is its normalised form.
_SYLLABLES = (
    ("ka", "カ"), ("ki", "キ"), ("ku", "ク"), ("ke", "ケ"), ("ko", "コ"),
    ("sa", "サ"), ("shi", "シ"), ("su", "ス"), ("se", "セ"), ("so", "ソ"),
    ("ta", "タ"), ("chi", "チ"), ("tsu", "ツ"), ("te", "テ"), ("to", "ト"),
    ("na", "ナ"), ("ni", "ニ"), ("nu", "ヌ"), ("ne", "ネ"), ("no", "ノ"),  # noqa: RUF001 (katakana no)
    ("ha", "ハ"), ("hi", "ヒ"), ("fu", "フ"), ("he", "ヘ"), ("ho", "ホ"),
    ("ma", "マ"), ("mi", "ミ"), ("mu", "ム"), ("me", "メ"), ("mo", "モ"),
    ("ya", "ヤ"), ("yu", "ユ"), ("yo", "ヨ"), ("ra", "ラ"), ("ri", "リ"),
    ("ru", "ル"), ("re", "レ"), ("ro", "ロ"), ("wa", "ワ"), ("ga", "ガ"),
)  # fmt: skip
_FAMILIES = (
    ("Hoshino", "ホシノ"), ("Sakura", "サクラ"), ("Kagami", "カガミ"), ("Tsukino", "ツキノ"),
    ("Amane", "アマネ"), ("Shirakawa", "シラカワ"), ("Minase", "ミナセ"), ("Kurosaki", "クロサキ"),
)  # fmt: skip

_FAN_TERMS = terms_pb2.Terms(
    permitted_use_types=[terms_pb2.USE_TYPE_IMAGE_GENERATION, terms_pb2.USE_TYPE_VIDEO_GENERATION],
    max_content_rating=terms_pb2.CONTENT_RATING_TEEN,
    prohibited_categories=[
        terms_pb2.CONTENT_CATEGORY_SEXUAL,
        terms_pb2.CONTENT_CATEGORY_CHARACTER_DAMAGING,
        terms_pb2.CONTENT_CATEGORY_IMPLIED_ENDORSEMENT,
    ],
    excluded_territories=["KP"],
    attribution_text="© Bench Studio",
    watermark_required=True,
)
_PARTNER_TERMS = terms_pb2.Terms(
    permitted_use_types=[terms_pb2.USE_TYPE_CAMEO, terms_pb2.USE_TYPE_INTERACTIVE],
    max_content_rating=terms_pb2.CONTENT_RATING_ALL_AGES,
    commercial_use_allowed=True,
    revenue_share_bps=1500,
    per_use_fee=terms_pb2.Money(currency_code="JPY", minor_units=10),
    daily_quota=1000,
    monthly_quota=20000,
)


def _given_name(index: int) -> tuple[str, str]:
    """The romanised and katakana given name encoding ``index`` (at least three syllables)."""
    digits: list[int] = []
    value = index
    while value or len(digits) < 3:
        value, digit = divmod(value, len(_SYLLABLES))
        digits.append(digit)
    romaji = "".join(_SYLLABLES[d][0] for d in reversed(digits))
    kana = "".join(_SYLLABLES[d][1] for d in reversed(digits))
    return romaji.capitalize(), kana


def catalogue_row(index: int) -> pb.ImportRow:
    """Row ``index`` of the generated catalogue: the same for the same index, every run."""
    given, given_kana = _given_name(index)
    family, family_kana = _FAMILIES[index % len(_FAMILIES)]
    Kind = character_pb2.Alias.Kind  # noqa: N806 (an enum namespace)
    character = character_pb2.Character(
        external_id=f"bench-{index:06d}",
        canonical_name=f"{given} {family}",
        franchise=f"Bench Franchise {index % 50:02d}",
        description=f"Generated benchmark character number {index}.",
        reference_urls=[f"https://bench.example/characters/{index}"],
        aliases=[
            character_pb2.Alias(value=f"{family} {given}", language="ja-Latn", kind=Kind.KIND_ROMANIZATION),
            character_pb2.Alias(value=f"{family_kana}・{given_kana}", language="ja", kind=Kind.KIND_OFFICIAL_NAME),
            character_pb2.Alias(value=given_kana, language="ja", kind=Kind.KIND_SHORT_NAME),
        ],
    )
    row = pb.ImportRow(character=character)
    if index % 4 == 0:
        row.terms.CopyFrom(_FAN_TERMS if index % 8 == 0 else _PARTNER_TERMS)
    return row


def catalogue(count: int) -> list[pb.ImportRow]:
    """The first ``count`` rows, checked to have pairwise distinct normalised names."""
    rows = [catalogue_row(i) for i in range(count)]
    owners: dict[str, int] = {}
    for index, row in enumerate(rows):
        names = {normalize(row.character.canonical_name)} | {normalize(a.value) for a in row.character.aliases}
        for name in names:
            other = owners.setdefault(name, index)
            if other != index:
                raise AssertionError(f"rows {other} and {index} share the normalised name {name!r}")
    return rows


def batches(rights_holder_id: str, rows: Sequence[pb.ImportRow], size: int) -> list[pb.ImportCharactersRequest]:
    """The import requests, built before timing starts."""
    return [
        pb.ImportCharactersRequest(rights_holder_id=rights_holder_id, rows=rows[start : start + size])
        for start in range(0, len(rows), size)
    ]


def run_import(
    stub: catalog_service_pb2_grpc.CatalogServiceStub,
    requests: Sequence[pb.ImportCharactersRequest],
    metadata: tuple[tuple[str, str], ...],
    *,
    expected: pb.ImportRowResult.Outcome.ValueType,
    deadline: Deadline,
    label: str,
) -> Measurement:
    """Send every batch in order, one call at a time; every row must come back ``expected``."""
    rows = 0
    with Stopwatch() as sw:
        for number, request in enumerate(requests):
            deadline.check(f"{label}, batch {number}")
            try:
                response = stub.ImportCharacters(
                    request, metadata=metadata, timeout=max(1.0, min(RPC_TIMEOUT, deadline.remaining()))
                )
            except grpc.RpcError as error:
                if error.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise TimeLimitExceeded(f"{label}, batch {number}: the call outlived its deadline") from error
                raise
            if len(response.results) != len(request.rows):
                raise AssertionError(
                    f"{label}: batch {number} sent {len(request.rows)} rows, got {len(response.results)} results"
                )
            for result in response.results:
                if result.outcome != expected:
                    raise AssertionError(
                        f"{label}: row {result.external_id} came back "
                        f"{pb.ImportRowResult.Outcome.Name(result.outcome)} ({result.error_reason} "
                        f"{list(result.field_violations)}), expected {pb.ImportRowResult.Outcome.Name(expected)}"
                    )
            rows += len(response.results)
    return Measurement(rows, sw.seconds)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--backend", choices=BACKENDS, default="sqlite", help="database of the server (default sqlite)")
    parser.add_argument("--count", type=int, default=10_000, help="characters in the catalogue (default 10000)")
    parser.add_argument("--batch-size", type=int, default=MAX_BATCH, help="rows per ImportCharacters call (1-500)")
    parser.add_argument(
        "--baseline-calls", type=int, default=5_000, help="empty calls per baseline measurement (default 5000)"
    )
    parser.add_argument("--time-limit", type=float, default=300.0, help="hard limit of the whole run in seconds")
    args = parser.parse_args(argv)
    if not 1 <= args.batch_size <= MAX_BATCH:
        parser.error(f"--batch-size must be 1 to {MAX_BATCH}")
    if not 1 <= args.count <= 1_000_000:
        parser.error("--count must be 1 to 1000000")
    if not 1 <= args.baseline_calls <= 1_000_000:
        parser.error("--baseline-calls must be 1 to 1000000")
    if args.time_limit <= 0:
        parser.error("--time-limit must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    deadline = Deadline(args.time_limit)
    quiet_logs()
    print(
        f"bench_import: {args.count} characters, batches of {args.batch_size}, backend {args.backend}, "
        f"limit {args.time_limit:g} s; {machine()}",
        flush=True,
    )
    rows = catalogue(args.count)
    try:
        with fresh_database(args.backend) as url, charter_server(url) as server:
            workers = server.settings.max_workers
            baseline_before = measure_empty_calls(
                workers, calls=args.baseline_calls, max_seconds=20.0, deadline=deadline
            )
            line(
                "baseline (empty unary), before",
                f"{baseline_before.per_second:,.0f} calls/s "
                f"({baseline_before.count} calls in {baseline_before.seconds:.2f} s)",
            )
            key = rights_holder_key(server)
            requests = batches(key.rights_holder_id, rows, args.batch_size)
            with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                stub = catalog_service_pb2_grpc.CatalogServiceStub(channel)
                first = run_import(
                    stub,
                    requests,
                    key.metadata,
                    expected=pb.ImportRowResult.OUTCOME_CREATED,
                    deadline=deadline,
                    label="import",
                )
                line(
                    "import (all CREATED)",
                    f"{first.per_second:,.0f} characters/s ({first.count} in {first.seconds:.2f} s)",
                )
                again = run_import(
                    stub,
                    requests,
                    key.metadata,
                    expected=pb.ImportRowResult.OUTCOME_UNCHANGED,
                    deadline=deadline,
                    label="re-import",
                )
                line(
                    "re-import (all UNCHANGED)",
                    f"{again.per_second:,.0f} characters/s ({again.count} in {again.seconds:.2f} s)",
                )
            baseline_after = measure_empty_calls(
                workers, calls=args.baseline_calls, max_seconds=20.0, deadline=deadline
            )
            line(
                "baseline (empty unary), after",
                f"{baseline_after.per_second:,.0f} calls/s "
                f"({baseline_after.count} calls in {baseline_after.seconds:.2f} s)",
            )
    except TimeLimitExceeded as error:
        print(f"bench_import: FAILED: {error}", file=sys.stderr)
        return 2
    finally:
        deadline.cancel()
    baseline = (baseline_before.per_second + baseline_after.per_second) / 2
    import_cost = baseline / first.per_second
    reimport_cost = baseline / again.per_second
    line("baseline (mean)", f"{baseline:,.0f} calls/s")
    line("cost per imported row", f"{import_cost:.2f} empty round trips")
    line("cost per re-imported row", f"{reimport_cost:.2f} empty round trips")
    print(
        f"SUMMARY bench_import date={today()} backend={args.backend} count={args.count} batch={args.batch_size} "
        f"import={first.per_second:.0f}/s reimport={again.per_second:.0f}/s empty={baseline:.0f}/s "
        f"import_cost={import_cost:.2f} reimport_cost={reimport_cost:.2f} {machine()}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
