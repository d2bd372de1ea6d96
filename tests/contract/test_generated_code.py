"""The committed generated code is exactly what its generator makes.

* ``client_sdk/charter/v1``: the contract's code, made by protos/generate.py from protos/;
* ``client_sdk/charter/_sync``: the synchronous client's calls, made by
  client_sdk/generate_sync.py from the asyncio ones in ``client_sdk/charter/_async``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ._support import ROOT, describe, run

GENERATORS = {
    "v1": (ROOT / "protos" / "generate.py", "python3 .ci/dev.py generate"),
    "_sync": (ROOT / "client_sdk" / "generate_sync.py", "python3 .ci/dev.py generate"),
}


def _files(folder: Path) -> dict[str, bytes]:
    """Map each file under folder (caches aside) to its bytes, by POSIX relative path."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


@pytest.mark.parametrize("package", sorted(GENERATORS))
def test_committed_generated_code_is_fresh(tmp_path: Path, package: str) -> None:
    generator, regenerate = GENERATORS[package]
    committed_folder = ROOT / "client_sdk" / "charter" / package
    result = run([sys.executable, generator, "--out", tmp_path])
    assert result.returncode == 0, describe(result)

    fresh = _files(tmp_path / "charter" / package)
    committed = _files(committed_folder)
    assert fresh, f"{generator.name} generated nothing"

    missing = sorted(fresh.keys() - committed.keys())
    extra = sorted(committed.keys() - fresh.keys())
    assert not missing, f"generated files not committed in {committed_folder}: {missing}; run `{regenerate}`"
    assert not extra, f"files in {committed_folder} that generation does not make: {extra}; run `{regenerate}`"
    stale = sorted(name for name in fresh if fresh[name] != committed[name])
    assert not stale, f"stale generated files in {committed_folder}: {stale}; run `{regenerate}` and commit"


def test_generated_code_is_marked_generated() -> None:
    attributes = (ROOT / ".gitattributes").read_text(encoding="utf-8").splitlines()
    assert "client_sdk/charter/v1/** linguist-generated=true" in attributes
    assert "client_sdk/charter/_sync/** linguist-generated=true" in attributes
