"""Shared helpers of the contract tests: project paths and the pinned tools of ``.venv``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def tool(name: str) -> Path:
    """Return a command-line tool installed beside this interpreter (``.venv/bin``).

    The tools (buf, hadolint, ruff, mypy) are pinned in the root ``pyproject.toml``'s dev
    group, so a missing one is a broken setup and fails the test rather than skipping it.
    """
    suffix = ".exe" if os.name == "nt" else ""
    for folder in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        candidate = folder / (name + suffix)
        if candidate.exists():
            return candidate
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed beside {sys.executable}; run `python3 .ci/dev.py setup`")
    return Path(found)


def run(args: Sequence[str | Path], *, cwd: Path = ROOT, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a command without input and capture its output as text."""
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def describe(result: subprocess.CompletedProcess[str]) -> str:
    """Format a finished command for an assertion message."""
    command = " ".join(str(a) for a in result.args)
    return f"$ {command}\nexit code {result.returncode}\n{result.stdout}{result.stderr}"


def markdown_section(text: str, heading: str) -> str:
    """Return the body of the ``## heading`` section of a Markdown text ("" when absent)."""
    lines = text.splitlines()
    body: list[str] = []
    inside = False
    fenced = False
    for line in lines:
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("## "):
            if inside:
                break
            inside = line[3:].strip() == heading
            continue
        if inside:
            body.append(line)
    return "\n".join(body)


def code_blocks(markdown: str) -> list[list[str]]:
    """Return the fenced code blocks of a Markdown text, each as its list of shell commands.

    Lines continued with a trailing backslash are joined into one command; blank lines and
    comment lines are dropped.
    """
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for line in markdown.splitlines():
        if line.startswith("```"):
            if current is None:
                current = []
            else:
                blocks.append(_join_continuations(current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def _join_continuations(lines: list[str]) -> list[str]:
    commands: list[str] = []
    pending = ""
    for raw in lines:
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        commands.append(pending + line)
        pending = ""
    if pending:
        commands.append(pending.strip())
    return commands
