"""Benchmark: decision records (issue 16): what signing one adds to an offline decision, and
``ReportUsage`` of offline records over gRPC on SQLite, each next to a baseline of the same run.

Targets: signing a decision record adds at most 25 µs to a decision; reporting 10,000 offline
records runs at 2,000 records/s or more on SQLite.

1. **Signing** (no server): what a licensee key adds to a decision: a warm offline
   ``OfflineAuthorizer.authorize`` of one character with a ``signer`` and without one (the
   stand-in client of ``bench_offline.py``; the grant has no quota, so no lease), interleaved
   over ``--added-rounds`` rounds, the median of the per-round differences (target <= 25 µs),
   next to one raw Ed25519 signature (PyNaCl) measured in the same rounds; then
   ``DecisionRecordSigner.sign`` alone (claims built, serialized, Ed25519 over the DSSE PAE) at
   most ``--rounds`` times and 10 s, next to one raw signature of a message of the same length;
   and the verification the server does per record (``verify_decision_record``) next to one raw
   verify. These are timed by the measuring thread's CPU time.
2. **Reporting**: a Charter server built in this process on a fresh SQLite file (WAL,
   ``synchronous=FULL``, the server's own settings) and, through the real services, a rights
   holder with ``--characters`` characters opted in (terms with a revenue share), a licensee
   with a generator key, a grant per character and a registered licensee key. One character in
   ten has a daily quota, and its records are spent from a quota lease, so the lease's counter
   is part of what is measured. ``--records`` records (default 10,000) are signed beforehand,
   one use each with a fresh idempotency key, and sent as pre-serialized requests in batches of
   ``--batch-size`` (100) by one client thread in a child process (client and server each have
   an interpreter, as in production); every result must come back accepted, and the rows of
   ``usage_records`` are counted afterwards. The baseline is the empty unary handler's calls/s
   (``_common.measure_empty_calls``), measured before and after.

    .venv/bin/python bench/bench_decision_records.py
    .venv/bin/python bench/bench_decision_records.py --records 2000 --rounds 2000   # a smoke run
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection

import grpc
import nacl.signing
from _common import (
    ClientProcess,
    Deadline,
    Measurement,
    charter_server,
    fresh_database,
    line,
    machine,
    measure_empty_calls,
    quiet_logs,
    serve_loads,
    today,
)
from charter.decision_records import DecisionRecordSigner, generate_key, verify_decision_record
from charter.grants import KeyRing, KeyState, PublicKey
from charter.v1 import decision_pb2, terms_pb2, usage_pb2
from charter.v1 import usage_service_pb2 as us
from charter_server.domain.models import Principal, Role
from google.protobuf import timestamp_pb2
from sqlalchemy import func, select

CONTEXT = decision_pb2.UseContext(
    use_type=terms_pb2.USE_TYPE_IMAGE_GENERATION, content_rating=terms_pb2.CONTENT_RATING_ALL_AGES
)


REPORT_METHOD = "/charter.v1.UsageService/ReportUsage"


@dataclass(frozen=True)
class ReportLoad:
    """What the client process sends: serialized ReportUsage requests, one after another."""

    address: str
    secret: str
    requests: list[bytes]
    max_seconds: float


@dataclass(frozen=True)
class ReportResult:
    """Records acknowledged as accepted, the wall time, and the first bad answer ('' if none)."""

    accepted: int
    seconds: float
    problem: str


def _run_report(load: ReportLoad, channel: grpc.Channel) -> ReportResult:
    call = channel.unary_unary(REPORT_METHOD)
    metadata = (("authorization", f"Bearer {load.secret}"),)
    accepted = 0
    start = time.perf_counter()
    for request in load.requests:
        if time.perf_counter() - start > load.max_seconds:
            return ReportResult(accepted, time.perf_counter() - start, "time limit")
        for _attempt in range(20):  # bounded retries of a busy database (nothing was recorded)
            try:
                answer = call(request, metadata=metadata, timeout=60)
                break
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE:
                    return ReportResult(accepted, time.perf_counter() - start, str(error.code()))
        else:
            return ReportResult(accepted, time.perf_counter() - start, "the database stayed busy")
        results = us.ReportUsageResponse.FromString(answer).results
        bad = [r for r in results if r.status != usage_pb2.USAGE_STATUS_ACCEPTED or r.duplicate]
        if bad:
            return ReportResult(accepted, time.perf_counter() - start, f"not accepted: {bad[0]}")
        accepted += len(results)
    return ReportResult(accepted, time.perf_counter() - start, "")


def client_main(conn: Connection) -> None:
    """The client process."""
    serve_loads(conn, _run_report)


def _timed(count: int, seconds: float, work: object) -> Measurement:
    """Run ``work`` up to ``count`` times and ``seconds`` of wall time; timed by this thread's CPU
    time (on a shared machine the wall time of a busy loop also counts the time other processes
    held the core)."""
    call = work  # a zero-argument callable
    done = 0
    start, cpu = time.perf_counter(), time.thread_time()
    while done < count and time.perf_counter() - start < seconds:
        call()  # type: ignore[operator]
        done += 1
    return Measurement(done, time.thread_time() - cpu)


def bench_signing(rounds: int) -> tuple[float, float]:
    """µs per decision-record signature and per raw Ed25519 signature of the same length."""
    seed, public = generate_key()
    signer = DecisionRecordSigner(key_id="lk_" + "0" * 32, private_key=seed, licensee_id="lic_" + "0" * 32)
    options = {
        "character_id": "chr_" + "1" * 32,
        "grant_id": "grt_" + "2" * 32,
        "terms_version": 3,
        "allowed": True,
        "context": CONTEXT,
        "lease_id": "ql_" + "3" * 32,
        "revocation_sequence": 12345,
    }
    sample = signer.sign(**options)  # type: ignore[arg-type]
    raw = nacl.signing.SigningKey(seed)
    message = os.urandom(len(sample.payload) + 60)  # the PAE adds the type and two lengths
    for _ in range(200):  # warm up
        signer.sign(**options)  # type: ignore[arg-type]
        raw.sign(message)
    signing = _timed(rounds, 10.0, lambda: signer.sign(**options))  # type: ignore[arg-type]
    baseline = _timed(rounds, 10.0, lambda: raw.sign(message))
    sign_us, raw_us = 1e6 / signing.per_second, 1e6 / baseline.per_second
    line("sign a decision record", f"{sign_us:.1f} µs ({signing.count} rounds)")
    line("raw Ed25519 sign", f"{raw_us:.1f} µs")
    line("sign alone / raw sign", f"{sign_us / raw_us:.2f}")

    ring = KeyRing(
        keys={signer.key_id: PublicKey(signer.key_id, public, KeyState.ACTIVE, datetime.now(UTC) - timedelta(1))},
        revoked=frozenset(),
        version="",
    )
    verify = _timed(rounds, 10.0, lambda: verify_decision_record(sample, keys=ring))
    verify_key = raw.verify_key
    signed = raw.sign(message)
    raw_verify = _timed(rounds, 10.0, lambda: verify_key.verify(signed))
    line(
        "verify a decision record",
        f"{1e6 / verify.per_second:.1f} µs = {raw_verify.per_second / verify.per_second:.2f} x one raw verify",
    )
    return sign_us, raw_us


def bench_added_to_a_decision(rounds: int, batch: int) -> tuple[float, float]:
    """µs a signer adds to a warm offline decision (the median of the per-round differences of
    `authorize` with and without one) and µs per raw Ed25519 signature, in the same rounds."""
    from bench_offline import KEY_ID, LICENSEE, authorizer, character_id, claims, stamp
    from charter.envelope import GRANT_PAYLOAD_TYPE, sign
    from charter.v1 import signing_key_pb2

    now = datetime.now(UTC)
    seed = nacl.signing.SigningKey.generate().encode()
    key_set = signing_key_pb2.KeySet(
        version="1",
        keys=[
            signing_key_pb2.SigningKey(
                key_id=KEY_ID,
                algorithm="ed25519",
                public_key=bytes(nacl.signing.SigningKey(seed).verify_key),
                state=signing_key_pb2.SigningKey.STATE_ACTIVE,
                activate_time=stamp(now - timedelta(days=1)),
            )
        ],
    )
    grant = sign(claims(now, 0).SerializeToString(), GRANT_PAYLOAD_TYPE, key_id=KEY_ID, private_key=seed)
    record_seed, _ = generate_key()
    signer = DecisionRecordSigner(key_id="lk_" + "0" * 32, private_key=record_seed, licensee_id=LICENSEE)
    plain, signing = authorizer(key_set, [grant]), authorizer(key_set, [grant], signer=signer)
    raw = nacl.signing.SigningKey(record_seed)
    message = os.urandom(300)  # about a record's signed message
    ids = [character_id(0)]
    try:

        def decide(which: object) -> Callable[[], object]:
            authorize = which.authorize  # type: ignore[attr-defined]
            return lambda: authorize(
                character_ids=ids,
                use_type=terms_pb2.USE_TYPE_IMAGE_GENERATION,
                content_rating=terms_pb2.CONTENT_RATING_ALL_AGES,
                territory="JP",
            )

        without, with_signer = decide(plain), decide(signing)
        first, second = without(), with_signer()
        if not (first.offline and first.allowed and not first.decision_records):  # type: ignore[attr-defined]
            raise RuntimeError("the decision without a signer was not an offline allow without a record")
        if not (second.offline and second.allowed and len(second.decision_records) == 1):  # type: ignore[attr-defined]
            raise RuntimeError("the decision with a signer was not an offline allow with one record")
        plain_us, signed_us, raw_us, added = [], [], [], []
        for _ in range(rounds):
            plain_us.append(1e6 / _timed(batch, 5.0, without).per_second)
            signed_us.append(1e6 / _timed(batch, 5.0, with_signer).per_second)
            raw_us.append(1e6 / _timed(batch, 5.0, lambda: raw.sign(message)).per_second)
            added.append(signed_us[-1] - plain_us[-1])
    finally:
        plain.close()
        signing.close()
    added_us, raw_sign_us = statistics.median(added), statistics.median(raw_us)
    line("authorize warm, no signer", f"{statistics.median(plain_us):.1f} µs")
    line("authorize warm, with signer", f"{statistics.median(signed_us):.1f} µs")
    line(
        "added to a decision",
        f"{added_us:.1f} µs = {added_us / raw_sign_us:.2f} x one raw sign ({raw_sign_us:.1f} µs) [target <= 25 µs]",
    )
    return added_us, raw_sign_us


def bench_reporting(records: int, batch_size: int, characters: int, deadline: Deadline) -> float:
    """Offline records reported per second, with the empty baseline printed beside."""
    from charter_server.services.access import ApiKeyInput
    from charter_server.services.catalog import LicenseeInput, RightsHolderInput
    from charter_server.services.characters import CharacterInput
    from charter_server.services.grants import IssueInput

    with fresh_database("sqlite") as url, charter_server(url) as server:
        services = server.services
        admin = services.access.create_bootstrap_admin("bench admin")
        staff = Principal(admin.api_key.id, Role.ADMIN)
        holder = services.catalog.create_rights_holder(
            staff, RightsHolderInput(display_name="Bench Studio", contact_email="rights@bench.example")
        )
        licensee = services.catalog.create_licensee(
            staff, LicenseeInput(display_name="Bench App", contact_email="ops@bench.example", platform="bench-app")
        )
        generator = services.access.create_api_key(
            staff, ApiKeyInput("bench generator", Role.GENERATOR, licensee_id=licensee.id)
        ).secret
        seed, public = generate_key()
        key, _ = services.licensee_keys.register(staff, licensee.id, public, "bench farm", "")
        signer = DecisionRecordSigner(key_id=key.key_id, private_key=seed, licensee_id=licensee.id)
        owner = Principal(admin.api_key.id, Role.ADMIN)
        expire = datetime.now(UTC) + timedelta(days=30)
        grants = []
        for index in range(characters):
            character = services.characters.create_character(
                owner, CharacterInput(rights_holder_id=holder.id, canonical_name=f"Bench Character {index:05d}")
            )
            quota = index % 10 == 0
            terms = terms_pb2.Terms(
                permitted_use_types=[terms_pb2.USE_TYPE_IMAGE_GENERATION],
                max_content_rating=terms_pb2.CONTENT_RATING_TEEN,
                revenue_share_bps=1500,
                daily_quota=records if quota else None,
            )
            services.characters.opt_in(owner, character.id, terms)
            grant = services.grants.issue(staff, IssueInput(character.id, licensee.id, expire))
            lease_id = ""
            if quota:
                generator_principal = Principal("bench", Role.GENERATOR, licensee_id=licensee.id)
                lease_id = services.leases.lease(generator_principal, character.id, grant.id, records, 3600).lease_id
            grants.append((grant, lease_id))

        now = datetime.now(UTC)
        happened = timestamp_pb2.Timestamp()
        happened.FromDatetime(now)
        built = []
        for index in range(records):
            grant, lease_id = grants[index % len(grants)]
            envelope = signer.sign(
                character_id=grant.character_id,
                grant_id=grant.id,
                terms_version=grant.terms_version,
                allowed=True,
                context=CONTEXT,
                lease_id=lease_id,
            )
            built.append(
                usage_pb2.UsageRecord(
                    idempotency_key=f"bench-{uuid.uuid4().hex}",
                    decision_record=envelope,
                    character_id=grant.character_id,
                    uses=1,
                    happen_time=happened,
                )
            )
        requests = [us.ReportUsageRequest(records=built[i : i + batch_size]) for i in range(0, len(built), batch_size)]
        workers = server.settings.max_workers
        before = measure_empty_calls(workers, calls=5000, max_seconds=10, deadline=deadline)
        client = ClientProcess(client_main, ReportResult, call_timeout=60)
        try:
            outcome = client.run(
                ReportLoad(
                    f"127.0.0.1:{server.port}",
                    generator,
                    [r.SerializeToString() for r in requests],
                    max(1.0, deadline.remaining() - 30),
                )
            )
        finally:
            client.close()
        if outcome.problem:
            raise RuntimeError(f"reporting failed: {outcome.problem}")
        accepted, elapsed = outcome.accepted, outcome.seconds
        after = measure_empty_calls(workers, calls=5000, max_seconds=10, deadline=deadline)
        from charter_server.storage.tables import UsageRecordRow

        with server.db.uow() as uow:
            stored = uow.session.scalar(select(func.count()).select_from(UsageRecordRow))
        if stored != accepted:
            raise RuntimeError(f"{stored} rows stored, {accepted} acknowledged")
        rate = accepted / elapsed
        empty = (before.per_second + after.per_second) / 2
        line("offline records reported", f"{accepted} in {elapsed:.2f} s, batches of {batch_size}")
        line("records/s (SQLite)", f"{rate:,.0f} [target >= 2,000]")
        line("empty calls/s", f"{before.per_second:,.0f} before, {after.per_second:,.0f} after")
        line("one record costs", f"{empty / rate:.2f} empty round trips")
        return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20000)
    parser.add_argument("--added-rounds", type=int, default=15, help="interleaved rounds of decisions with/without")
    parser.add_argument("--records", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--characters", type=int, default=50)
    parser.add_argument("--time-limit", type=float, default=300)
    args = parser.parse_args()
    quiet_logs()
    deadline = Deadline(args.time_limit)
    try:
        added_us, raw_sign_us = bench_added_to_a_decision(args.added_rounds, 2000)
        sign_us, raw_us = bench_signing(args.rounds)
        rate = bench_reporting(args.records, args.batch_size, args.characters, deadline)
    finally:
        deadline.cancel()
    print(
        f"SUMMARY {today()} decision records: added to a decision {added_us:.1f} µs (raw sign {raw_sign_us:.1f} µs), "
        f"sign alone {sign_us:.1f} µs (raw {raw_us:.1f} µs), "
        f"report {rate:,.0f} records/s on SQLite; {machine()}"
    )


if __name__ == "__main__":
    main()
