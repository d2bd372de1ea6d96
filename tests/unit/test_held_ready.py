"""Held grants added while a key ring is current: what their first decision gives (`Checked`, the
one-grant candidates) is made when they are added, and given out only once the grant verified
against that very ring; a cold decision then makes no object but the verifier's own."""

from __future__ import annotations

import gc
from collections import Counter
from datetime import timedelta
from types import SimpleNamespace
from typing import cast

from charter.decisions import CharacterDecision
from charter.grants import GrantVerifier, KeyRing
from charter.offline.decisions import decide_offline
from charter.offline.held import Checked, Held, HeldGrants, parse
from charter.offline.held import check as check_held
from charter.offline.keys import LicenseeKeys
from charter.offline.revocations import RevocationView
from charter.terms import UseContext
from charter.v1 import terms_pb2

from .test_grant_verifier import LICENSEE, NOW, claims, grant, ring
from .test_prepared_grant import resigned_payload

USE = UseContext(terms_pb2.USE_TYPE_VIDEO_GENERATION, terms_pb2.CONTENT_RATING_ALL_AGES, NOW, licensee_id=LICENSEE)


def checked(held: Held, keys: KeyRing, verifier: GrantVerifier | None = None) -> Checked:
    # (the skew the grants are parsed with, as an authorizer's verifier has its own)
    verifier = verifier or GrantVerifier(skew=timedelta(0))
    return check_held(verifier, held, keys, licensee_id=LICENSEE, now=NOW, skew_us=0)


def test_a_grant_added_under_a_ring_is_decided_with_what_was_made_ready() -> None:
    keys = ring()
    _, held = parse(grant(), 0, keys)
    assert held.granted is not None and held.granted.ready is not None
    ready = held.granted.ready[0]
    assert held.checked is None  # nothing is given out before a signature verified

    found = checked(held, keys)

    assert found is ready
    assert (found.ring, found.integrity.value, found.allow) == (keys, "verified", held.granted.allow)


def test_what_was_made_ready_is_not_taken_against_another_ring() -> None:
    keys, later = ring(), ring(version="2")
    _, held = parse(grant(), 0, keys)
    assert held.granted is not None and held.granted.ready is not None

    found = checked(held, later)

    assert found is not held.granted.ready[0]
    assert found.ring is later and found.integrity.value == "verified"


def test_what_was_made_ready_is_never_taken_for_a_grant_that_does_not_verify() -> None:
    keys = ring()
    _, held = parse(resigned_payload(grant()), 0, keys)
    assert held.granted is not None and held.granted.ready is not None  # from unverified claims

    found = checked(held, keys)

    assert found is not held.granted.ready[0]
    assert (found.integrity.value, found.allow, found.terms) == ("invalid", None, None)


def test_a_grant_added_before_any_ring_is_checked_as_before() -> None:
    _, held = parse(grant())
    assert held.granted is not None and held.granted.ready is None

    found = checked(held, ring())

    assert found.integrity.value == "verified" and found.allow is held.granted.allow


def test_a_cold_decision_makes_no_object_but_the_verifiers() -> None:
    """The collector's work is paid by the decisions that make objects: a cold decision makes the
    verifier's entry and its verification only (it made a `Checked`, a candidates tuple, a dict for
    it and an `Outcome` before)."""
    keys = ring()
    key_set = cast(LicenseeKeys, SimpleNamespace(ring=keys))
    characters = [f"chr_{number:032x}" for number in range(20)]
    verifier = GrantVerifier(skew=timedelta(0))

    def check(grant: Held, ring: KeyRing, now: object) -> Checked:
        return checked(grant, ring, verifier)

    def made_per_decision() -> tuple[list[object], dict[str, int]]:
        """Cold decisions of fresh grants, and the kinds of object made at least once per decision."""
        held = HeldGrants(0, key_set)
        held.add(grant(claims(character_id=character)) for character in characters)
        view = RevocationView(lambda: NOW)
        # A full collection leaves the youngest generation empty, and with the collector off
        # every object made since stays in it: listing that generation alone finds them (listing
        # every object, millions in a worker late in a run, took 40 s of its three tries).
        gc.collect()
        gc.disable()
        try:
            before = {id(thing) for thing in gc.get_objects(generation=0)}
            decided: list[object] = [
                decide_offline(character, USE, held.by_character[character], keys, view, False, check)  # type: ignore[arg-type]
                for character in characters
            ]
            made = Counter(type(thing).__name__ for thing in gc.get_objects(generation=0) if id(thing) not in before)
        finally:
            gc.enable()
        return decided, {kind: count for kind, count in made.items() if count >= len(characters)}

    # Another test's threads in this worker may make objects meanwhile: of three tries, the one
    # with the fewest kinds counts (what the decisions make shows in every try).
    tries = [made_per_decision() for _ in range(3)]
    decided, per_decision = min(tries, key=lambda one: len(one[1]))

    assert all(isinstance(one, CharacterDecision) and one.allowed for one in decided), decided
    assert per_decision == {"Entry": len(characters), "Verification": len(characters)}
