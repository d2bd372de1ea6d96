"""ruff and mypy (strict, as configured in the root pyproject.toml) pass on the hand-written code.

The generated ``client_sdk/charter/v1`` is excluded by that configuration; its stubs are still
used when other code imports it.
"""

from __future__ import annotations

import pytest

from ._support import ROOT, describe, run, tool

HAND_WRITTEN = (
    ROOT / "client_sdk" / "charter",
    ROOT / "server" / "charter_server",
    ROOT / "protos" / "generate.py",
    ROOT / "client_sdk" / "generate_sync.py",
    ROOT / ".ci" / "dev.py",
    ROOT / "tests" / "contract",
)


def _targets() -> list[str]:
    """The hand-written files and folders that exist and hold Python code."""
    targets = [
        path
        for path in HAND_WRITTEN
        if path.is_file() or (path.is_dir() and any(p for p in path.rglob("*.py") if "v1" not in p.parts))
    ]
    if not targets:
        pytest.skip("no hand-written Python code yet")
    return [str(path.relative_to(ROOT)) for path in targets]


def test_ruff_check_is_clean() -> None:
    # The tests and benchmarks are linted too (with the relaxations pyproject.toml gives them);
    # strict typing is kept for the shipped code.
    linted = [*_targets(), "tests", "bench"]
    result = run(
        [tool("ruff"), "check", "--force-exclude", "--no-fix", "--output-format", "concise", *linted], timeout=60
    )
    assert result.returncode == 0, describe(result)


def test_ruff_format_is_clean() -> None:
    result = run([tool("ruff"), "format", "--check", "--force-exclude", *_targets(), "tests", "bench"], timeout=60)
    assert result.returncode == 0, describe(result)


def test_mypy_strict_is_clean() -> None:
    targets = _targets()
    # `.ci` is not a valid package name, so .ci/dev.py is checked as a single file.
    result = run([tool("mypy"), *targets], timeout=80)
    assert result.returncode == 0, describe(result)
