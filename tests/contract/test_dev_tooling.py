"""The README's quick start, .ci/run and .ci/dev.py agree, and dev.py needs only the stdlib."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
import tomllib
from types import ModuleType
from typing import Any

import pytest

from ._support import ROOT, code_blocks, markdown_section

DEV_PY = ROOT / ".ci" / "dev.py"
CI_RUN = ROOT / ".ci" / "run"
QUICK_START = [["python3 .ci/dev.py demo"], ["python3 .ci/dev.py test"]]


@pytest.fixture(scope="module")
def dev() -> ModuleType:
    """Import .ci/dev.py as a module; importing it has no side effects."""
    spec = importlib.util.spec_from_file_location("charter_ci_dev", DEV_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_quick_start_is_exactly_two_commands() -> None:
    section = markdown_section((ROOT / "README.md").read_text(encoding="utf-8"), "Quick start")
    assert code_blocks(section) == QUICK_START


def test_ci_runs_the_readme_test_command() -> None:
    assert os.access(CI_RUN, os.X_OK), ".ci/run must be executable"
    lines = CI_RUN.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in lines
    commands = [line for line in lines if line.strip() and not line.startswith("#")]
    assert commands[-1] == QUICK_START[1][0], "the last command of .ci/run must be the README's second"


def test_quick_start_commands_exist(dev: ModuleType) -> None:
    for (command,) in QUICK_START:
        assert command.split()[-1] in dev.COMMANDS


def test_dev_py_imports_only_the_standard_library() -> None:
    tree = ast.parse(DEV_PY.read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and not node.level
    }
    outside = sorted(imported - set(sys.stdlib_module_names) - {"__future__"})
    assert not outside, f".ci/dev.py must run on a bare python3 but imports {outside}"


def test_dev_py_installs_the_dev_dependency_group(dev: ModuleType) -> None:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        group = tomllib.load(handle)["dependency-groups"]["dev"]
    assert dev.dev_requirements() == [entry for entry in group if isinstance(entry, str)]


def test_setup_fingerprint_covers_the_three_pyprojects(dev: ModuleType) -> None:
    names = {path.relative_to(ROOT).as_posix() for path in dev.PYPROJECTS}
    assert names == {"pyproject.toml", "client_sdk/pyproject.toml", "server/pyproject.toml"}
    assert dev.setup_fingerprint() == dev.setup_fingerprint()


def test_the_installer_is_pinned_exactly(dev: ModuleType) -> None:
    name, _, version = dev.UV_REQUIREMENT.partition("==")
    assert name == "uv" and version.count(".") == 2


@pytest.mark.parametrize(
    ("installer", "uv_works", "tools"),
    [("uv", True, ["pip", "uv"]), ("uv", False, ["pip", "uv", "pip", "pip"]), ("pip", True, ["pip", "pip"])],
)
def test_install_uses_uv_and_falls_back_to_pip(
    dev: ModuleType, monkeypatch: pytest.MonkeyPatch, installer: str, uv_works: bool, tools: list[str]
) -> None:
    # The commands are recorded, not run: installing for real is what every CI run does.
    ran: list[list[str]] = []

    def attempt(args: list[object]) -> int:
        ran.append([str(a) for a in args])
        return 1 if not uv_works and "uv" in ran[-1][2:4] else 0

    monkeypatch.setattr(dev, "attempt", attempt)
    monkeypatch.setenv("CHARTER_INSTALLER", installer)
    dev.install(["-e", "./server"])

    assert [command[2] for command in ran] == tools
    assert ran[-1][-2:] == ["-e", "./server"]


def test_the_suite_runs_with_the_bytecode_cache_on(dev: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    # Without it every server process the suite starts compiles its imports again (dev.test_env).
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setattr(dev, "setup", lambda **_: None)
    monkeypatch.setattr(dev, "ensure_chromium", lambda: None)
    envs: list[dict[str, str]] = []

    def run(args: list[str], **options: Any) -> subprocess.CompletedProcess[bytes]:
        envs.append(options["env"])
        return subprocess.CompletedProcess(args, 0)

    monkeypatch.setattr(dev.subprocess, "run", run)
    with pytest.raises(SystemExit) as exited:
        dev.command_test(["tests/contract"])

    assert exited.value.code == 0
    [env] = envs
    assert "PYTHONDONTWRITEBYTECODE" not in env
    assert env["VIRTUAL_ENV"] == str(dev.VENV)
