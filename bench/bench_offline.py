"""Benchmark: offline decisions of `charter.offline.OfflineAuthorizer`, cold and warm, same run.

Needs no server: the authorizer talks to an in-process stand-in of the client that answers
``GetCaller``, ``GetLicensee`` and ``GetKeySet`` from memory and whose revocation stream sends one
heartbeat and then stays quiet (so the view is current for the whole round). Every decision is
checked to have been made offline; a server call would fail the run.

Measured in one process, interleaved round by round (as ``bench_verify.py``):

* raw Ed25519: one signature check of a grant's signed message (its DSSE PAE) with PyNaCl
  (libsodium, the SDK's library) and with ``cryptography`` (OpenSSL); the faster one is the
  reference of the ratios;
* PyJWT: decoding an EdDSA JWT with the same claims and ``exp``, ``nbf`` and ``aud`` checks;
* a *cold* decision: ``decide(character, context)`` for a grant never verified before (each
  call a different character with its own grant): the signature over the PAE of the payload the
  claims were parsed from, the key's validity at issue, the parties, the window, the status and
  evaluating the terms (the claims were parsed and the terms compiled by ``add_grants``, below).
  Once with the verifier's cache (the default) and once with ``cache_size=0``;
* ``GrantVerifier.verify`` cold with the cache off, the verification part alone;
* a *warm* decision: ``decide`` again for a grant already verified (target >= 1,000,000/s on one
  core, issue 16), and ``authorize(...)`` for one character (which also builds the context and the
  ``Decision``);
* ``add_grants`` per grant (reading the envelope once, its PAE and digest, parsing the unverified
  claims to index them and working out what they give once verified: the compiled terms, the
  allowing decision, the window), which happens once per grant, before any decision; and the sum
  of that and a cold decision (a grant's whole cost up to its first decision) next to the
  reference, so that work moved from the cold decision into ``add_grants`` shows.

Timed by the measuring thread's CPU time (``--clock cpu``, the default: on a shared machine the
wall time of a busy loop also counts the time other processes held the core) or the wall clock
(``--clock wall``). It prints microseconds per operation (the median over the rounds), each cold candidate's ratio
to the reference (the median over the rounds of its time divided by the mean of the reference
measured just before and just after it; target <= 1.15) and warm decisions per second. Every
loop is bounded in count, and the whole run by ``--time-limit``.

    .venv/bin/python bench/bench_offline.py
    .venv/bin/python bench/bench_offline.py --rounds 30 --time-limit 180
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from itertools import repeat
from typing import Any, cast

import jwt
import nacl.signing
from _common import Deadline, TimeLimitExceeded, line, machine, today
from charter.client import Client
from charter.decisions import CharacterDecision
from charter.envelope import GRANT_PAYLOAD_TYPE, pae, sign
from charter.grants import GrantVerifier, KeyRing
from charter.offline import OfflineAuthorizer
from charter.v1 import api_key_pb2, authorization_service_pb2, grant_pb2, licensee_pb2, signing_key_pb2, terms_pb2
from charter.v1.envelope_pb2 import Envelope
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf import timestamp_pb2

KEY_ID = "sk_0123456789abcdef"
LICENSEE = "lic_" + "1" * 32
PLATFORM = "bench.example"
HOLDER = "rh_" + "3" * 32
AUDIENCE = "charter-grant"
TARGET_RATIO = 1.15
TARGET_PER_SECOND = 1_000_000

Operation = Callable[[], object]


def stamp(moment: datetime) -> timestamp_pb2.Timestamp:
    result = timestamp_pb2.Timestamp()
    result.FromDatetime(moment)
    return result


def character_id(number: int) -> str:
    return f"chr_{number:032x}"


def claims(now: datetime, number: int) -> grant_pb2.GrantClaims:
    """Realistic grant claims (as ``bench_verify.py``): a fan, non-commercial licence with a few
    restrictions, each grant for its own character."""
    return grant_pb2.GrantClaims(
        grant_id=f"grt_{number:032x}",
        character_id=character_id(number),
        rights_holder_id=HOLDER,
        licensee_id=LICENSEE,
        terms=terms_pb2.Terms(
            character_id=character_id(number),
            version=3,
            permitted_use_types=[terms_pb2.USE_TYPE_VIDEO_GENERATION, terms_pb2.USE_TYPE_IMAGE_GENERATION],
            max_content_rating=terms_pb2.CONTENT_RATING_ALL_AGES,
            excluded_territories=["KP"],
            allowed_platforms=[PLATFORM],
            attribution_text="Character (c) Bench Studio; used under a Charter licence.",
            watermark_required=True,
        ),
        terms_version=3,
        issue_time=stamp(now - timedelta(hours=1)),
        not_before=stamp(now - timedelta(hours=1)),
        expire_time=stamp(now + timedelta(days=30)),
        issuer="charter.bench.example",
    )


class QuietWatch:
    """A revocation stream that sends one heartbeat at sequence 0, then nothing until cancelled."""

    def __init__(self) -> None:
        self._cancelled = threading.Event()
        self._sent = False

    def cancel(self) -> None:
        self._cancelled.set()

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if not self._sent:
            self._sent = True
            return authorization_service_pb2.Heartbeat(sequence=0)
        self._cancelled.wait(600)
        raise StopIteration

    def __enter__(self) -> QuietWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


class StandIn:
    """What the authorizer calls on its client, answered from memory; no server decision allowed."""

    def __init__(self, key_set: signing_key_pb2.KeySet) -> None:
        self._key_set = key_set

    def get_caller(self, **_: Any) -> api_key_pb2.ApiKey:
        return api_key_pb2.ApiKey(role=api_key_pb2.ROLE_GENERATOR, licensee_id=LICENSEE)

    def get_licensee(self, licensee_id: str, **_: Any) -> licensee_pb2.Licensee:
        return licensee_pb2.Licensee(id=licensee_id, platform=PLATFORM, state=licensee_pb2.Licensee.STATE_ACTIVE)

    def get_key_set(self, **_: Any) -> signing_key_pb2.KeySet:
        return self._key_set

    def watch_revocations(self, since_sequence: int = 0, **_: Any) -> QuietWatch:
        return QuietWatch()

    def authorize(self, **_: Any) -> Any:
        raise AssertionError("bench_offline: a decision went to the server")


def authorizer(key_set: signing_key_pb2.KeySet, grants: Sequence[Envelope], **options: Any) -> OfflineAuthorizer:
    """A started authorizer holding ``grants``, its view current."""
    built = OfflineAuthorizer(
        cast(Client, StandIn(key_set)),
        grants=grants,
        max_staleness=timedelta(minutes=10),
        idle_timeout=timedelta(minutes=10),
        **options,
    )
    built.start(timeout=10)
    if not built.is_current():
        raise RuntimeError("the stand-in's view did not become current")
    return built


# What the figures are timed with: the measuring thread's CPU time by default (on a shared machine
# the wall time of a busy loop also counts the time other processes held the core), or the wall
# clock (``--clock wall``; the same on an idle machine).
CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.thread_time, "wall": time.perf_counter}
clock = CLOCKS["cpu"]


def per_op_micros(operation: Operation, count: int) -> float:
    """Run ``operation`` ``count`` times; microseconds per call."""
    start = clock()
    for _ in repeat(None, count):
        operation()
    return (clock() - start) / count * 1e6


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds (default 20)")
    parser.add_argument("--batch", type=int, default=200, help="cold decisions and signature checks per round")
    parser.add_argument("--warm-batch", type=int, default=50_000, help="warm decisions per round (default 50000)")
    parser.add_argument("--time-limit", type=float, default=180.0, help="hard limit of the whole run in seconds")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu", help="thread CPU time (default) or wall time")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    global clock  # noqa: PLW0603 - one run, one clock
    args = parse_args(argv)
    clock = CLOCKS[args.clock]
    deadline = Deadline(args.time_limit)
    now = datetime.now(UTC)
    seed = nacl.signing.SigningKey.generate().encode()
    verify_key = nacl.signing.SigningKey(seed).verify_key
    key_set = signing_key_pb2.KeySet(
        version="1",
        keys=[
            signing_key_pb2.SigningKey(
                key_id=KEY_ID,
                algorithm="ed25519",
                public_key=bytes(verify_key),
                state=signing_key_pb2.SigningKey.STATE_ACTIVE,
                activate_time=stamp(now - timedelta(days=1)),
            )
        ],
    )
    ring = KeyRing.from_key_set(key_set)

    def grant(number: int) -> Envelope:
        return sign(claims(now, number).SerializeToString(), GRANT_PAYLOAD_TYPE, key_id=KEY_ID, private_key=seed)

    # Every cold round decides `batch` grants never seen before: numbers 1.. are the characters.
    first = grant(0)
    rounds_of_grants = [
        [grant(1 + r * args.batch + i) for i in range(args.batch)] for r in range(args.rounds + 1)
    ]  # round 0 warms up
    message = pae(first.payload_type, first.payload)
    signature = first.signatures[0].sig
    openssl_public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    token = jwt.encode(
        {
            "jti": f"grt_{0:032x}",
            "sub": LICENSEE,
            "aud": AUDIENCE,
            "character_id": character_id(0),
            "rights_holder_id": HOLDER,
            "uses": ["VIDEO_GENERATION", "IMAGE_GENERATION"],
            "rating": "ALL_AGES",
            "territories_excluded": ["KP"],
            "platforms": [PLATFORM],
            "terms_version": 3,
            "iat": int((now - timedelta(hours=1)).timestamp()),
            "nbf": int((now - timedelta(hours=1)).timestamp()),
            "exp": int((now + timedelta(days=30)).timestamp()),
            "iss": "charter.bench.example",
        },
        Ed25519PrivateKey.from_private_bytes(seed),
        algorithm="EdDSA",
    )

    warm = authorizer(key_set, [first])
    context = warm.use_context(
        use_type=terms_pb2.USE_TYPE_IMAGE_GENERATION, content_rating=terms_pb2.CONTENT_RATING_ALL_AGES, territory="JP"
    )
    decided = warm.decide(character_id(0), context)
    if decided is None or not decided.allowed:
        print(f"bench_offline: FAILED: the warm grant was not allowed offline: {decided}", file=sys.stderr)
        return 1

    def warm_decide() -> Operation:
        """Deciding with a context made now: `decide` declines (returns None, far faster) a context
        more than CONTEXT_TOLERANCE (5 s) old, so each round makes its own and `warm_checked`
        checks it still allowed at the end of the round."""
        decide, cid = warm.decide, character_id(0)
        fresh_context = warm.use_context(
            use_type=terms_pb2.USE_TYPE_IMAGE_GENERATION,
            content_rating=terms_pb2.CONTENT_RATING_ALL_AGES,
            territory="JP",
        )
        return lambda: decide(cid, fresh_context)

    def warm_checked(operation: Operation, count: int) -> float:
        micros = per_op_micros(operation, count)
        outcome = operation()
        if not isinstance(outcome, CharacterDecision) or not outcome.allowed:
            raise RuntimeError(f"a warm decision was not an offline allow: {outcome}")
        return micros

    def warm_authorize() -> Operation:
        ids = [character_id(0)]

        def run() -> object:
            return warm.authorize(
                character_ids=ids,
                use_type=terms_pb2.USE_TYPE_IMAGE_GENERATION,
                content_rating=terms_pb2.CONTENT_RATING_ALL_AGES,
                territory="JP",
            )

        return run

    uncached = GrantVerifier(cache_size=0)

    def verify_cold() -> object:
        return uncached.verify(first, keys=ring, licensee_id=LICENSEE, character_id=character_id(0), now=now)

    def cold_round(grants: list[Envelope], **options: Any) -> tuple[float, float]:
        """(µs per cold decision, µs per grant added) over a fresh authorizer holding ``grants``."""
        fresh = authorizer(key_set, [], **options)
        try:
            start = clock()
            fresh.add_grants(grants)
            added = (clock() - start) / len(grants) * 1e6
            round_context = fresh.use_context(
                use_type=terms_pb2.USE_TYPE_IMAGE_GENERATION,
                content_rating=terms_pb2.CONTENT_RATING_ALL_AGES,
                territory="JP",
            )
            decide = fresh.decide
            ids = [grant_pb2.GrantClaims.FromString(g.payload).character_id for g in grants]
            start = clock()
            results = [decide(cid, round_context) for cid in ids]
            micros = (clock() - start) / len(ids) * 1e6
        finally:
            fresh.close()
        if not all(r is not None and r.allowed for r in results):
            raise RuntimeError("a cold decision was not an offline allow")
        return micros, added

    # Warm-up, and a check that every candidate works.
    cold_round(rounds_of_grants[0][: min(20, args.batch)])
    cold_round(rounds_of_grants[0][min(20, args.batch) : min(40, args.batch)], cache_size=0)
    for operation in (warm_decide(), warm_authorize()):
        for _ in range(1000):
            operation()
    if not warm.authorize(
        character_ids=[character_id(0)],
        use_type=terms_pb2.USE_TYPE_IMAGE_GENERATION,
        content_rating=terms_pb2.CONTENT_RATING_ALL_AGES,
        territory="JP",
    ).offline:
        print("bench_offline: FAILED: authorize() did not decide offline", file=sys.stderr)
        return 1

    references: dict[str, Operation] = {
        "raw Ed25519, PyNaCl": lambda: verify_key.verify(message, signature),
        "raw Ed25519, cryptography": lambda: openssl_public.verify(signature, message),
    }
    calibration = {name: min(per_op_micros(op, args.batch) for _ in range(3)) for name, op in references.items()}
    reference_name = min(calibration, key=calibration.__getitem__)
    reference = references[reference_name]
    other_raw = next(name for name in references if name != reference_name)
    print(
        f"bench_offline: {args.rounds} rounds of {args.batch} cold decisions and {args.warm_batch} warm ones; "
        f"payload {len(first.payload)} B, signed message {len(message)} B; timed by {args.clock} clock; "
        f"limit {args.time_limit:g} s; {machine()}",
        flush=True,
    )

    names = [
        reference_name,
        other_raw,
        "PyJWT EdDSA decode",
        "verify cold, cache off",
        "decide cold (cache on)",
        "decide cold, cache_size=0",
        "decide warm",
        "authorize warm, 1 character",
        "add_grants, per grant",
    ]
    samples: dict[str, list[float]] = {name: [] for name in names}
    paired: dict[str, list[float]] = {name: [] for name in names}
    try:
        for number in range(1, args.rounds + 1):
            grants = rounds_of_grants[number]
            half = len(grants) // 2
            before = per_op_micros(reference, args.batch)
            samples[reference_name].append(before)

            def measure(name: str, micros: float, *, before: float = before) -> float:
                after = per_op_micros(reference, args.batch)
                samples[name].append(micros)
                samples[reference_name].append(after)
                paired[name].append(micros / ((before + after) / 2))
                return after

            deadline.check(f"round {number}")
            before = measure(other_raw, per_op_micros(references[other_raw], args.batch), before=before)
            jwt_micros = per_op_micros(
                lambda: jwt.decode(
                    token,
                    openssl_public,
                    algorithms=["EdDSA"],
                    audience=AUDIENCE,
                    options={"require": ["exp", "nbf", "aud"]},
                ),
                args.batch,
            )
            before = measure("PyJWT EdDSA decode", jwt_micros, before=before)
            before = measure("verify cold, cache off", per_op_micros(verify_cold, args.batch), before=before)
            cold, added = cold_round(grants[:half] if half else grants)
            samples["add_grants, per grant"].append(added)
            before = measure("decide cold (cache on)", cold, before=before)
            cold_off, _ = cold_round(grants[half:] or grants, cache_size=0)
            before = measure("decide cold, cache_size=0", cold_off, before=before)
            deadline.check(f"round {number}, warm")
            samples["decide warm"].append(warm_checked(warm_decide(), args.warm_batch))
            samples["authorize warm, 1 character"].append(per_op_micros(warm_authorize(), args.warm_batch // 5))
    except TimeLimitExceeded as error:
        print(f"bench_offline: FAILED: {error}", file=sys.stderr)
        return 2
    finally:
        warm.close()
        deadline.cancel()

    medians = {name: statistics.median(values) for name, values in samples.items() if values}
    for name, micros in medians.items():
        line(name, f"{micros:9.2f} µs/op  (best round {min(samples[name]):.2f})")

    def ratio(name: str) -> float:
        return statistics.median(paired[name])

    cold_ratio = ratio("decide cold (cache on)")
    added_and_cold = medians["add_grants, per grant"] + medians["decide cold (cache on)"]
    first_ratio = added_and_cold / medians[reference_name]
    cold_off_ratio = ratio("decide cold, cache_size=0")
    verify_ratio = ratio("verify cold, cache off")
    jwt_ratio = ratio("PyJWT EdDSA decode")
    warm_rate = 1e6 / medians["decide warm"]
    authorize_rate = 1e6 / medians["authorize warm, 1 character"]
    print(f"fastest raw verify: {reference_name} (the reference of the ratios)")
    line("decide cold / raw (cache on)", f"{cold_ratio:.3f}  (target <= {TARGET_RATIO})")
    line("decide cold / raw (cache_size=0)", f"{cold_off_ratio:.3f}")
    line("verify cold / raw (cache off)", f"{verify_ratio:.3f}")
    line("(add_grants + decide cold) / raw", f"{first_ratio:.3f}  (a grant's whole cost up to its first decision)")
    line("PyJWT / raw", f"{jwt_ratio:.3f}")
    line("decide warm", f"{warm_rate:,.0f} decisions/s  (target >= {TARGET_PER_SECOND:,}/s)")
    line("authorize warm, 1 character", f"{authorize_rate:,.0f} decisions/s")
    met = "met" if cold_ratio <= TARGET_RATIO else "MISSED"
    warm_met = "met" if warm_rate >= TARGET_PER_SECOND else "MISSED"
    print(f"targets: cold ratio {met}, warm rate {warm_met}")
    print(
        f"SUMMARY bench_offline date={today()} raw_us={medians[reference_name]:.1f} "
        f"jwt_us={medians['PyJWT EdDSA decode']:.1f} cold_us={medians['decide cold (cache on)']:.1f} "
        f"cold_ratio={cold_ratio:.3f} cold_nocache_ratio={cold_off_ratio:.3f} verify_ratio={verify_ratio:.3f} "
        f"add_us={medians['add_grants, per grant']:.1f} add_cold_ratio={first_ratio:.3f} "
        f"jwt_ratio={jwt_ratio:.3f} warm_per_s={warm_rate:.0f} authorize_per_s={authorize_rate:.0f} {machine()}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
