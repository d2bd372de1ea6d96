"""The offline authorizer's cache directory: what a restarted backend needs to decide before
Charter answers (give each licensee its own directory).

Three files, each a header line, the SHA-256 in hex of what follows, the licensee's id on a line,
and a body: ``grant-bundle.bin`` holds the last grant bundle fetched (a serialized
``charter.v1.GetGrantBundleResponse``), ``offline-state.bin`` the last state decided with (JSON,
`OfflineState`: the key set and the licensee as last fetched, and the revocation view as of its
last heartbeat), ``registry-snapshot.bin`` the registry snapshot screened with (its signed pages,
`charter.offline.snapshot.pack`: every signature is checked again on load). Each is written
atomically (a temporary file in the same directory, flushed to disk, then renamed over the old
one), so a crash leaves the old file or the new one, never half of either; and each is checked
on load, so a file damaged or changed on disk is refused
(`CacheCorrupted`) rather than used.

The check guards against damage, not forgery: the grants inside are signed and verified again
before any decision, but the state is the backend's own record. A licensee who rewrites it to
forget a revocation could as well change this code; what keeps offline decisions answerable is
that each signed decision record names the revocation sequence it was decided at, so a use
decided on a view older than a revocation can be found afterwards. Anyone else who can write
the directory could plant a key in the kept key set and grants signed by it: the authorizer's
``pinned_keys`` (`charter.offline.keys`) make every key it was not told to trust verify nothing.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
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
_SNAPSHOT_HEADER: Final = b"charter-registry-snapshot v1\n"
_HEADER: Final = b"charter-grant-bundle v1\n"
_STATE_HEADER: Final = b"charter-offline-state v1\n"


class CacheCorrupted(ValueError):
    """A cache file failed its integrity check (truncated, changed, or not a cache file)."""


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


def save_bundle(directory: Path, licensee_id: str, bundle: offline_service_pb2.GetGrantBundleResponse) -> None:
    """Write the bundle atomically (see the module documentation).

    Raises:
        OSError: The directory cannot be written.
    """
    _write(directory, FILE_NAME, _HEADER, licensee_id, bundle.SerializeToString())


def load_bundle(directory: Path) -> tuple[str, offline_service_pb2.GetGrantBundleResponse] | None:
    """The cached licensee id and bundle; None when there is no cache file.

    Raises:
        CacheCorrupted: The file exists but fails its integrity check.
    """
    found = _read(directory, FILE_NAME, _HEADER)
    if found is None:
        return None
    licensee, body = found
    try:
        return licensee, offline_service_pb2.GetGrantBundleResponse.FromString(body)
    except Exception as error:  # DecodeError: a digest over garbage is still garbage
        raise CacheCorrupted("the grant bundle cache file does not parse") from error


def save_state(directory: Path, licensee_id: str, state: OfflineState) -> None:
    """Write the state atomically (see the module documentation).

    Raises:
        OSError: The directory cannot be written.
    """
    _write(directory, STATE_FILE_NAME, _STATE_HEADER, licensee_id, state.to_json())


def load_state(directory: Path) -> tuple[str, OfflineState] | None:
    """The cached licensee id and state; None when there is no state file.

    Raises:
        CacheCorrupted: The file exists but fails its integrity check.
    """
    found = _read(directory, STATE_FILE_NAME, _STATE_HEADER)
    if found is None:
        return None
    licensee, body = found
    try:
        return licensee, OfflineState.from_json(body)
    except Exception as error:  # ValueError, KeyError, TypeError, DecodeError
        raise CacheCorrupted("the offline state cache file does not parse") from error


def save_snapshot(directory: Path, licensee_id: str, body: bytes) -> None:
    """Write the registry snapshot's pages (`charter.offline.snapshot.pack`) atomically.

    Raises:
        OSError: The directory cannot be written.
    """
    _write(directory, SNAPSHOT_FILE_NAME, _SNAPSHOT_HEADER, licensee_id, body)


def load_snapshot(directory: Path) -> bytes | None:
    """The kept registry snapshot's pages (unverified: check them with the key set); None when
    there is no snapshot file.

    Raises:
        CacheCorrupted: The file exists but fails its integrity check.
    """
    found = _read(directory, SNAPSHOT_FILE_NAME, _SNAPSHOT_HEADER)
    return None if found is None else found[1]


def _write(directory: Path, name: str, header: bytes, licensee_id: str, payload: bytes) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    body = licensee_id.encode() + b"\n" + payload
    data = header + hashlib.sha256(body).hexdigest().encode() + b"\n" + body
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


def _read(directory: Path, name: str, header: bytes) -> tuple[str, bytes] | None:
    try:
        data = (directory / name).read_bytes()
    except FileNotFoundError:
        return None
    if not data.startswith(header):
        raise CacheCorrupted(f"{name} is not a cache file of this kind")
    digest, newline, body = data[len(header) :].partition(b"\n")
    if not newline or digest != hashlib.sha256(body).hexdigest().encode():
        raise CacheCorrupted(f"{name} does not match its digest")
    licensee, _, payload = body.partition(b"\n")
    try:
        return licensee.decode("ascii"), payload
    except UnicodeDecodeError as error:
        raise CacheCorrupted(f"{name} does not parse") from error
