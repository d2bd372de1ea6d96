"""The offline authorizer's grant bundle and cache directory: it fetches its own grants, keeps them
and the state it decides with on disk (atomically, authenticated with a key derived from the API
key, checked on load), and started while Charter is unreachable it decides from the cache while
that is within max_staleness, then denies (REVOCATIONS_STALE; SERVER_UNREACHABLE without a usable
cache, CACHE_CORRUPTED for a damaged one or one written without the API key) instead of raising."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import os
import re
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import nacl.signing
import pytest
from charter import Client, OfflineAuthorizer, envelope
from charter.offline.cache import (
    FILE_NAME,
    SNAPSHOT_FILE_NAME,
    STATE_FILE_NAME,
    CacheCorrupted,
    CacheForeign,
    CacheKey,
    OfflineState,
    load_bundle,
    load_snapshot,
    load_state,
    save_bundle,
    save_snapshot,
    save_state,
)
from charter.terms import DenyReason
from charter.v1 import api_key_pb2, grant_pb2, offline_service_pb2, signing_key_pb2, terms_pb2

from ._scene import Scene, make_scene
from ._tap import Tap

IMAGE = terms_pb2.USE_TYPE_IMAGE_GENERATION
TEEN = terms_pb2.CONTENT_RATING_TEEN
LICENSEE = "lic_" + "0" * 32
KEY = CacheKey.of_api_key("key_" + "6" * 32 + ".a-secret-of-the-test")


def _dead_target() -> str:
    """A loopback address nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"127.0.0.1:{port}"


def test_the_cache_round_trips_and_refuses_damage(tmp_path: Path) -> None:
    bundle = offline_service_pb2.GetGrantBundleResponse(revocation_sequence=7)
    bundle.grants.add(id="grt_" + "1" * 32)
    save_bundle(tmp_path, KEY, LICENSEE, bundle)
    loaded = load_bundle(tmp_path, KEY)
    data = (tmp_path / FILE_NAME).read_bytes()

    (tmp_path / FILE_NAME).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(CacheCorrupted):
        load_bundle(tmp_path, KEY)
    (tmp_path / FILE_NAME).write_bytes(data[: len(data) // 2])
    with pytest.raises(CacheCorrupted):
        load_bundle(tmp_path, KEY)
    (tmp_path / FILE_NAME).write_bytes(b"something else")
    with pytest.raises(CacheCorrupted):
        load_bundle(tmp_path, KEY)

    assert loaded == (LICENSEE, bundle)
    assert load_bundle(tmp_path / "empty", KEY) is None
    assert [p.name for p in tmp_path.iterdir()] == [FILE_NAME]  # no temporary file left behind


class Clock:
    """Real time plus an offset the test moves."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def test_the_state_round_trips_and_refuses_damage(tmp_path: Path) -> None:
    key_set = signing_key_pb2.KeySet(version="3")
    key_set.keys.add(key_id="sk_1", public_key=b"k" * 32)
    when = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)
    state = OfflineState(
        api_key_id="key_" + "5" * 32,
        key_set=key_set,
        platform="web",
        archived=False,
        confirmed=when,
        sequence=42,
        fresh_as_of=when + timedelta(seconds=3),
        statuses={"grt_" + "1" * 32: "REVOKED", "grt_" + "2" * 32: "SUSPENDED"},
        suspended=("chr_" + "3" * 32,),
        withdrawn=("chr_" + "4" * 32,),
    )
    save_state(tmp_path, KEY, LICENSEE, state)
    loaded = load_state(tmp_path, KEY)
    data = (tmp_path / STATE_FILE_NAME).read_bytes()
    forged = OfflineState.to_json(dataclasses.replace(state, statuses={"grt_x": "ACTIVE"}))

    (tmp_path / STATE_FILE_NAME).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(CacheCorrupted):
        load_state(tmp_path, KEY)
    # A file framed and authenticated with the key whose body is not a state (an unknown grant
    # status) is refused too.
    save_state(tmp_path, KEY, LICENSEE, dataclasses.replace(state, statuses={}))
    _rewrite(tmp_path / STATE_FILE_NAME, lambda _: LICENSEE.encode() + b"\n" + forged, KEY)
    with pytest.raises(CacheCorrupted):
        load_state(tmp_path, KEY)

    assert loaded == (LICENSEE, state)
    assert load_state(tmp_path / "empty", KEY) is None


def _rewrite(path: Path, edit: Callable[[bytes], bytes], key: CacheKey | None = None) -> None:
    """Change a cache file's body (its licensee line and payload) with ``edit``, and make its check
    match: an HMAC with ``key``'s, or, without one, what anyone who can write the directory but
    holds no API key can do: the body's SHA-256, as every file had before files were keyed (the
    check is the line of 64 hex digits, so this works on both formats)."""
    lines = path.read_bytes().split(b"\n")
    at = next(i for i, line in enumerate(lines) if re.fullmatch(rb"[0-9a-f]{64}", line))
    head, body = b"".join(line + b"\n" for line in lines[:at]), edit(b"\n".join(lines[at + 1 :]))
    check = hashlib.sha256(body) if key is None else hmac.new(key.mac_key, head + body, hashlib.sha256)
    path.write_bytes(head + check.hexdigest().encode() + b"\n" + body)


def _edit_state(change: Callable[[dict[str, object]], None]) -> Callable[[bytes], bytes]:
    """An edit of a state file's body: ``change`` applied to its JSON."""

    def edit(body: bytes) -> bytes:
        licensee, _, payload = body.partition(b"\n")
        values = json.loads(payload)
        change(values)
        return licensee + b"\n" + json.dumps(values, sort_keys=True, separators=(",", ":")).encode()

    return edit


def test_a_file_written_without_the_api_key_is_refused(tmp_path: Path) -> None:
    key_set = signing_key_pb2.KeySet(version="3")
    when = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)
    revoked = "grt_" + "1" * 32
    state = OfflineState("key_" + "6" * 32, key_set, "web", False, when, 42, when, {revoked: "REVOKED"}, (), ())
    other = CacheKey.of_api_key("key_" + "6" * 32 + ".another-secret")
    outcomes: dict[str, object] = {}

    def outcome(name: str, key: CacheKey = KEY) -> None:
        try:
            outcomes[name] = load_state(tmp_path, key)
        except (CacheCorrupted, CacheForeign) as error:
            outcomes[name] = type(error)

    save_state(tmp_path, KEY, LICENSEE, state)
    outcome("genuine")
    _rewrite(tmp_path / STATE_FILE_NAME, _edit_state(lambda values: values.update(statuses={})))
    outcome("revocation forgotten, unkeyed digest")
    save_state(tmp_path, other, LICENSEE, state)
    outcome("another API key's")
    outcome("read with that key", other)
    # Another key's file claiming this key's fingerprint: its HMAC tells.
    data = (tmp_path / STATE_FILE_NAME).read_bytes().replace(other.fingerprint.encode(), KEY.fingerprint.encode())
    (tmp_path / STATE_FILE_NAME).write_bytes(data)
    outcome("another key's, this key's fingerprint")
    # Exactly what an SDK before keyed files wrote (so what anyone could have written).
    body = LICENSEE.encode() + b"\n" + state.to_json()
    legacy = b"charter-offline-state v1\n" + hashlib.sha256(body).hexdigest().encode() + b"\n" + body
    (tmp_path / STATE_FILE_NAME).write_bytes(legacy)
    outcome("unkeyed, from an SDK before")
    save_snapshot(tmp_path, other, LICENSEE, b"pages")
    save_bundle(tmp_path, other, LICENSEE, offline_service_pb2.GetGrantBundleResponse())
    for load in (load_snapshot, load_bundle):
        with pytest.raises(CacheForeign):
            load(tmp_path, KEY)

    assert outcomes == {
        "genuine": (LICENSEE, state),
        "revocation forgotten, unkeyed digest": CacheCorrupted,
        "another API key's": CacheForeign,
        "read with that key": (LICENSEE, state),
        "another key's, this key's fingerprint": CacheCorrupted,
        "unkeyed, from an SDK before": CacheForeign,
    }
    assert KEY.mac_key.hex() not in repr(KEY) and KEY.fingerprint != other.fingerprint
    assert CacheKey.of_api_key("key_" + "6" * 32 + ".a-secret-of-the-test") == KEY  # processes share it
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([FILE_NAME, SNAPSHOT_FILE_NAME, STATE_FILE_NAME])


def test_a_restart_without_charter_decides_from_the_cache_until_max_staleness(scene: Scene, tmp_path: Path) -> None:
    kept = scene.character()
    revoked = scene.character(granted=False)
    revoked_grant = scene.grant(revoked.id)
    clock = Clock()

    def decide(authorizer: OfflineAuthorizer, character_id: str) -> tuple[bool, bool, tuple[DenyReason, ...]]:
        decision = authorizer.authorize(character_ids=[character_id], use_type=IMAGE, content_rating=TEEN)
        return decision.offline, decision.allowed, decision.characters[0].reasons

    with (
        Client(scene.live.target, api_key=scene.generator_key) as client,
        OfflineAuthorizer(client, fetch_bundle=True, cache_dir=tmp_path, clock=clock) as online,
    ):
        sequence = scene.staff.revoke_grant(revoked_grant.id, reason="ended").sequence
        assert online.wait_current(min_sequence=sequence, timeout=10)
        before = [decide(online, kept.id), decide(online, revoked.id)]
    with Client(_dead_target(), api_key=scene.generator_key, timeout=1.0) as dead:
        restarted = OfflineAuthorizer(dead, fetch_bundle=True, cache_dir=tmp_path, clock=clock)
        restarted.start(timeout=0.2)  # must not raise
        try:
            held = repr(restarted)
            within = [decide(restarted, kept.id), decide(restarted, revoked.id)]
            clock.offset = timedelta(seconds=31)  # past max_staleness (30 s) since the last heartbeat
            after = [decide(restarted, kept.id), decide(restarted, revoked.id)]
        finally:
            restarted.close()
        clock.offset = timedelta()
        data = (tmp_path / STATE_FILE_NAME).read_bytes()
        (tmp_path / STATE_FILE_NAME).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
        damaged = OfflineAuthorizer(dead, fetch_bundle=True, cache_dir=tmp_path, clock=clock)
        damaged.start(timeout=0.2)
        try:
            refused = decide(damaged, kept.id)
        finally:
            damaged.close()

    revoked_offline = (True, False, (DenyReason.GRANT_REVOKED,))
    assert before == [(True, True, ()), revoked_offline]  # from the fetched bundle: no grants were given
    assert f"licensee_id='{scene.licensee_id}', sequence={sequence}" in held and "grants=2" in held
    # Within max_staleness the cache decides, revocation included; then the server must, and cannot.
    assert within == [(True, True, ()), revoked_offline]
    stale = (True, False, (DenyReason.REVOCATIONS_STALE,))
    assert after == [stale, stale]
    assert refused == (True, False, (DenyReason.CACHE_CORRUPTED,))


def test_a_kept_view_later_than_the_clock_is_stale_from_the_start(scene: Scene, tmp_path: Path) -> None:
    character = scene.character()
    clock = Clock()
    with (
        Client(scene.live.target, api_key=scene.generator_key) as client,
        OfflineAuthorizer(client, fetch_bundle=True, cache_dir=tmp_path, clock=clock) as online,
    ):
        assert online.wait_current(timeout=10)
    clock.offset = timedelta(hours=-1)  # the clock stepped back since the state was written
    with Client(_dead_target(), api_key=scene.generator_key, timeout=1.0) as dead:
        restarted = OfflineAuthorizer(dead, fetch_bundle=True, cache_dir=tmp_path, clock=clock)
        restarted.start(timeout=0.2)
        try:
            current = restarted.is_current()
            decision = restarted.authorize(character_ids=[character.id], use_type=IMAGE, content_rating=TEEN)
        finally:
            restarted.close()

    assert not current
    assert decision.offline
    assert not decision.allowed
    assert decision.characters[0].reasons == (DenyReason.REVOCATIONS_STALE,)


def test_a_cache_is_used_only_by_the_api_key_that_wrote_it(scene: Scene, tmp_path: Path) -> None:
    character = scene.character()
    other = make_scene(scene.live, scene.staff)
    with (
        Client(scene.live.target, api_key=scene.generator_key) as client,
        OfflineAuthorizer(client, fetch_bundle=True, cache_dir=tmp_path) as online,
    ):
        assert online.is_current()
    decisions = {}
    for name, key in (("own", scene.generator_key), ("other", other.generator_key)):
        with Client(_dead_target(), api_key=key, timeout=1.0) as dead:
            restarted = OfflineAuthorizer(dead, fetch_bundle=True, cache_dir=tmp_path)
            restarted.start(timeout=0.2)
            try:
                decision = restarted.authorize(character_ids=[character.id], use_type=IMAGE, content_rating=TEEN)
            finally:
                restarted.close()
        decisions[name] = (decision.offline, decision.allowed, decision.characters[0].reasons)

    assert decisions == {
        "own": (True, True, ()),
        "other": (True, False, (DenyReason.SERVER_UNREACHABLE,)),  # the cache is not its own
    }


def _decided(authorizer: OfflineAuthorizer, character_id: str) -> tuple[bool, bool, tuple[DenyReason, ...]]:
    decision = authorizer.authorize(character_ids=[character_id], use_type=IMAGE, content_rating=TEEN)
    return decision.offline, decision.allowed, decision.characters[0].reasons


def _restarted_without_charter(api_key: str, cache_dir: Path, *characters: str) -> list[tuple[object, ...]]:
    """A restart from ``cache_dir`` while Charter cannot be reached: how it decides ``characters``."""
    with Client(_dead_target(), api_key=api_key, timeout=1.0) as dead:
        restarted = OfflineAuthorizer(dead, fetch_bundle=True, cache_dir=cache_dir)
        restarted.start(timeout=0.2)
        try:
            return [_decided(restarted, character) for character in characters]
        finally:
            restarted.close()


def test_a_revocation_taken_out_of_the_cache_without_the_api_key_stays_revoked(
    scene: Scene, tap: Tap, tmp_path: Path
) -> None:
    kept = scene.character()
    revoked = scene.character(granted=False)
    revoked_grant = scene.grant(revoked.id)
    with (
        Client(scene.live.target, api_key=scene.generator_key) as client,
        OfflineAuthorizer(client, fetch_bundle=True, cache_dir=tmp_path) as online,
    ):
        sequence = scene.staff.revoke_grant(revoked_grant.id, reason="ended").sequence
        assert online.wait_current(min_sequence=sequence, timeout=10)
    # Someone who can write the directory but holds no API key takes the revocation out of the kept
    # view, the file's check made to match as far as they can.
    _rewrite(tmp_path / STATE_FILE_NAME, _edit_state(lambda values: values["statuses"].clear()))

    decided = {"without Charter": _restarted_without_charter(scene.generator_key, tmp_path, kept.id, revoked.id)}
    # Charter unreachable at start (the kept files are read), then answering: the stream must bring
    # the revocation back, so it may not resume after the kept sequence of a refused file.
    tap.fail("GetCaller", grpc.StatusCode.UNAVAILABLE)
    with Client(tap.target, api_key=scene.generator_key, retry=None) as client:
        back = OfflineAuthorizer(client, fetch_bundle=True, cache_dir=tmp_path)
        back.start(timeout=None)
        try:
            current = back.wait_current(min_sequence=sequence, timeout=10)
            decided["once Charter answers"] = [_decided(back, c) for c in (kept.id, revoked.id)]
        finally:
            back.close()
    # The files written anew with the key then: a restart decides from them, the revocation kept.
    written = load_state(tmp_path, CacheKey.of_api_key(scene.generator_key))
    decided["restarted again"] = _restarted_without_charter(scene.generator_key, tmp_path, kept.id, revoked.id)

    corrupted = (True, False, (DenyReason.CACHE_CORRUPTED,))
    assert [call.method for call in tap.calls][:1] == ["GetCaller"] and current
    assert written is not None and written[1].statuses == {revoked_grant.id: "REVOKED"}
    # (The bundle fetched anew holds no revoked grant: the server decides that character.)
    assert decided == {
        "without Charter": [corrupted, corrupted],
        "once Charter answers": [(True, True, ()), (False, False, (DenyReason.GRANT_REVOKED,))],
        "restarted again": [(True, True, ()), (True, False, (DenyReason.SERVER_UNREACHABLE,))],
    }


def test_another_api_keys_cache_is_not_used_even_when_it_names_this_key(scene: Scene, tmp_path: Path) -> None:
    """A rotated key's cache (the licensee's other generator key): not this key's, even with this
    key's id written into it; it is fetched anew once Charter answers."""
    character = scene.character()
    rotated = scene.staff.create_api_key(
        display_name="renderer, rotated", role=api_key_pb2.ROLE_GENERATOR, licensee_id=scene.licensee_id
    ).secret
    with (
        Client(scene.live.target, api_key=rotated) as client,
        OfflineAuthorizer(client, fetch_bundle=True, cache_dir=tmp_path) as online,
    ):
        assert online.wait_current(timeout=10)
    decided = {"as written": _restarted_without_charter(scene.generator_key, tmp_path, character.id)}
    this_key_id = scene.generator_key.partition(".")[0]
    _rewrite(tmp_path / STATE_FILE_NAME, _edit_state(lambda values: values.update(api_key_id=this_key_id)))
    decided["naming this key"] = _restarted_without_charter(scene.generator_key, tmp_path, character.id)
    decided["by the key that wrote it"] = _restarted_without_charter(rotated, tmp_path, character.id)

    unreachable = [(True, False, (DenyReason.SERVER_UNREACHABLE,))]  # as if there were no cache
    assert decided == {
        "as written": unreachable,
        "naming this key": unreachable,
        "by the key that wrote it": [(True, False, (DenyReason.CACHE_CORRUPTED,))],  # its HMAC no longer matches
    }


def _plant_key_and_forge(
    directory: Path, api_key: str, licensee_id: str, genuine_character: str, target: str, *, version: str = "-planted"
) -> grant_pb2.Grant:
    """What someone who can write the cache directory and holds the API key (but no Charter signing
    key) does: add a key of their own to the kept key set (its version followed by ``version``), and
    put a grant of ``target`` signed by it into the kept bundle (the claims of the genuine grant,
    another character); returns the forged grant. (Without the API key the files are refused at
    once: `test_a_revocation_taken_out_of_the_cache_without_the_api_key_stays_revoked`.)"""
    seed = os.urandom(32)
    key_id = "sk_" + os.urandom(8).hex()
    cache_key = CacheKey.of_api_key(api_key)
    kept = load_state(directory, cache_key)
    found = load_bundle(directory, cache_key)
    assert kept is not None and found is not None
    _, state = kept
    _, bundle = found
    key_set = signing_key_pb2.KeySet()
    key_set.CopyFrom(state.key_set)
    key_set.version += version
    planted = key_set.keys.add(
        key_id=key_id,
        algorithm="ed25519",
        public_key=bytes(nacl.signing.SigningKey(seed).verify_key),
        state=signing_key_pb2.SigningKey.STATE_ACTIVE,
        purpose=signing_key_pb2.SigningKey.PURPOSE_GRANTS,
    )
    planted.activate_time.FromDatetime(datetime(2020, 1, 1, tzinfo=UTC))
    save_state(directory, cache_key, licensee_id, dataclasses.replace(state, key_set=key_set))
    (genuine,) = [grant for grant in bundle.grants if grant.character_id == genuine_character]
    claims = grant_pb2.GrantClaims.FromString(genuine.envelope.payload)
    claims.grant_id, claims.character_id = "grt_" + os.urandom(16).hex(), target
    forged = bundle.grants.add()
    forged.CopyFrom(genuine)
    forged.id, forged.character_id = claims.grant_id, target
    forged.envelope.CopyFrom(
        envelope.sign(claims.SerializeToString(), envelope.GRANT_PAYLOAD_TYPE, key_id=key_id, private_key=seed)
    )
    save_bundle(directory, cache_key, licensee_id, bundle)
    return forged


def test_a_key_planted_in_the_cache_under_the_servers_version_verifies_nothing_once_charter_answers(
    scene: Scene, tap: Tap, tmp_path: Path
) -> None:
    """A backend restarted while Charter is unreachable decides from the kept key set (a key planted
    in it included: what `pinned_keys` is for); once Charter answers, its key set replaces the kept
    one whole, even when the kept one names the same version."""
    genuine = scene.character()
    target = scene.character(granted=False)
    with (
        Client(scene.live.target, api_key=scene.generator_key) as client,
        OfflineAuthorizer(client, fetch_bundle=True, cache_dir=tmp_path) as online,
    ):
        assert online.wait_current(timeout=10)
    _plant_key_and_forge(tmp_path, scene.generator_key, scene.licensee_id, genuine.id, target.id, version="")

    tap.fail("GetCaller", grpc.StatusCode.UNAVAILABLE, times=1_000)
    with Client(tap.target, api_key=scene.generator_key, timeout=1.0) as client:
        restarted = OfflineAuthorizer(
            client, fetch_bundle=True, cache_dir=tmp_path, min_backoff=timedelta(milliseconds=50)
        )
        restarted.start(timeout=0.2)
        during = _decided(restarted, target.id)
        tap.reset()  # Charter answers again
        deadline = time.monotonic() + 10
        after = _decided(restarted, target.id)
        while after[0] and time.monotonic() < deadline:
            time.sleep(0.05)
            after = _decided(restarted, target.id)
        restarted.close()

    assert during == (True, True, ())  # the kept key set, as documented
    # The forged grant's key is not in Charter's key set: the server decides, and refuses.
    assert after == (False, False, (DenyReason.GRANT_INVALID,))


def test_with_pinned_keys_a_key_planted_in_the_cache_forges_nothing(scene: Scene, tmp_path: Path) -> None:
    genuine = scene.character()
    target = scene.character(granted=False)
    with (
        Client(scene.live.target, api_key=scene.generator_key) as client,
        OfflineAuthorizer(client, fetch_bundle=True, cache_dir=tmp_path) as online,
    ):
        assert online.wait_current(timeout=10)
        key_set = client.get_key_set()
    grants_keys = [k.public_key for k in key_set.keys if k.purpose == signing_key_pb2.SigningKey.PURPOSE_GRANTS]
    _plant_key_and_forge(tmp_path, scene.generator_key, scene.licensee_id, genuine.id, target.id)

    decided = {}
    pins = {"no pin": None, "raw": grants_keys, "base64": [base64.b64encode(k).decode() for k in grants_keys]}
    for name, pinned in pins.items():
        with Client(_dead_target(), api_key=scene.generator_key, timeout=1.0) as dead:
            restarted = OfflineAuthorizer(dead, fetch_bundle=True, cache_dir=tmp_path, pinned_keys=pinned)
            restarted.start(timeout=0.2)
            try:
                answers = [
                    restarted.authorize(character_ids=[c], use_type=IMAGE, content_rating=TEEN)
                    for c in (target.id, genuine.id)
                ]
            finally:
                restarted.close()
        decided[name] = [(a.offline, a.allowed, a.characters[0].reasons) for a in answers]

    # Without a pin the planted key is trusted: the forgery passes (what pinned_keys is for).
    assert decided["no pin"] == [(True, True, ()), (True, True, ())]
    pinned = [(True, False, (DenyReason.UNKNOWN_KEY,)), (True, True, ())]
    assert decided["raw"] == pinned
    assert decided["base64"] == pinned


def test_pinned_keys_are_checked_on_every_refresh_from_charter_too(scene: Scene) -> None:
    """A key set Charter answers with is held to the pin as the cache's is: a grant signed by a key
    the pin does not name (here: every key, the pin naming another) is decided by the server."""
    character = scene.character()
    with Client(scene.live.target, api_key=scene.generator_key) as client:
        grants = [g.envelope for g in client.get_grant_bundle().grants]
        decided = []
        for pinned in (None, [os.urandom(32)]):
            with OfflineAuthorizer(client, grants=grants, pinned_keys=pinned) as authorizer:
                assert authorizer.wait_current(timeout=10)
                answer = authorizer.authorize(character_ids=[character.id], use_type=IMAGE, content_rating=TEEN)
                decided.append((answer.offline, answer.allowed))

    assert decided == [(True, True), (False, True)]


@pytest.mark.parametrize(
    ("pinned", "error"),
    [
        ([], ValueError),
        ([b"short"], ValueError),
        (["not base64!"], ValueError),
        ([base64.b64encode(b"x" * 31).decode()], ValueError),
        ([42], TypeError),
        (b"x" * 32, TypeError),
    ],
)
def test_a_pin_that_names_no_public_key_is_refused(scene: Scene, pinned: object, error: type[Exception]) -> None:
    with Client(_dead_target(), api_key=scene.generator_key) as client, pytest.raises(error):
        OfflineAuthorizer(client, pinned_keys=pinned)  # type: ignore[arg-type]
