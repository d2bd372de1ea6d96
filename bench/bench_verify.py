"""Benchmark: the cost of verifying one grant next to one raw Ed25519 verification, same run.

Measures, in one process and interleaved round by round so that a noisy machine affects every
candidate alike:

* raw Ed25519: one signature check of the grant's ~300-byte signed message (its DSSE PAE) with
  PyNaCl (libsodium, what the SDK uses) and with ``cryptography`` (OpenSSL);
* PyJWT: decoding an EdDSA JWT carrying the same claims, with ``exp``, ``nbf`` and ``aud``
  checks, the usual alternative to a signed grant;
* ``GrantVerifier.verify`` cold: signature, parse and every check, with the cache disabled
  (same envelope every time) and with the cache enabled but a different envelope every time
  (so also the digest and the cache insert);
* ``GrantVerifier.verify`` warm: the same envelope again, answered from the cache, as a
  ``charter.v1.Envelope`` and as DSSE JSON text.

It prints microseconds per operation (the median over the rounds), the ratio of a cold
verification to the fastest raw verify (target <= 1.15) and warm verifications per second on one
core (target >= 500,000/s). The fastest raw verify is the reference: it is measured between every
two candidates, and a candidate's ratio is the median over the rounds of its time divided by the
mean of the reference measured just before and just after it. Every loop is bounded in count, and
the whole run by ``--time-limit``.

    .venv/bin/python bench/bench_verify.py
    .venv/bin/python bench/bench_verify.py --rounds 30 --time-limit 120
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import jwt
import nacl.signing
from _common import Deadline, TimeLimitExceeded, line, machine, today
from charter.envelope import GRANT_PAYLOAD_TYPE, pae, sign, to_json
from charter.grants import GrantVerifier, KeyRing, KeyState, PublicKey
from charter.v1 import grant_pb2, terms_pb2
from charter.v1.envelope_pb2 import Envelope
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf import timestamp_pb2

KEY_ID = "sk_0123456789abcdef"
LICENSEE = "lic_" + "1" * 32
CHARACTER = "chr_" + "2" * 32
AUDIENCE = "charter-grant"

Operation = Callable[[], object]


def stamp(moment: datetime) -> timestamp_pb2.Timestamp:
    result = timestamp_pb2.Timestamp()
    result.FromDatetime(moment)
    return result


def claims(now: datetime, number: int) -> grant_pb2.GrantClaims:
    """Realistic grant claims: a fan, non-commercial licence with a few restrictions."""
    return grant_pb2.GrantClaims(
        grant_id=f"grt_{number:032x}",
        character_id=CHARACTER,
        rights_holder_id="rh_" + "3" * 32,
        licensee_id=LICENSEE,
        terms=terms_pb2.Terms(
            permitted_use_types=[terms_pb2.USE_TYPE_VIDEO_GENERATION, terms_pb2.USE_TYPE_IMAGE_GENERATION],
            max_content_rating=terms_pb2.CONTENT_RATING_ALL_AGES,
            excluded_territories=["KP"],
            allowed_platforms=["bench.example"],
            attribution_text="Character (c) Bench Studio; used under a Charter licence.",
            watermark_required=True,
        ),
        terms_version=3,
        issue_time=stamp(now - timedelta(hours=1)),
        not_before=stamp(now - timedelta(hours=1)),
        expire_time=stamp(now + timedelta(days=30)),
        issuer="charter.bench.example",
    )


def per_op_micros(operation: Operation, count: int) -> float:
    """Run ``operation`` ``count`` times; microseconds per call."""
    start = time.perf_counter()
    for _ in range(count):
        operation()
    return (time.perf_counter() - start) / count * 1e6


def cycling(operations: Sequence[Operation]) -> Operation:
    """One operation that runs the next of ``operations`` each time (for all-different inputs)."""
    state = {"next": 0}

    def run() -> object:
        index = state["next"]
        state["next"] = (index + 1) % len(operations)
        return operations[index]()

    return run


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds (default 20)")
    parser.add_argument("--batch", type=int, default=200, help="signature checks per candidate per round (default 200)")
    parser.add_argument("--warm-batch", type=int, default=20_000, help="warm verifications per round (default 20000)")
    parser.add_argument("--time-limit", type=float, default=180.0, help="hard limit of the whole run in seconds")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    deadline = Deadline(args.time_limit)
    now = datetime.now(UTC)
    seed = nacl.signing.SigningKey.generate().encode()
    verify_key = nacl.signing.SigningKey(seed).verify_key
    keys = KeyRing([PublicKey(KEY_ID, bytes(verify_key), KeyState.ACTIVE, now - timedelta(days=1))], version="1")

    def grant(number: int) -> Envelope:
        return sign(claims(now, number).SerializeToString(), GRANT_PAYLOAD_TYPE, key_id=KEY_ID, private_key=seed)

    envelope = grant(0)
    text = to_json(envelope)
    message = pae(envelope.payload_type, envelope.payload)
    signature = envelope.signatures[0].sig
    distinct = [grant(n) for n in range(1, args.batch + 1)]  # one per cold-miss call of a round

    openssl_key = Ed25519PrivateKey.from_private_bytes(seed)
    openssl_public = openssl_key.public_key()
    token = jwt.encode(
        {
            "jti": f"grt_{0:032x}",
            "sub": LICENSEE,
            "aud": AUDIENCE,
            "character_id": CHARACTER,
            "rights_holder_id": "rh_" + "3" * 32,
            "uses": ["VIDEO_GENERATION", "IMAGE_GENERATION"],
            "rating": "ALL_AGES",
            "terms_version": 3,
            "iat": int((now - timedelta(hours=1)).timestamp()),
            "nbf": int((now - timedelta(hours=1)).timestamp()),
            "exp": int((now + timedelta(days=30)).timestamp()),
            "iss": "charter.bench.example",
        },
        openssl_key,
        algorithm="EdDSA",
    )

    def check(verifier: GrantVerifier, form: Envelope | str) -> Operation:
        def run() -> object:
            result = verifier.verify(form, keys=keys, licensee_id=LICENSEE, character_id=CHARACTER, now=now)
            return result

        return run

    def misses() -> Operation:
        """A different envelope every call, on a verifier whose small cache keeps evicting."""
        verifier = GrantVerifier(cache_size=64)
        return cycling([check(verifier, e) for e in distinct])

    uncached = GrantVerifier(cache_size=0)
    warm = GrantVerifier()
    candidates: dict[str, tuple[Operation, int]] = {
        "raw Ed25519, PyNaCl": (lambda: verify_key.verify(message, signature), args.batch),
        "raw Ed25519, cryptography": (lambda: openssl_public.verify(signature, message), args.batch),
        "PyJWT EdDSA decode": (
            lambda: jwt.decode(
                token,
                openssl_public,
                algorithms=["EdDSA"],
                audience=AUDIENCE,
                options={"require": ["exp", "nbf", "aud"]},
            ),
            args.batch,
        ),
        "verify cold, cache off": (check(uncached, envelope), args.batch),
        "verify cold, cache off, JSON": (check(uncached, text), args.batch),
        "verify cold, cache miss": (misses(), args.batch),
        "verify warm, Envelope": (check(warm, envelope), args.warm_batch),
        "verify warm, JSON text": (check(warm, text), args.warm_batch),
    }
    for name, (operation, _) in candidates.items():  # warm up, and check that everything verifies
        result = operation()
        if name.startswith("verify") and not getattr(result, "valid", False):
            print(f"bench_verify: FAILED: {name} did not verify: {result}", file=sys.stderr)
            return 1

    print(
        f"bench_verify: {args.rounds} rounds; payload {len(envelope.payload)} B, signed message (PAE) "
        f"{len(message)} B, JSON envelope {len(text)} B, JWT {len(token)} B; limit {args.time_limit:g} s; {machine()}",
        flush=True,
    )
    raws = ("raw Ed25519, PyNaCl", "raw Ed25519, cryptography")
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    # Each round measures the reference (the fastest raw verify, found by a short calibration)
    # between every two candidates, and each candidate's ratio for the round is taken against
    # the mean of the reference just before and just after it.
    paired: dict[str, list[float]] = {name: [] for name in candidates}
    try:
        calibration = {name: min(per_op_micros(candidates[name][0], args.batch) for _ in range(3)) for name in raws}
        reference_name = min(raws, key=calibration.__getitem__)
        reference, reference_count = candidates[reference_name]
        for number in range(args.rounds):
            before = per_op_micros(reference, reference_count)
            samples[reference_name].append(before)
            for name, (operation, count) in candidates.items():
                if name == reference_name:
                    continue
                deadline.check(f"round {number + 1}, {name}")
                # A fresh verifier each round: every call of the round misses (and evicts).
                run = misses() if name == "verify cold, cache miss" else operation
                micros = per_op_micros(run, count)
                after = per_op_micros(reference, reference_count)
                samples[name].append(micros)
                samples[reference_name].append(after)
                paired[name].append(micros / ((before + after) / 2))
                before = after
    except TimeLimitExceeded as error:
        print(f"bench_verify: FAILED: {error}", file=sys.stderr)
        return 2
    finally:
        deadline.cancel()

    medians = {name: statistics.median(values) for name, values in samples.items()}
    for name, micros in medians.items():
        line(name, f"{micros:9.2f} µs/op  (best round {min(samples[name]):.2f})")

    def ratio(name: str) -> float:
        return statistics.median(paired[name])

    cold_ratio = ratio("verify cold, cache off")
    miss_ratio = ratio("verify cold, cache miss")
    jwt_ratio = ratio("PyJWT EdDSA decode")
    warm_rate = 1e6 / medians["verify warm, Envelope"]
    warm_json_rate = 1e6 / medians["verify warm, JSON text"]
    print(f"fastest raw verify: {reference_name} (the reference of the ratios)")
    line("cold / raw (cache off)", f"{cold_ratio:.3f}  (target <= 1.15)")
    line("cold / raw (cache miss)", f"{miss_ratio:.3f}")
    line("cold JSON / raw (cache off)", f"{ratio('verify cold, cache off, JSON'):.3f}")
    line("PyJWT / raw", f"{jwt_ratio:.3f}")
    line("warm, Envelope", f"{warm_rate:,.0f} verifications/s  (target >= 500,000/s)")
    line("warm, JSON text", f"{warm_json_rate:,.0f} verifications/s")
    print(
        f"SUMMARY bench_verify date={today()} raw_nacl_us={medians['raw Ed25519, PyNaCl']:.1f} "
        f"raw_openssl_us={medians['raw Ed25519, cryptography']:.1f} jwt_us={medians['PyJWT EdDSA decode']:.1f} "
        f"cold_us={medians['verify cold, cache off']:.1f} cold_ratio={cold_ratio:.3f} miss_ratio={miss_ratio:.3f} "
        f"warm_per_s={warm_rate:.0f} warm_json_per_s={warm_json_rate:.0f} {machine()}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
