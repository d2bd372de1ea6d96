"""The offline authorizer's cache directory: what a restarted backend needs to decide before
Charter answers (give each licensee its own directory).

Three files, each a header line, the fingerprint of the API key that wrote it (`CacheKey`; never
the key itself), an HMAC-SHA256 in hex of all but itself, the licensee's id on a line, and a
body: ``grant-bundle.bin`` holds the last grant bundle fetched (a serialized
``charter.v1.GetGrantBundleResponse``), ``offline-state.bin`` the last state decided with (JSON,
`OfflineState`: the key set and the licensee as last fetched, and the revocation view as of its
last heartbeat), ``registry-snapshot.bin`` the registry snapshot screened with (its signed pages,
`charter.offline.snapshot.pack`: every signature is checked again on load). Each is written
atomically (a temporary file in the same directory, flushed to disk, then renamed over the old
one), so a crash leaves the old file or the new one, never half of either.

The HMAC is keyed by a key derived from the API key the authorizer's client holds (HKDF-SHA256,
`CacheKey.of_api_key`), which the directory does not hold: a file damaged on disk, or written or
changed by anyone without that API key, is refused on load (`CacheCorrupted`) rather than used,
so a revocation taken out of the kept view, or a key planted in the kept key set, never reaches a
decision. A file written with another API key (a rotated one, another licensee's) or by an SDK
before these keyed files is not this authorizer's (`CacheForeign`): it is not used either, and
is written anew once Charter answers. Processes holding the same API key share a directory.

What the key cannot tell is a file replaced by an *older* one the same API key wrote: such a
state carries its older heartbeat time and sequence, so it decides offline only within
``max_staleness`` of that heartbeat (as a backend cut off then would) and the revocation stream,
resumed from its older sequence, brings back every revocation since.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import hmac
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from charter.v1 import offline_service_pb2, signing_key_pb2

FILE_NAME: Final = "grant-bundle.bin"
STATE_FILE_NAME: Final = "offline-state.bin"
SNAPSHOT_FILE_NAME: Final = "registry-snapshot.bin"
_SNAPSHOT_HEADER: Final = b"charter-registry-snapshot v2\n"
_HEADER: Final = b"charter-grant-bundle v2\n"
_STATE_HEADER: Final = b"charter-offline-state v2\n"
_UNKEYED: Final = {  # the headers of the unkeyed files of SDKs before 2026-12-07
    _HEADER: b"charter-grant-bundle v1\n",
    _STATE_HEADER: b"charter-offline-state v1\n",
    _SNAPSHOT_HEADER: b"charter-registry-snapshot v1\n",
}
# HKDF-SHA256 (RFC 5869) of the API key: the salt and the infos keep its outputs for this use only.
_SALT: Final = b"charter.offline.cache"
_MAC_INFO: Final = b"charter.offline.cache v2: file authentication key"
_FINGERPRINT_INFO: Final = b"charter.offline.cache v2: API key fingerprint"


class CacheCorrupted(ValueError):
    """A cache file failed its integrity check (truncated, changed, not a cache file, or written
    by someone without the API key)."""


class CacheForeign(Exception):
    """A cache file written with another API key (a rotated one, another licensee's) or by an SDK
    before keyed cache files: not this authorizer's, so treated as absent and written anew."""


@dataclass(frozen=True, slots=True)
class CacheKey:
    """What authenticates the cache files: derived from an API key, never written anywhere.

    Attributes:
        fingerprint: Names the API key in each file (hex; reveals nothing of the key).
        mac_key: The HMAC-SHA256 key of the files.
    """

    fingerprint: str
    mac_key: bytes = dataclasses.field(repr=False)

    @staticmethod
    def of_api_key(api_key: str) -> CacheKey:
        """The key of the files written and read by a client holding ``api_key`` (all of it, the
        secret included: whoever lacks the secret cannot write a file this key accepts).

        Raises:
            ValueError: ``api_key`` is empty.
        """
        if not api_key:
            raise ValueError("a cache key needs an API key")
        pseudorandom = hmac.digest(_SALT, api_key.encode(), "sha256")  # HKDF-Extract
        mac_key = hmac.digest(pseudorandom, _MAC_INFO + b"\x01", "sha256")  # HKDF-Expand, one block
        fingerprint = hmac.digest(pseudorandom, _FINGERPRINT_INFO + b"\x01", "sha256")[:16].hex()
        return CacheKey(fingerprint=fingerprint, mac_key=mac_key)


@dataclass(frozen=True, slots=True)
class OfflineState:
    """What the authorizer decided with, kept for a restart.

    Attributes:
        api_key_id: The id of the API key that decided (the part of the key before its ``.``): a
            cache is used only by the key that wrote it.
        key_set: The key set as last fetched (``GetKeySet``).
        platform: The licensee's platform.
        archived: Whether the licensee was archived.
        confirmed: When the key set was last fetched (the authorizer's clock).
        sequence: The last revocation-log sequence applied.
        fresh_as_of: When the view was last current (a heartbeat at the log's head).
        statuses: Grant id → ``"REVOKED"`` or ``"SUSPENDED"`` (a `GrantStatus` name).
        suspended: Characters suspended by staff.
        withdrawn: Characters opted out or archived.
        registry_head: The sequence of the last registry event applied (0 for none).
        registry_fresh_as_of: When the registry snapshot was last current (None: never).
        registry_version: The version of the snapshot that was current then: a kept snapshot
            of an older version (its newer one's write failed, a backup was restored) was not,
            and is not screened with until it is current again.
    """

    api_key_id: str
    key_set: signing_key_pb2.KeySet
    platform: str
    archived: bool
    confirmed: datetime
    sequence: int
    fresh_as_of: datetime
    statuses: dict[str, str]
    suspended: tuple[str, ...]
    withdrawn: tuple[str, ...]
    registry_head: int = 0
    registry_fresh_as_of: datetime | None = None
    registry_version: int = 0

    def to_json(self) -> bytes:
        """The JSON body (`from_json` reads it back)."""
        values: dict[str, Any] = dataclasses.asdict(self)
        values["key_set"] = base64.b64encode(self.key_set.SerializeToString()).decode()
        values["confirmed"] = self.confirmed.isoformat()
        values["fresh_as_of"] = self.fresh_as_of.isoformat()
        fresh = self.registry_fresh_as_of
        values["registry_fresh_as_of"] = None if fresh is None else fresh.isoformat()
        return json.dumps(values, sort_keys=True, separators=(",", ":")).encode()

    @staticmethod
    def from_json(data: bytes) -> OfflineState:
        """The state of a JSON body.

        Raises:
            ValueError: The body is not one (a field missing or of the wrong type).
        """
        values = json.loads(data)
        fresh = values.get("registry_fresh_as_of")
        state = OfflineState(
            api_key_id=str(values["api_key_id"]),
            key_set=signing_key_pb2.KeySet.FromString(base64.b64decode(values["key_set"], validate=True)),
            platform=str(values["platform"]),
            archived=bool(values["archived"]),
            confirmed=datetime.fromisoformat(values["confirmed"]),
            sequence=int(values["sequence"]),
            fresh_as_of=datetime.fromisoformat(values["fresh_as_of"]),
            statuses={str(k): str(v) for k, v in dict(values["statuses"]).items()},
            suspended=tuple(str(c) for c in values["suspended"]),
            withdrawn=tuple(str(c) for c in values["withdrawn"]),
            # (absent from files written before registry snapshots)
            registry_head=int(values.get("registry_head", 0)),
            registry_fresh_as_of=None if fresh is None else datetime.fromisoformat(fresh),
            # (absent from files written before it: the registry head, which a snapshot that
            # was current then had reached, so an older kept one is never taken for current)
            registry_version=int(values.get("registry_version", values.get("registry_head", 0))),
        )
        times = (state.confirmed, state.fresh_as_of, state.registry_fresh_as_of or state.confirmed)
        if any(time.tzinfo is None for time in times):
            raise ValueError("times must carry their offset")
        if not set(state.statuses.values()) <= {"REVOKED", "SUSPENDED"}:
            raise ValueError("a grant status is neither REVOKED nor SUSPENDED")
        return state


def save_bundle(
    directory: Path, key: CacheKey, licensee_id: str, bundle: offline_service_pb2.GetGrantBundleResponse
) -> None:
    """Write the bundle atomically (see the module documentation).

    Raises:
        OSError: The directory cannot be written.
    """
    _write(directory, key, FILE_NAME, _HEADER, licensee_id, bundle.SerializeToString())


def load_bundle(directory: Path, key: CacheKey) -> tuple[str, offline_service_pb2.GetGrantBundleResponse] | None:
    """The cached licensee id and bundle; None when there is no cache file.

    Raises:
        CacheCorrupted: The file exists but fails its integrity check.
        CacheForeign: The file was written with another API key or by an SDK before keyed files.
    """
    found = _read(directory, key, FILE_NAME, _HEADER)
    if found is None:
        return None
    licensee, body = found
    try:
        return licensee, offline_service_pb2.GetGrantBundleResponse.FromString(body)
    except Exception as error:  # DecodeError: a digest over garbage is still garbage
        raise CacheCorrupted("the grant bundle cache file does not parse") from error


def save_state(directory: Path, key: CacheKey, licensee_id: str, state: OfflineState) -> None:
    """Write the state atomically (see the module documentation).

    Raises:
        OSError: The directory cannot be written.
    """
    _write(directory, key, STATE_FILE_NAME, _STATE_HEADER, licensee_id, state.to_json())


def load_state(directory: Path, key: CacheKey) -> tuple[str, OfflineState] | None:
    """The cached licensee id and state; None when there is no state file.

    Raises:
        CacheCorrupted: The file exists but fails its integrity check.
        CacheForeign: The file was written with another API key or by an SDK before keyed files.
    """
    found = _read(directory, key, STATE_FILE_NAME, _STATE_HEADER)
    if found is None:
        return None
    licensee, body = found
    try:
        return licensee, OfflineState.from_json(body)
    except Exception as error:  # ValueError, KeyError, TypeError, DecodeError
        raise CacheCorrupted("the offline state cache file does not parse") from error


def save_snapshot(directory: Path, key: CacheKey, licensee_id: str, body: bytes) -> None:
    """Write the registry snapshot's pages (`charter.offline.snapshot.pack`) atomically.

    Raises:
        OSError: The directory cannot be written.
    """
    _write(directory, key, SNAPSHOT_FILE_NAME, _SNAPSHOT_HEADER, licensee_id, body)


def load_snapshot(directory: Path, key: CacheKey) -> bytes | None:
    """The kept registry snapshot's pages (unverified: check them with the key set); None when
    there is no snapshot file.

    Raises:
        CacheCorrupted: The file exists but fails its integrity check.
        CacheForeign: The file was written with another API key or by an SDK before keyed files.
    """
    found = _read(directory, key, SNAPSHOT_FILE_NAME, _SNAPSHOT_HEADER)
    return None if found is None else found[1]


def _mac(key: CacheKey, signed: bytes) -> bytes:
    return hmac.new(key.mac_key, signed, hashlib.sha256).hexdigest().encode()


def _write(directory: Path, key: CacheKey, name: str, header: bytes, licensee_id: str, payload: bytes) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    owner = header + key.fingerprint.encode() + b"\n"
    body = licensee_id.encode() + b"\n" + payload
    data = owner + _mac(key, owner + body) + b"\n" + body
    handle, temporary = tempfile.mkstemp(prefix=f".{name}-", dir=directory)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, directory / name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    # The rename is durable only once the directory is flushed too (POSIX).
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _read(directory: Path, key: CacheKey, name: str, header: bytes) -> tuple[str, bytes] | None:
    try:
        data = (directory / name).read_bytes()
    except FileNotFoundError:
        return None
    if data.startswith(_UNKEYED[header]):
        raise CacheForeign(f"{name} was written by an SDK before keyed cache files")
    if not data.startswith(header):
        raise CacheCorrupted(f"{name} is not a cache file of this kind")
    fingerprint, newline, rest = data[len(header) :].partition(b"\n")
    if not newline:
        raise CacheCorrupted(f"{name} is cut short")
    if fingerprint != key.fingerprint.encode():
        raise CacheForeign(f"{name} was written with another API key")
    mac, newline, body = rest.partition(b"\n")
    owner = data[: len(header) + len(fingerprint) + 1]
    if not newline or not hmac.compare_digest(mac, _mac(key, owner + body)):
        raise CacheCorrupted(f"{name} does not match its HMAC: damaged, or not written with this API key")
    licensee, _, payload = body.partition(b"\n")
    try:
        return licensee.decode("ascii"), payload
    except UnicodeDecodeError as error:
        raise CacheCorrupted(f"{name} does not parse") from error
