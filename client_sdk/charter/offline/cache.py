"""The offline authorizer's cache directory: the last grant bundle it fetched, so that a restarted
backend holds its grants before Charter answers.

One file, ``grant-bundle.bin`` (give each licensee its own directory): a header line, the SHA-256
in hex of what follows, the licensee's id on a line, and a serialized
``charter.v1.GetGrantBundleResponse``. It is written atomically (a temporary file in the same
directory, flushed to disk, then renamed over the old one), so a crash leaves the old file or the
new one, never half of either; and it is checked on load, so a file damaged or changed on disk is
refused (`CacheCorrupted`) rather than used. The grants inside are signed and verified again
before any decision, so the check guards against damage; forgery is the signatures' job.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Final

from charter.v1 import offline_service_pb2

FILE_NAME: Final = "grant-bundle.bin"
_HEADER: Final = b"charter-grant-bundle v1\n"


class CacheCorrupted(ValueError):
    """A cache file failed its integrity check (truncated, changed, or not a cache file)."""


def save_bundle(directory: Path, licensee_id: str, bundle: offline_service_pb2.GetGrantBundleResponse) -> None:
    """Write the bundle atomically (see the module documentation).

    Raises:
        OSError: The directory cannot be written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    body = licensee_id.encode() + b"\n" + bundle.SerializeToString()
    data = _HEADER + hashlib.sha256(body).hexdigest().encode() + b"\n" + body
    handle, temporary = tempfile.mkstemp(prefix=".grant-bundle-", dir=directory)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, directory / FILE_NAME)
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


def load_bundle(directory: Path) -> tuple[str, offline_service_pb2.GetGrantBundleResponse] | None:
    """The cached licensee id and bundle; None when there is no cache file.

    Raises:
        CacheCorrupted: The file exists but fails its integrity check.
    """
    try:
        data = (directory / FILE_NAME).read_bytes()
    except FileNotFoundError:
        return None
    if not data.startswith(_HEADER):
        raise CacheCorrupted("not a grant bundle cache file")
    digest, newline, body = data[len(_HEADER) :].partition(b"\n")
    if not newline or digest != hashlib.sha256(body).hexdigest().encode():
        raise CacheCorrupted("the grant bundle cache file does not match its digest")
    licensee, _, serialized = body.partition(b"\n")
    try:
        return licensee.decode("ascii"), offline_service_pb2.GetGrantBundleResponse.FromString(serialized)
    except Exception as error:  # UnicodeDecodeError, DecodeError: a digest over garbage is still garbage
        raise CacheCorrupted("the grant bundle cache file does not parse") from error
