#!/usr/bin/env python3
"""Set up Charter's development environment and run the everyday commands.

This script uses the standard library only, so it runs on a fresh machine that
has nothing but Python 3.11+ (with pip and venv). Every command first makes
sure ``.venv`` at the project root exists and holds the current dependencies:
``demo`` only what the service needs (the SDK with its CLI and the server, both
editable); the others also the SDK's screening extra and the pinned development
tools of the root ``pyproject.toml`` (``[dependency-groups] dev``). The install
is skipped when a stamp in ``.venv`` shows that the three ``pyproject.toml``
files have not changed since the last successful one of that level.

Usage::

    python3 .ci/dev.py demo [ARGS...]      # run the server on SQLite with a demo catalogue
    python3 .ci/dev.py test [ARGS...]      # run the whole test suite (ARGS go to pytest)
    python3 .ci/dev.py browser             # only make sure Chromium is installed (for the console's tests)
    python3 .ci/dev.py generate [ARGS...]  # regenerate charter/v1 (from protos/) and charter/_sync
    python3 .ci/dev.py setup [--force]     # only set up .venv (--force reinstalls)

It works without a terminal or standard input (``CI=true``), as CI runs it.

``test`` also makes sure a Chromium is installed for the console's browser tests (Playwright
drives the system's browser; it never downloads one): when ``chromium`` is not on the PATH and
the machine has ``apt-get``, it runs ``apt-get update`` and installs Debian's ``chromium``
package, as root or through password-less ``sudo``. Where that is not possible it says so, and
the browser tests are skipped locally and fail on CI.
"""

# ruff: noqa: S603 - running the project's own tools with fixed arguments is this script's job.

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

if sys.version_info < (3, 11):  # noqa: UP036 - the point is a clear message on an old Python
    sys.exit("Charter needs Python 3.11 or newer; this is " + sys.version.split()[0])

import tomllib  # only after the version check, so old Pythons get a clear message

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
STAMP = VENV / ".charter-setup-stamp"
PYPROJECTS = (
    ROOT / "pyproject.toml",
    ROOT / "client_sdk" / "pyproject.toml",
    ROOT / "server" / "pyproject.toml",
)
# Bump when the way the environment is installed changes, so existing stamps become stale.
SETUP_VERSION = "3"
# uv installs what pip would, from the same index, but downloads, builds and unpacks many packages at
# once: on a fresh two-core machine the service's install takes about half of pip's time (README,
# "Quick start"). It is installed with pip into .venv; CHARTER_INSTALLER=pip skips it (for example
# where pip is configured for a private index that uv does not read).
UV_REQUIREMENT = "uv==0.13.9"
DEMO_DATABASE_URL = "sqlite:///.charter/demo.db"
CHROMIUM_NAMES = ("chromium", "chromium-browser")
APT_LOCK_WAIT_SECONDS = "300"  # another apt (unattended upgrades) may hold the lock for a while
PYTEST_NO_TESTS_COLLECTED = 5
USAGE = __doc__.split("Usage::", 1)[1].split("It works", 1)[0].rstrip() if __doc__ else ""


def log(message: str) -> None:
    """Print a progress line of this script, apart from the tools' own output."""
    print(f"[dev] {message}", file=sys.stderr, flush=True)


def venv_bin(name: str) -> Path:
    """Return the path of an executable installed in the project's virtualenv."""
    if os.name == "nt":
        return VENV / "Scripts" / (name + ".exe")
    return VENV / "bin" / name


def tool_env() -> dict[str, str]:
    """Return the environment for the tools this script runs: never waiting for input."""
    env = dict(os.environ)
    env.setdefault("PIP_NO_INPUT", "1")
    env.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    env.pop("PYTHONHOME", None)
    env["VIRTUAL_ENV"] = str(VENV)
    env["PATH"] = str(venv_bin("python").parent) + os.pathsep + env.get("PATH", "")
    return env


def attempt(args: Sequence[str | Path]) -> int:
    """Run a command from the project root and return its exit code."""
    log("$ " + " ".join(str(a) for a in args))
    completed = subprocess.run([str(a) for a in args], cwd=ROOT, env=tool_env(), stdin=subprocess.DEVNULL, check=False)
    return completed.returncode


def run(args: Sequence[str | Path]) -> None:
    """Run a command from the project root and stop this script if it fails."""
    code = attempt(args)
    if code != 0:
        sys.exit(f"[dev] failed with exit code {code}: {' '.join(str(a) for a in args)}")


def dev_requirements() -> list[str]:
    """Return the ``[dependency-groups] dev`` requirements of the root ``pyproject.toml``.

    Only plain requirement strings are supported; ``{include-group = ...}`` entries
    are expanded recursively.
    """
    with (ROOT / "pyproject.toml").open("rb") as handle:
        groups = tomllib.load(handle).get("dependency-groups", {})

    def expand(name: str, seen: tuple[str, ...]) -> list[str]:
        if name in seen:
            raise SystemExit(f"[dev] dependency group cycle: {' -> '.join((*seen, name))}")
        requirements: list[str] = []
        for entry in groups.get(name, []):
            if isinstance(entry, str):
                requirements.append(entry)
            elif isinstance(entry, dict) and "include-group" in entry:
                requirements.extend(expand(str(entry["include-group"]), (*seen, name)))
            else:
                raise SystemExit(f"[dev] unsupported entry in dependency group {name!r}: {entry!r}")
        return requirements

    return expand("dev", ())


def setup_fingerprint() -> str:
    """Return a hash of everything that decides what gets installed into ``.venv``."""
    digest = hashlib.sha256(f"setup-version={SETUP_VERSION}\n".encode())
    for path in PYPROJECTS:
        digest.update(f"{path.relative_to(ROOT).as_posix()}\n".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def create_venv() -> None:
    """Create ``.venv`` with pip, also where Python's ensurepip is missing."""
    log(f"creating {VENV.relative_to(ROOT)}")
    if VENV.exists():
        shutil.rmtree(VENV)
    created = subprocess.run([sys.executable, "-m", "venv", str(VENV)], cwd=ROOT, stdin=subprocess.DEVNULL, check=False)
    if created.returncode == 0 and venv_bin("python").exists():
        return
    # Some Linux distributions ship Python without ensurepip (a separate python3-venv package).
    # Create the environment without pip and install pip into it with the pip this Python has.
    log("python -m venv failed; retrying without ensurepip")
    shutil.rmtree(VENV, ignore_errors=True)
    run([sys.executable, "-m", "venv", "--without-pip", VENV])
    run([sys.executable, "-m", "pip", "--python", venv_bin("python"), "install", "pip"])


def installed_level() -> str | None:
    """Return what the stamp says is installed ("service" or "dev"), or None when out of date."""
    if not STAMP.exists():
        return None
    fingerprint, _, level = STAMP.read_text(encoding="utf-8").strip().partition(" ")
    if fingerprint != setup_fingerprint():
        return None
    return level or "dev"  # stamps written before levels existed were full installs


def setup(*, force: bool = False, level: str = "dev") -> None:
    """Make sure ``.venv`` exists and holds the current dependencies.

    ``level="service"`` installs only what running the service needs (the SDK with its CLI and the
    server), so the quick start's demo does not wait for the development tools; ``"dev"`` adds
    them and is what the tests need.
    """
    if not venv_bin("python").exists():
        create_venv()
        force = True
    have = None if force else installed_level()
    if have in {"dev", level}:
        return
    packages = ["-e", "./client_sdk[cli]", "-e", "./server"]
    if level == "dev":
        packages = ["-e", "./client_sdk[cli,screening]", "-e", "./server", *dev_requirements()]
    install(packages)
    STAMP.write_text(f"{setup_fingerprint()} {level}\n", encoding="utf-8")
    log("environment ready")


def install(packages: list[str]) -> None:
    """Install packages into ``.venv`` with uv, or with pip where uv is not wanted or fails."""
    python = venv_bin("python")
    if os.environ.get("CHARTER_INSTALLER", "uv") != "pip":
        uv: list[str | Path] = [python, "-m", "uv", "pip", "install", "--python", python]
        if attempt([python, "-m", "pip", "install", "--quiet", UV_REQUIREMENT]) == 0 and attempt([*uv, *packages]) == 0:
            return
        log("uv could not install the environment; trying again with pip")
    run([python, "-m", "pip", "install", "--upgrade", "pip"])
    run([python, "-m", "pip", "install", *packages])


def exec_tool(args: list[str]) -> None:
    """Replace this process with a tool from ``.venv``, so signals reach it directly."""
    log("$ " + " ".join(args))
    sys.stdout.flush()
    sys.stderr.flush()
    env = tool_env()
    os.chdir(ROOT)
    if os.name == "nt":
        sys.exit(subprocess.run(args, env=env, check=False).returncode)
    os.execve(args[0], args, env)  # noqa: S606 - a fixed tool from the project's own .venv


def command_demo(extra: list[str]) -> None:
    """Run ``charter-server demo`` on a SQLite file under ``.charter/`` unless told otherwise."""
    setup(level="service")
    if "CHARTER_DATABASE_URL" not in os.environ:
        (ROOT / ".charter").mkdir(exist_ok=True)
        os.environ["CHARTER_DATABASE_URL"] = DEMO_DATABASE_URL
    exec_tool([str(venv_bin("charter-server")), "demo", *extra])


def find_chromium() -> str | None:
    """The Chromium the browser tests use: ``CHARTER_CHROMIUM``, else the first on the PATH."""
    given = os.environ.get("CHARTER_CHROMIUM")
    if given:
        return given if Path(given).exists() else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def ensure_chromium() -> None:
    """Install Debian's chromium with apt when no Chromium is found; quick when one is."""
    if find_chromium() is not None:
        return
    apt = shutil.which("apt-get")
    if os.name != "posix" or apt is None:
        log("no chromium and no apt-get: the console's browser tests cannot run here")
        return
    prefix: list[str] = []
    if os.geteuid() != 0:
        sudo = shutil.which("sudo")
        if sudo is None or subprocess.run([sudo, "-n", "true"], capture_output=True, check=False).returncode != 0:
            log("no chromium, and installing it needs root (apt-get install chromium)")
            return
        prefix = [sudo, "-n"]
    env = {**tool_env(), "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", f"DPkg::Lock::Timeout={APT_LOCK_WAIT_SECONDS}"]
    log("installing chromium with apt (for the console's browser tests)")
    for attempt in range(1, 4):  # a mirror that hiccups once should not fail the whole run
        updated = subprocess.run([*prefix, apt, *lock, "update", "-qq"], env=env, stdin=subprocess.DEVNULL, check=False)
        installed = subprocess.run(
            [*prefix, apt, *lock, "install", "-y", "-qq", "--no-install-recommends", "chromium"],
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if installed.returncode == 0 and find_chromium() is not None:
            log("chromium installed")
            return
        log(f"apt attempt {attempt} failed (update {updated.returncode}, install {installed.returncode})")
    log("chromium could not be installed: the console's browser tests cannot run")


def command_browser(extra: list[str]) -> None:
    """Only make sure Chromium is installed."""
    if extra:
        sys.exit(f"[dev] browser: unknown arguments {extra}")
    ensure_chromium()
    found = find_chromium()
    if found is None:
        sys.exit(1)
    log(f"chromium: {found}")


def command_test(extra: list[str]) -> None:
    """Run the whole test suite with pytest; "no tests collected" counts as a failure."""
    setup()
    ensure_chromium()
    # One worker per core, and at least three: the process tests spend much of their time waiting
    # for the processes they start (on two cores, three workers took 9.6 min where two took
    # 11.6). Each worker takes whole files (their module-scoped servers stay whole), in the order
    # tests/conftest.py puts them (the slowest first; xdist's own reorder puts files of few, slow
    # tests last); a caller who chooses the workers (-n ...) or none (-p no:xdist) is left alone.
    chosen = any(a.startswith(("-n", "--numprocesses", "--dist")) or a == "no:xdist" for a in extra)
    workers = str(max(3, os.cpu_count() or 1))
    parallel = [] if chosen else ["-n", workers, "--dist", "loadfile", "--no-loadscope-reorder"]
    args = [str(venv_bin("python")), "-m", "pytest", *parallel, *extra]
    log("$ " + " ".join(args))
    code = subprocess.run(args, cwd=ROOT, env=test_env(), stdin=subprocess.DEVNULL, check=False).returncode
    if code == PYTEST_NO_TESTS_COLLECTED:
        log("pytest collected no tests: that is a failure")
        sys.exit(1)
    sys.exit(code)


def test_env() -> dict[str, str]:
    """The tools' environment, with Python's bytecode cache on even where the shell turns it off.

    A run starts a few hundred Pythons (the workers, and the server, backend and CLI processes of
    the process tests), each importing SQLAlchemy, Alembic, gRPC and the project: without cached
    bytecode each compiles it all again, 3 s of CPU per process on a two-core machine (against
    well under 1 s with it), and pytest rewrites every test module's asserts again in every
    worker. ``PYTHONDONTWRITEBYTECODE`` (set in some images to keep them small) would turn the cache
    off; the ``__pycache__`` folders it saves are ignored by git.
    """
    env = tool_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def command_generate(extra: list[str]) -> None:
    """Regenerate the committed generated code: the contract's from ``protos/``, then the sync client's."""
    setup()
    run([venv_bin("python"), ROOT / "protos" / "generate.py", *extra])
    run([venv_bin("python"), ROOT / "client_sdk" / "generate_sync.py", *extra])


def command_setup(extra: list[str]) -> None:
    """Only set up ``.venv``; ``--force`` reinstalls even when nothing changed."""
    unknown = [a for a in extra if a != "--force"]
    if unknown:
        sys.exit(f"[dev] setup: unknown arguments {unknown}")
    setup(force="--force" in extra)


COMMANDS = {
    "demo": command_demo,
    "test": command_test,
    "generate": command_generate,
    "setup": command_setup,
    "browser": command_browser,
}


def main(argv: list[str]) -> None:
    """Dispatch to a command; everything after the command name is passed through."""
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(f"usage:{USAGE}")
        sys.exit(0 if argv else 2)
    command = COMMANDS.get(argv[0])
    if command is None:
        print(f"unknown command {argv[0]!r}\nusage:{USAGE}", file=sys.stderr)
        sys.exit(2)
    command(argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
