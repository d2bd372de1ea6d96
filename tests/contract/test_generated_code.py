"""The committed generated code is exactly what protos/generate.py makes from protos/."""

from __future__ import annotations

import sys
from pathlib import Path

from ._support import ROOT, describe, run

COMMITTED = ROOT / "client_sdk" / "charter" / "v1"
REGENERATE = "python3 .ci/dev.py generate"


def _files(folder: Path) -> dict[str, bytes]:
    """Map each file under folder (caches aside) to its bytes, by POSIX relative path."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def test_committed_generated_code_is_fresh(tmp_path: Path) -> None:
    result = run([sys.executable, ROOT / "protos" / "generate.py", "--out", tmp_path])
    assert result.returncode == 0, describe(result)

    fresh = _files(tmp_path / "charter" / "v1")
    committed = _files(COMMITTED)
    assert fresh, "protos/generate.py generated nothing"

    missing = sorted(fresh.keys() - committed.keys())
    extra = sorted(committed.keys() - fresh.keys())
    assert not missing, f"generated files not committed in {COMMITTED}: {missing}; run `{REGENERATE}`"
    assert not extra, f"files in {COMMITTED} that generation does not make: {extra}; run `{REGENERATE}`"
    stale = sorted(name for name in fresh if fresh[name] != committed[name])
    assert not stale, f"stale generated files in {COMMITTED}: {stale}; run `{REGENERATE}` and commit"


def test_generated_code_is_marked_generated() -> None:
    attributes = (ROOT / ".gitattributes").read_text(encoding="utf-8").splitlines()
    assert "client_sdk/charter/v1/** linguist-generated=true" in attributes
