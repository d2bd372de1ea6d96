"""A generation backend for the process tests: one `charter.OfflineAuthorizer` in a process of its
own, as a platform runs it, driven through stdin and stdout.

The first line on stdin is the configuration (JSON: target, API key, the licensee key that signs
decision records, cache directory, max_staleness, lease size and TTL, screen_locally); the backend starts its
authorizer and answers ``{"ready": ...}``. Each further line is one command, answered by one JSON
line on stdout (see `_handle`); logs go to stderr. It exits on ``close`` or at the end of stdin;
the tests also kill it with SIGKILL.

Its clock is the system clock plus an offset that ``shift`` moves: the authorizer decides, signs
and times its reports on it (the tests move the server's clock alike, see ``_clocked_server.py``).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import charter
from charter import OfflineAuthorizer
from charter.decision_records import DecisionRecordSigner
from charter.decisions import Decision, LicenseDenied
from charter.v1 import terms_pb2
from charter.v1.offline_pb2 import DecisionRecordClaims

IMAGE = terms_pb2.USE_TYPE_IMAGE_GENERATION
TEEN = terms_pb2.CONTENT_RATING_TEEN
# Reconnect to a restarted server within a fraction of a second, not gRPC's default backoff.
FAST_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 250),
]


class ShiftedClock:
    """The system clock plus an offset (``shift`` moves it)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def _client(target: str, api_key: str) -> charter.Client:
    return charter.Client(target, api_key=api_key, timeout=2.0, options=FAST_RECONNECT)


def _authorizer(
    config: dict[str, Any], client: charter.Client, clock: ShiftedClock, cache_dir: str
) -> OfflineAuthorizer:
    signer = None
    if config.get("signer"):
        key_id, seed = config["signer"]
        signer = DecisionRecordSigner(key_id=key_id, private_key=bytes.fromhex(seed), licensee_id=config["licensee_id"])
    return OfflineAuthorizer(
        client,
        fetch_bundle=True,
        cache_dir=cache_dir or None,
        signer=signer,
        clock=clock,
        max_staleness=timedelta(seconds=config.get("max_staleness", 30.0)),
        min_backoff=timedelta(milliseconds=50),
        max_backoff=timedelta(milliseconds=500),
        lease_uses=config.get("lease_uses", 100),
        lease_ttl=timedelta(seconds=config.get("lease_ttl", 300.0)),
        screen_locally=config.get("screen_locally", False),
    )


def _outcome(decision: Decision, usage: Any = ()) -> dict[str, Any]:
    """What a test needs of one decision (and of its report, after a `license` block)."""
    leases = [DecisionRecordClaims.FromString(r.payload).lease_id for r in decision.decision_records]
    return {
        "at": time.time(),
        "decided": decision.decide_time.timestamp(),  # on the backend's clock
        "offline": decision.offline,
        "allowed": decision.allowed,
        "reasons": [reason.name for c in decision.characters for reason in c.reasons],
        "detected": [d.character_id for d in decision.detections],
        "receipt": decision.receipt is not None,
        "records": len(decision.decision_records),
        "lease": leases[0] if leases else "",
        "reported": [[u.accepted, u.duplicate, u.error_reason] for u in usage],
    }


class Backend:
    """The authorizer and the commands it answers."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.clock = ShiftedClock()
        self.client = _client(config["target"], config["api_key"])
        self.authorizer = _authorizer(config, self.client, self.clock, config.get("cache_dir", ""))

    def license(self, character_id: str) -> dict[str, Any]:
        """One `license` block: authorize, and on a clean exit report the use."""
        try:
            with self.authorizer.license(
                character_ids=[character_id], use_type=IMAGE, content_rating=TEEN, timeout=1.0
            ) as granted:
                pass
        except LicenseDenied as denied:
            return _outcome(denied.decision)
        return _outcome(granted.decision, granted.usage_results)

    def authorize(self, character_id: str, prompt: str = "") -> dict[str, Any]:
        decision = self.authorizer.authorize(
            character_ids=[character_id], prompt=prompt, use_type=IMAGE, content_rating=TEEN, timeout=1.0
        )
        return _outcome(decision)

    def status(self) -> dict[str, Any]:
        fresh = self.authorizer.fresh_as_of
        return {
            "sequence": self.authorizer.sequence,
            "current": self.authorizer.is_current(),
            "fresh_as_of": None if fresh is None else fresh.timestamp(),  # on the backend's clock
            "offset": self.clock.offset.total_seconds(),
            "leases": [[*key, *lease] for key, lease in self.authorizer.leases().items()],
            "pending": len(self.client.pending_usage),
            "screening": self.authorizer.can_screen(),
            "snapshot_version": self.authorizer.snapshot_version,
        }

    def from_cache(self, cache_dir: str, character_id: str, prompt: str = "") -> dict[str, Any]:
        """A second authorizer started from ``cache_dir`` with Charter unreachable (``dead``: a
        loopback address nothing listens on), one decision of it. With a ``prompt``, it first
        waits (at most 10 s) until its kept registry snapshot is taken or refused."""
        with _client(self.config["dead"], self.config["api_key"]) as client:
            restarted = _authorizer(self.config, client, self.clock, cache_dir)
            restarted.start(timeout=0.2)
            try:
                deadline = time.monotonic() + 10.0
                while prompt and not restarted.can_screen() and time.monotonic() < deadline:
                    if restarted._registry_problem is not None:  # refused: nothing more to wait for
                        break
                    time.sleep(0.02)
                decision = restarted.authorize(
                    character_ids=[character_id], prompt=prompt, use_type=IMAGE, content_rating=TEEN
                )
            finally:
                restarted.close()
        return {"outcomes": [_outcome(decision)]}


def _handle(backend: Backend, command: dict[str, Any]) -> dict[str, Any]:
    """One command:

    * ``license`` / ``authorize`` (``character``, ``count``, ``interval``): that many decisions,
      one every ``interval`` seconds; their outcomes;
    * ``loop`` (``character``, ``prompt``, ``seconds``, ``interval``, ``denials``): `authorize`
      (the character declared, and the prompt if any) until ``denials`` denials in a row or
      ``seconds`` pass; every outcome, with its wall time;
    * ``wait_screen`` (``seconds``): until prompts are screened here (``screen_locally``);
    * ``status``; ``flush`` (the reports that could not be delivered, sent again); ``shift``
      (``seconds`` onto the clock); ``from_cache`` (``cache_dir``, ``character``, ``prompt``);
      ``close``.
    """
    op = command["op"]
    answer: dict[str, Any] = {}
    if op in ("license", "authorize"):
        decide = backend.license if op == "license" else backend.authorize
        answer["outcomes"] = []
        for _ in range(command.get("count", 1)):
            answer["outcomes"].append(decide(command["character"]))
            time.sleep(command.get("interval", 0.0))
    elif op == "loop":
        answer["outcomes"], denied_in_a_row = [], 0
        deadline = time.monotonic() + command["seconds"]
        while time.monotonic() < deadline and denied_in_a_row < command["denials"]:
            outcome = backend.authorize(command["character"], command.get("prompt", ""))
            answer["outcomes"].append(outcome)
            denied_in_a_row = 0 if outcome["allowed"] else denied_in_a_row + 1
            time.sleep(command["interval"])
    elif op == "flush":
        results = backend.client.flush_usage(timeout=5.0)
        answer["reported"] = [[r.accepted, r.duplicate, r.error_reason] for r in results]
        answer["late"] = [r.late for r in results]
    elif op == "shift":
        backend.clock.offset += timedelta(seconds=command["seconds"])
    elif op == "wait_screen":
        backend.authorizer.wait_screen(timeout=command["seconds"])
    elif op == "from_cache":
        return backend.from_cache(command["cache_dir"], command["character"], command.get("prompt", ""))
    elif op == "close":
        backend.authorizer.close()
        pending = len(backend.client.pending_usage)
        backend.client.close()
        return {"closed": True, "pending": pending}
    elif op != "status":
        raise ValueError(f"unknown command {op!r}")
    return {**answer, **backend.status()}


def _answer(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = json.loads(sys.stdin.readline())
    if config.get("cache_dir"):
        Path(config["cache_dir"]).mkdir(parents=True, exist_ok=True)
    backend = Backend(config)
    backend.authorizer.start(timeout=config.get("start_timeout", 10.0))
    _answer({"ready": True, "pid": os.getpid(), **backend.status()})
    for line in sys.stdin:
        command = json.loads(line)
        try:
            answer = _handle(backend, command)
        except Exception as error:  # the test sees it in the answer, with the backend still alive
            logging.getLogger("backend").exception("command %s failed", command["op"])
            answer = {"error": repr(error)}
        _answer(answer)
        if command["op"] == "close":
            return


if __name__ == "__main__":
    main()
