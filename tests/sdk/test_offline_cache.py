"""The offline authorizer's grant bundle and cache directory: it fetches its own grants, keeps them
on disk (atomically, checked on load), and started while Charter is unreachable it holds the cached
grants and denies (SERVER_UNREACHABLE, or CACHE_CORRUPTED for a damaged cache) instead of raising."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from charter import Client, OfflineAuthorizer
from charter.offline.cache import FILE_NAME, CacheCorrupted, load_bundle, save_bundle
from charter.terms import DenyReason
from charter.v1 import offline_service_pb2, terms_pb2

from ._scene import Scene

IMAGE = terms_pb2.USE_TYPE_IMAGE_GENERATION
TEEN = terms_pb2.CONTENT_RATING_TEEN
LICENSEE = "lic_" + "0" * 32


def _dead_target() -> str:
    """A loopback address nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"127.0.0.1:{port}"


def test_the_cache_round_trips_and_refuses_damage(tmp_path: Path) -> None:
    bundle = offline_service_pb2.GetGrantBundleResponse(revocation_sequence=7)
    bundle.grants.add(id="grt_" + "1" * 32)
    save_bundle(tmp_path, LICENSEE, bundle)
    loaded = load_bundle(tmp_path)
    data = (tmp_path / FILE_NAME).read_bytes()

    (tmp_path / FILE_NAME).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(CacheCorrupted):
        load_bundle(tmp_path)
    (tmp_path / FILE_NAME).write_bytes(data[: len(data) // 2])
    with pytest.raises(CacheCorrupted):
        load_bundle(tmp_path)
    (tmp_path / FILE_NAME).write_bytes(b"something else")
    with pytest.raises(CacheCorrupted):
        load_bundle(tmp_path)

    assert loaded == (LICENSEE, bundle)
    assert load_bundle(tmp_path / "empty") is None
    assert [p.name for p in tmp_path.iterdir()] == [FILE_NAME]  # no temporary file left behind


def test_a_restart_without_charter_holds_the_cached_grants_and_denies(scene: Scene, tmp_path: Path) -> None:
    character = scene.character()
    with (
        Client(scene.live.target, api_key=scene.generator_key) as client,
        OfflineAuthorizer(client, fetch_bundle=True, cache_dir=tmp_path) as online,
    ):
        decided = online.authorize(character_ids=[character.id], use_type=IMAGE, content_rating=TEEN)
    with Client(_dead_target(), api_key=scene.generator_key, timeout=1.0) as dead:
        restarted = OfflineAuthorizer(dead, fetch_bundle=True, cache_dir=tmp_path)
        restarted.start(timeout=0.2)  # must not raise
        try:
            held = repr(restarted)
            denied = restarted.authorize(character_ids=[character.id], use_type=IMAGE, content_rating=TEEN)
        finally:
            restarted.close()
        data = (tmp_path / FILE_NAME).read_bytes()
        (tmp_path / FILE_NAME).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
        damaged = OfflineAuthorizer(dead, fetch_bundle=True, cache_dir=tmp_path)
        damaged.start(timeout=0.2)
        try:
            refused = damaged.authorize(character_ids=[character.id], use_type=IMAGE, content_rating=TEEN)
        finally:
            damaged.close()

    assert decided.offline and decided.allowed  # from the fetched bundle: no grants were given
    assert "grants=1" in held
    assert (denied.allowed, denied.characters[0].reasons) == (False, (DenyReason.SERVER_UNREACHABLE,))
    assert (refused.allowed, refused.characters[0].reasons) == (False, (DenyReason.CACHE_CORRUPTED,))
