"""The contract passes buf lint and buf format, and has no breaking change against main."""

from __future__ import annotations

import shutil

import pytest

from ._support import ROOT, describe, run, tool

PROTOS = ROOT / "protos"


def test_buf_lint_is_clean() -> None:
    result = run([tool("buf"), "lint"], cwd=PROTOS)
    assert result.returncode == 0, describe(result)


def test_buf_format_is_clean() -> None:
    result = run([tool("buf"), "format", "--diff", "--exit-code"], cwd=PROTOS)
    assert result.returncode == 0, "run `.venv/bin/buf format -w protos`\n" + describe(result)


def _main_has_protos() -> str | None:
    """Return why buf breaking cannot run against main, or None when it can."""
    git = shutil.which("git")
    if git is None:
        return "git is not installed"
    if run([git, "rev-parse", "--git-dir"]).returncode != 0:
        return "the project is not a git work tree"
    if run([git, "rev-parse", "--verify", "--quiet", "refs/heads/main^{commit}"]).returncode != 0:
        return "the git repository has no commit on a local `main` branch"
    if run([git, "cat-file", "-e", "main:protos/buf.yaml"]).returncode != 0:
        return "the `main` branch has no protos/buf.yaml yet"
    return None


def test_buf_breaking_against_main() -> None:
    reason = _main_has_protos()
    if reason is not None:
        pytest.skip(f"buf breaking needs git history with protos/ on main: {reason}")
    result = run([tool("buf"), "breaking", "protos", "--against", ".git#branch=main,subdir=protos"])
    assert result.returncode == 0, describe(result)
