"""Every Python and shell snippet of README.md runs as written against a real server.

The README's fenced blocks are read in order; a block is named by the heading it sits under and
its number among the runnable blocks (Python and shell) under that heading (`"CLI #1"`). Each
runnable block is either in `RUN`, which says what stands in for the reader's own values, or in
`NOT_RUN`, with the reason it is not run here (and the test that runs it instead, where one does).
A block in neither, or a name in either that no block has any more, fails the test: a new snippet
must be run or be given a reason.

The server is the quick start's: a real server (the production composition root, `build_server`)
on 127.0.0.1 with a free port, over a SQLite database of this module alone, seeded by the demo's
own `charter_server.demo.seed`, so "the admin key the demo printed" and the demo's character
(Aoi Hoshino, opted in under `fan-noncommercial`, granted to the demo licensee) are what the
README's reader has.

**Placeholders.** A snippet's placeholders (`key_….…`, `chr_…`, `"charter.internal:50051"`, a
file under `/etc`) are replaced by the values `RUN` names for that block, and only those: after the
replacements no `…` may remain in the code (comments aside), and every placeholder the table names
must still be in the block. A value is one of the `World`'s (the demo's ids and keys, files the
snippet reads, the reader's own functions such as `render`), or `Printed(...)`: the first id of a
kind that an earlier command of the same shell block printed (the rights holder a block has just
created is the one it goes on with).

**Shell blocks** run line by line, in the block's own working directory: `export NAME=VALUE`
sets the environment of the following lines, `charter ...` runs the real CLI in this process
(`typer`'s runner, as tests/cli does) against the server, `charter-server ...` likewise (as
tests/server does; a command that serves until stopped runs in a process of its own, see
`Run.serves`), `python3 ...` runs this interpreter in a subprocess; `> FILE` writes a command's
output to the file. Every command must exit 0. A line with any other command fails the test (it
needs a reason in `NOT_RUN`). The shell the reader
pastes into already has `CHARTER_TARGET` (the README's default, localhost:50051, is where the
demo serves; here it is this server's port) and the key `RUN` gives a block that exports none.

**Python blocks** are executed with the names `RUN` says the reader's code provides (`given`),
their standard output captured; a block may have to print text (`prints`) and leave names that a
check (`check`) inspects.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import tokenize
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from charter import Client, NotFoundError, envelope, transparency
from charter.cli._app import app
from charter.v1 import api_key_pb2, signing_key_pb2, terms_pb2
from charter_server.cli import app as server_app
from charter_server.config import Settings
from charter_server.demo import seed
from charter_server.domain.models import Role
from sdk._live import Live, serve  # tests/ is on sys.path: pytest's rootdir-relative layout
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

SHELL_LANGUAGES = frozenset({"sh", "bash", "shell", "console", "zsh"})
PYTHON_LANGUAGES = frozenset({"python", "py", "python3", "pycon"})
SHOWN_LANGUAGES = frozenset({"", "text", "csv", "json"})
"""Blocks that are data or output, not code to run (the CSV of Bulk import is read by its command)."""

COMMAND_SECONDS = 30
"""The longest a subprocess of a shell block may take."""
SERVE_SECONDS = 30
"""The longest a server a block starts may take to serve, and then to stop."""
BIN = Path(sys.executable).parent
"""Where `charter-server` is installed, beside this interpreter."""


# --- The README's blocks ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Block:
    name: str
    """The heading it sits under and its number among the runnable blocks there: `"CLI #1"`."""
    language: str
    line: int
    """The README line of the block's first line of code."""
    text: str


def readme_blocks() -> list[Block]:
    """Every fenced block of the README, named as the module docstring says (data blocks get `@n`)."""
    lines = README.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    heading = ""
    counts: dict[tuple[str, bool], int] = {}
    index = 0
    while index < len(lines):
        line = lines[index]
        fence = re.match(r"^\s*```(\S*)\s*$", line)
        if fence is None:
            if line.startswith("#"):
                heading = line.lstrip("#").strip()
            index += 1
            continue
        end = index + 1
        while not lines[end].lstrip().startswith("```"):
            end += 1
        language = fence.group(1).lower()
        runnable = language in SHELL_LANGUAGES | PYTHON_LANGUAGES
        key = (heading, runnable)
        counts[key] = counts.get(key, 0) + 1
        name = f"{heading} {'#' if runnable else '@'}{counts[key]}"
        blocks.append(Block(name, language, index + 2, "\n".join(lines[index + 1 : end]) + "\n"))
        index = end + 1
    return blocks


def runnable_blocks() -> list[Block]:
    return [b for b in readme_blocks() if b.language in SHELL_LANGUAGES | PYTHON_LANGUAGES]


def shown_block(name: str) -> str:
    """The text of a data block (`"Bulk import @1"`)."""
    (block,) = [b for b in readme_blocks() if b.name == name]
    return block.text


# --- What stands in for the reader's values --------------------------------------------------


class Video:
    """What the reader's `render(...)` returns in the snippets: something with a length."""

    length = timedelta(seconds=12)


def render(*_: Any, **__: Any) -> Video:
    """The reader's own renderer (the snippets call `render(...)`)."""
    return Video()


def attach_to_provenance(video: Video, receipt_json: str) -> None:
    """The reader's own provenance step: here it only checks it was given the receipt's DSSE JSON."""
    assert isinstance(video, Video)
    assert '"payloadType"' in receipt_json


class World:
    """The demo's server, ids and keys, and what a block needs made for it (files, a fresh key)."""

    def __init__(self, live: Live, secrets: Mapping[Role, str], data: Any, workdir: Path) -> None:
        self.live = live
        self.target = live.target
        self.admin_key = secrets[Role.ADMIN]
        self.rights_holder_key = secrets[Role.RIGHTS_HOLDER]
        self.generator_key = secrets[Role.GENERATOR]
        self.auditor_key = secrets[Role.AUDITOR]
        self.rights_holder_id: str = data.rights_holder_id
        self.licensee_id: str = data.licensee_id
        self.character_id: str = data.character_id
        self.grant_id: str = data.grant_id
        self.workdir = workdir
        self.stack = contextlib.ExitStack()
        self.render = render
        self.attach_to_provenance = attach_to_provenance
        self.kek_path = str(workdir / "kek")
        self.witness_dir = str(workdir / "charter-witness")
        self.postgres_url = ""
        self.loopback_any_port = "127.0.0.1:0"
        """Where a block's server listens here (only loopback addresses, a free port)."""
        """A fresh PostgreSQL database, for a block `Run.postgresql` says is about PostgreSQL."""
        self.catalogue_csv = shown_block("Bulk import @1")
        """The CSV the Bulk import section shows: the file its command imports."""

    # Values made on demand, named in `RUN`.

    def grant_json(self) -> str:
        """The demo grant's envelope, as `charter grants show grt_… --envelope-json` prints it."""
        shown = charter_cli(["grants", "show", self.grant_id, "--envelope-json"], self.env(self.admin_key))
        assert shown.exit_code == 0, shown.output
        return str(shown.stdout)

    def receipt_json(self) -> str:
        """A receipt of the demo generator, as `charter authorize --receipt-out receipt.json` writes it,
        once the transparency log holds it (so that it can be proved)."""
        path = self.workdir / "made-receipt.json"
        args = ["authorize", "--character", self.character_id, "--use-type", "image-generation"]
        decided = charter_cli([*args, "--rating", "all-ages", "--receipt-out", str(path)], self.env(self.generator_key))
        assert decided.exit_code == 0, decided.output
        self._await_logged(path)
        return path.read_text(encoding="utf-8")

    def _await_logged(self, receipt: Path) -> None:
        """Waits (10 s at most) until the log proves the receipt: it is sequenced within a second."""
        digest = transparency.payload_digest(envelope.from_json(receipt.read_text(encoding="utf-8")))
        deadline = time.monotonic() + 10
        with Client(self.target, api_key=self.auditor_key) as client:
            while True:
                try:
                    client.get_inclusion_proof(receipt_digest=digest)
                    return
                except NotFoundError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)

    def log_key(self) -> str:
        """The transparency log's verifier key (`<origin>+<key id>+<base64>`), from the key set."""
        with Client(self.target, api_key=self.auditor_key) as client:
            keys = client.get_key_set().keys
        (vkey,) = [
            k.note_verifier_key
            for k in keys
            if k.purpose == signing_key_pb2.SigningKey.PURPOSE_TRANSPARENCY_LOG
            and k.state == signing_key_pb2.SigningKey.STATE_ACTIVE
        ]
        return str(vkey)

    def refresh_screen(self) -> None:
        """What the server's screen does by itself within a second of a change of names (README: "found
        in prompts within about a second"), done at once."""
        self.live.server.services.screen.refresh_now()

    def generator_client(self) -> Client:
        """An open client of the demo generator key (closed after the block)."""
        return self.stack.enter_context(Client(self.target, api_key=self.generator_key))

    def rights_holder_client(self) -> Client:
        """An open client of the demo rights-holder key (closed after the block)."""
        return self.stack.enter_context(Client(self.target, api_key=self.rights_holder_key))

    def narrower_terms(self) -> terms_pb2.Terms:
        """Terms a rights holder might propose: the character's own, without commercial use."""
        with Client(self.target, api_key=self.rights_holder_key) as client:
            terms = client.get_terms(self.character_id)
        terms.commercial_use_allowed = False
        terms.ClearField("version")
        return terms

    def env(self, api_key: str | None) -> dict[str, str | None]:
        """The environment of a new shell: no CHARTER_* from outside, the server as the target."""
        env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("CHARTER_")}
        env["CHARTER_TARGET"] = self.target
        if api_key is not None:
            env["CHARTER_API_KEY"] = api_key
        return env

    def value(self, name: str) -> Any:
        """A named value: an attribute, or what the method of that name makes or does."""
        found = getattr(self, name)
        return found() if inspect.ismethod(found) else found


def charter_cli(args: list[str], env: Mapping[str, str | None]) -> Any:
    """Runs `charter` in this process, as tests/cli does."""
    return CliRunner().invoke(app, args, env=dict(env))


def charter_server_cli(args: list[str], env: Mapping[str, str | None]) -> Any:
    """Runs `charter-server` in this process, as tests/server does (not `serve`: see `Run.serves`); the
    logging it configures for itself is undone afterwards, so the module's server logs on as before."""
    config = structlog.get_config()
    try:
        return CliRunner().invoke(server_app, args, env=dict(env))
    finally:
        structlog.configure(**config)


@dataclasses.dataclass(frozen=True)
class Printed:
    """The first id of this kind (`chr`, `lic`, …) printed by an earlier command of the block, or by
    the first earlier command starting with `by`."""

    kind: str
    by: str = ""


Value = str | Printed
"""A `World` value's name, or an id an earlier command printed."""


@dataclasses.dataclass(frozen=True)
class Run:
    """How a block runs: what replaces each placeholder, the key of the reader's shell, the names and
    files the reader's own code or earlier steps provide, what it must print, a check afterwards."""

    placeholders: Mapping[str, Value] = dataclasses.field(default_factory=dict)
    api_key: str | None = None
    """Shell: the `World` key (`"admin_key"`) the reader's shell has in CHARTER_API_KEY."""
    given: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Python: names the reader's code defines → the `World` value that stands in for it."""
    files: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Files in the working directory → the `World` value (text) written to each."""
    prints: tuple[str, ...] = ()
    before: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Shell: a command's start → the `World` action done before it (for what the README says takes a
    moment, such as a new name reaching the prompt screen within a second)."""
    serves: str = ""
    """Shell: the start of a command that serves until it is stopped (`charter-server ... serve`): it
    is started, awaited until it prints a line matching `serving` (`SERVE_SECONDS` at most), given to
    `while_serving`, then stopped with SIGTERM, and must then end with one of `stop_codes`."""
    serving: str = r'^(?=.*"event": "server\.started").*"port": (\d+)'
    """What the command prints once it serves, with the port it serves on as the group (by default
    the server's `server.started` log line)."""
    stop_codes: tuple[int, ...] = (0,)
    """How a command that `serves` may end after SIGTERM (a return code; minus a signal's number)."""
    while_serving: Callable[[World, int, list[tuple[str, str]]], None] | None = None
    """With the port it serves on and the commands before it with their output."""
    postgresql: bool = False
    """The block is about PostgreSQL: `World.postgres_url` is a fresh database (skipped without one)."""
    check: Callable[[World, dict[str, Any]], None] | None = None
    """Afterwards, with the Python block's names (a shell block's: its final environment, and its
    commands with their output under `"printed"`)."""


# --- Checks after a block --------------------------------------------------------------------


def _verdict_valid(world: World, names: dict[str, Any]) -> None:
    assert names["verdict"].valid, names["verdict"].reason


def _allowed_and_reported(world: World, names: dict[str, Any]) -> None:
    assert names["decision"].allowed
    assert all(r.accepted for r in names["granted"].usage_results), names["granted"].usage_results


def _reported(world: World, names: dict[str, Any]) -> None:
    assert all(r.accepted for r in names["granted"].usage_results), names["granted"].usage_results


def _all_accepted(world: World, names: dict[str, Any]) -> None:
    assert names["rejected"] == [], names["rejected"]
    assert [r.accepted for r in names["results"]] == [True]


def _output_of(names: dict[str, Any], command: str) -> str:
    (output,) = [out for line, out in names["printed"] if line.startswith(command)]
    return str(output)


def _keys_listed_then_revoked(world: World, names: dict[str, Any]) -> None:
    listed = json.loads(_output_of(names, "charter api-keys list --json"))
    assert any(k["displayName"] == "render farm" for k in listed), listed
    revoked = _output_of(names, "charter api-keys revoke")
    assert re.search(r"\bkey_[0-9a-f]{32}\b", revoked), revoked


def _screened(world: World, names: dict[str, Any]) -> None:
    assert world.character_id in _output_of(names, "charter screen")


def _usage_series_printed(world: World, names: dict[str, Any]) -> None:
    # The demo's use of today is in the range the snippet asks for (the last 30 days).
    usage = names["usage"]
    assert [s.licensee_id for s in usage.series] == [world.licensee_id]
    assert usage.total.uses >= 1


def _production_settings(world: World, env: dict[str, Any]) -> None:
    settings = Settings.from_env({k: v for k, v in env.items() if k.startswith("CHARTER_") and v is not None})
    assert settings.environment == "production"
    kek = settings.kek()
    assert kek is not None
    assert len(kek) == 32


def _admin_key_works(world: World, port: int, printed: list[tuple[str, str]]) -> None:
    secret = _output_of({"printed": printed}, "charter-server create-admin-key").strip()
    with Client(f"127.0.0.1:{port}", api_key=secret) as client:
        assert client.get_caller().role == api_key_pb2.ROLE_ADMIN


def _console_signs_in(world: World, port: int, printed: list[tuple[str, str]]) -> None:
    """The console serves its sign-in page, and signs the demo's rights holder in through the server."""
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=10) as browser:
        page = browser.get("/sign-in")
        assert page.status_code == 200, page.text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None, page.text
        signed_in = browser.post("/sign-in", data={"csrf_token": token.group(1), "api_key": world.rights_holder_key})
        assert signed_in.status_code == 303, signed_in.text
        assert "Aoi Hoshino" in browser.get("/catalogue").text


def _proved(world: World, env: dict[str, Any]) -> None:
    assert any((world.workdir / "proofs").iterdir()), "no proof bundle written"


# --- The table -------------------------------------------------------------------------------

GENERATION = "Generation time (for backend developers)"

RUN: dict[str, Run] = {
    "SDK #2": Run(
        placeholders={'"localhost:50051"': "target", '"key_….…"': "admin_key"},
        prints=("Example Video App (demo)", "RIGHTS_HOLDER_NOT_FOUND"),
    ),
    "SDK #3": Run(
        placeholders={
            '"localhost:50051"': "target",
            '"key_….…"': "generator_key",
            "lic_…": "licensee_id",
            "chr_…": "character_id",
        },
        files={"grant.json": "grant_json"},
        prints=("True VALID",),
        check=_verdict_valid,
    ),
    "CLI #1": Run(
        check=_keys_listed_then_revoked,
        placeholders={
            "key_….…": "admin_key",
            "lic_…": Printed("lic", by="charter licensees create"),
            "key_…": Printed("key", by="charter api-keys create"),
        },
    ),
    "Bulk import #1": Run(
        api_key="admin_key",
        placeholders={"rh_…": "rights_holder_id"},
        files={"catalogue.csv": "catalogue_csv"},
    ),
    "Characters and terms from the CLI #1": Run(
        placeholders={"key_….…": "rights_holder_key", "chr_…": Printed("chr", by="charter characters create")},
    ),
    "Prompt screening (for rights holders) #1": Run(
        api_key="rights_holder_key",
        placeholders={"chr_…": "character_id"},
        before={"charter screen": "refresh_screen"},
        check=_screened,
    ),
    "Grants and signing keys #1": Run(
        api_key="admin_key",
        placeholders={
            "chr_…": "character_id",
            "lic_…": "licensee_id",
            "grt_…": Printed("grt", by="charter grants issue"),
        },
    ),
    "Grants and signing keys #2": Run(
        placeholders={"/etc/charter/kek": "kek_path"},
        check=_production_settings,
    ),
    f"{GENERATION} #2": Run(
        placeholders={'"charter.internal:50051"': "target", '"key_….…"': "generator_key", "chr_…": "character_id"},
        given={"render": "render", "attach_to_provenance": "attach_to_provenance"},
        files={"grant.json": "grant_json"},
        check=_allowed_and_reported,
    ),
    "Reporting usage from the SDK #1": Run(
        placeholders={"chr_…": "character_id"},
        given={"client": "generator_client", "render": "render"},
        prints=("accepted=True",),
        check=_reported,
    ),
    "Reporting usage from the SDK #2": Run(
        placeholders={"chr_…": "character_id"},
        given={"client": "generator_client"},
        check=_all_accepted,
    ),
    "What-if before publishing terms (for rights holders) #1": Run(
        given={"client": "rights_holder_client", "character_id": "character_id", "new_terms": "narrower_terms"},
        prints=("allowed uses would be denied",),
    ),
    "Usage over time (for rights holders) #1": Run(
        placeholders={'"127.0.0.1:50051"': "target"},
        given={"rights_holder_key": "rights_holder_key", "rights_holder_id": "rights_holder_id"},
        prints=("Example Video App (demo) ",),
        check=_usage_series_printed,
    ),
    "PostgreSQL #1": Run(
        postgresql=True,
        placeholders={
            "postgresql://charter@db.example.internal:5432/charter": "postgres_url",
            "0.0.0.0:50051": "loopback_any_port",
        },
        serves="charter-server --listen",
        while_serving=_admin_key_works,
    ),
    "Web console (for rights holders, staff and auditors) #1": Run(
        placeholders={"127.0.0.1:8080": "loopback_any_port", "127.0.0.1:50051": "target"},
        serves="charter-server console",
        serving=r"Charter console on http://127\.0\.0\.1:(\d+)",
        # uvicorn shuts down on SIGTERM, then raises the signal again for its default action.
        stop_codes=(0, -signal.SIGTERM),
        while_serving=_console_signs_in,
    ),
    "Transparency log (for rights holders and auditors) #1": Run(
        api_key="auditor_key",
        placeholders={
            "/var/lib/charter-witness": "witness_dir",
            "'charter.example/log+ab0980bf+ATtq...'": "log_key",
        },
        files={"receipt.json": "receipt_json"},
        check=_proved,
    ),
}

NOT_RUN: dict[str, str] = {
    "Quick start #1": "installs .venv and serves the demo until stopped: tests/server/test_demo_process.py runs "
    "`charter-server demo` in a process and every command it prints; tests/contract/test_dev_tooling.py checks "
    "the quick start is these two commands of .ci/dev.py",
    "Quick start #2": "the whole test suite, this test among it (.ci/run runs it; tests/contract/test_dev_tooling.py)",
    "SDK #1": "installs into the running environment: tests/contract/test_sdk_install.py installs ./client_sdk "
    "into an empty virtualenv",
    f"{GENERATION} #1": "the same install as SDK #1 (tests/contract/test_sdk_install.py)",
    "Offline-first: record keys, grant bundles, quota leases, decision records #1": "run with the block after it "
    "by tests/sdk/test_offline_readme.py, against a real server",
    "Offline-first: record keys, grant bundles, quota leases, decision records #2": "run by "
    "tests/sdk/test_offline_readme.py, against a real server",
    "Transparency log (for rights holders and auditors) #2": "needs no server; run by "
    "tests/unit/transparency/test_readme_example.py",
    "Docker #1": "needs Docker: tests/contract/test_dockerfile.py checks the Docker section against the Dockerfile",
    "Docker #2": "needs Docker (tests/contract/test_dockerfile.py)",
    "Docker #3": "needs Docker (tests/contract/test_dockerfile.py)",
    "Docker #4": "needs Docker and PostgreSQL (tests/contract/test_dockerfile.py)",
    "The contract for integrators #1": "run by tests/contract/test_buf.py (buf lint, buf breaking against main)",
    "Regenerating code #1": "rewrites the generated code: tests/contract/test_generated_code.py regenerates into a "
    "temporary folder and compares",
}


# --- Running blocks --------------------------------------------------------------------------


def substitute(
    text: str, run: Run, world: World, quote: Callable[[str], str], printed: list[tuple[str, str]] | None = None
) -> str:
    """The text with every placeholder replaced, longest first; `Printed` ones only when `printed` is
    given (a shell block resolves them line by line, from what its earlier lines printed). A quoted
    placeholder (`"localhost:50051"`) is a literal of the block's language: its value is `quote`d."""
    for placeholder in sorted(run.placeholders, key=len, reverse=True):
        value = run.placeholders[placeholder]
        if placeholder not in text or (isinstance(value, Printed) and printed is None):
            continue
        found = _printed_id(value, printed or []) if isinstance(value, Printed) else str(world.value(value))
        literal = placeholder[0] == placeholder[-1] and placeholder[0] in "'\""
        text = text.replace(placeholder, quote(found) if literal else found)
    return text


def _printed_id(value: Printed, printed: list[tuple[str, str]]) -> str:
    pattern = re.compile(rf"\b{value.kind}_[0-9a-f]{{16,32}}\b")
    for command, output in printed:
        if command.startswith(value.by):
            found = pattern.search(output)
            if found:
                return found.group(0)
    raise AssertionError(f"no earlier command {value.by!r} printed an id `{value.kind}_…`")


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines with their offsets, backslash continuations joined."""
    joined: list[tuple[int, str]] = []
    pending = ""
    start = 0
    for offset, line in enumerate(text.splitlines()):
        if not pending:
            start = offset
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append((start, pending + line))
        pending = ""
    return joined


def run_shell(block: Block, run: Run, world: World) -> dict[str, Any]:
    """Runs a shell block line by line (see the module docstring); returns its final environment, and
    under `"printed"` each command with what it printed, in order."""
    env = world.env(None if run.api_key is None else world.value(run.api_key))
    printed: list[tuple[str, str]] = []
    for offset, raw in _logical_lines(block.text):
        where = f"README.md:{block.line + offset}"
        line = substitute(raw, run, world, shlex.quote, printed)
        words = shlex.split(line, comments=True)
        if not words:
            continue
        left = [w for w in words if "…" in w or "..." in w]
        assert not left, f"{where}: a placeholder is left without a value: {left} (add it to RUN)"
        out_file = None
        if ">" in words:
            at = words.index(">")
            out_file, words = words[at + 1], words[:at]
        name, args = words[0], words[1:]
        for start, action in run.before.items():
            if line.startswith(start):
                world.value(action)
        if name == "export":
            for assignment in args:
                key, _, val = assignment.partition("=")
                env[key] = val
            continue
        if name == "charter":
            result = charter_cli(args, env)
            output, code = str(result.stdout), result.exit_code
            detail = result.output + (f"\n{result.exception!r}" if result.exception else "")
        elif run.serves and line.startswith(run.serves):
            output = _serve(world, run, [str(BIN / name), *args], env, printed)
            code, detail = 0, ""
        elif name == "charter-server":
            result = charter_server_cli(args, env)
            output, code = str(result.stdout), result.exit_code
            detail = result.output + (f"\n{result.exception!r}" if result.exception else "")
        elif name == "python3":
            done = subprocess.run(
                [sys.executable, *args],
                env={k: v for k, v in {**os.environ, **env}.items() if v is not None},
                capture_output=True,
                text=True,
                timeout=COMMAND_SECONDS,
                check=False,
            )
            output, code, detail = done.stdout, done.returncode, done.stdout + done.stderr
        else:
            pytest.fail(f"{where}: `{name}` cannot be run by this test; run it here or list the block in NOT_RUN")
        assert code == 0, f"{where}: `{line.strip()}` exited {code}:\n{detail}"
        if out_file is not None:
            Path(out_file).write_text(output, encoding="utf-8")
        printed.append((line.strip(), output))
    return {**env, "printed": printed}


def _serve(
    world: World, run: Run, command: list[str], env: Mapping[str, str | None], printed: list[tuple[str, str]]
) -> str:
    """Starts a server a block runs, waits until it serves, hands it to `while_serving`, stops it with
    SIGTERM; returns the line it printed when it started serving."""
    process = subprocess.Popen(
        command,
        env={k: v for k, v in {**os.environ, **env, "CHARTER_LOG_FORMAT": "json"}.items() if v is not None},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        started = _started_line(process, re.compile(run.serving))
        if run.while_serving is not None:
            run.while_serving(world, int(started.group(1)), printed)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=SERVE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
    assert code in run.stop_codes, f"`{' '.join(command)}` exited {code} after SIGTERM"
    return started.string


def _started_line(process: subprocess.Popen[str], serving: re.Pattern[str]) -> re.Match[str]:
    """The line the command prints once it serves, matched; fails after `SERVE_SECONDS` or when it
    exits."""
    assert process.stdout is not None
    lines: list[str] = []
    found: list[re.Match[str]] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            matched = serving.search(line)
            if matched:
                found.append(matched)
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(SERVE_SECONDS)
    assert found, f"the server did not serve within {SERVE_SECONDS} s:\n{''.join(lines)}"
    return found[0]


def _code_left_with_placeholders(code: str) -> list[str]:
    """The `…` left in the code once comments are dropped."""
    left = []
    for token in tokenize.generate_tokens(io.StringIO(code).readline):
        if token.type != tokenize.COMMENT and "…" in token.string:
            left.append(token.string)
    return left


def run_python(block: Block, run: Run, world: World) -> tuple[dict[str, Any], str]:
    """Executes a Python block with its given names; returns its names and what it printed."""
    code = substitute(block.text, run, world, repr)
    left = _code_left_with_placeholders(code)
    assert not left, f"{block.name} (README.md:{block.line}): placeholders left without a value: {left}"
    names: dict[str, Any] = {name: world.value(value) for name, value in run.given.items()}
    out = io.StringIO()
    # Blank lines first, so that a traceback names the README's own line numbers.
    compiled = compile("\n" * (block.line - 1) + code, str(README), "exec")
    try:
        with contextlib.redirect_stdout(out):
            exec(compiled, names)
    finally:
        for value in list(names.values()):  # the clients a snippet leaves open (a reader's process ends)
            if isinstance(value, Client):
                value.close()
    return names, out.getvalue()


# --- Fixtures and tests ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_live(tmp_path_factory: pytest.TempPathFactory, clock: Any) -> Iterator[tuple[Live, Any]]:
    """The quick start's server: a real one over a database of this module, seeded by the demo."""
    path = tmp_path_factory.mktemp("readme") / "charter.db"
    for live in serve(f"sqlite:///{path}", clock):
        data = seed(live.server.services)
        live.server.services.screen.refresh_now()
        yield live, data


@pytest.fixture
def world(demo_live: tuple[Live, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    live, data = demo_live
    monkeypatch.chdir(tmp_path)
    made = World(live, data.secrets, data, tmp_path)
    with made.stack:
        yield made


def test_every_runnable_block_is_run_or_has_a_reason() -> None:
    names = [b.name for b in runnable_blocks()]
    assert len(names) == len(set(names))
    unlisted = [n for n in names if n not in RUN and n not in NOT_RUN]
    assert not unlisted, f"README blocks neither run nor listed in NOT_RUN with a reason: {unlisted}"
    stale = sorted((set(RUN) | set(NOT_RUN)) - set(names))
    assert not stale, f"RUN / NOT_RUN name blocks the README no longer has: {stale}"
    assert not set(RUN) & set(NOT_RUN)
    known = SHOWN_LANGUAGES | SHELL_LANGUAGES | PYTHON_LANGUAGES
    unknown = [(b.name, b.language) for b in readme_blocks() if b.language not in known]
    assert not unknown, f"blocks in a language this test does not know (run, or only shown?): {unknown}"


def test_the_tests_named_for_blocks_not_run_here_exist() -> None:
    for name, reason in NOT_RUN.items():
        for path in re.findall(r"tests/[\w/]+\.py", reason):
            assert (ROOT / path).is_file(), f"NOT_RUN[{name!r}] names {path}, which does not exist"


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=[pytest.mark.postgres] if r.postgresql else []) for n, r in RUN.items()]
)
def test_the_readme_block_runs(name: str, world: World, request: pytest.FixtureRequest) -> None:
    (block,) = [b for b in runnable_blocks() if b.name == name]
    run = RUN[name]
    if run.postgresql:
        world.postgres_url = str(request.getfixturevalue("postgres_url"))
    gone = [p for p in run.placeholders if p not in block.text]
    assert not gone, f"{name}: RUN names placeholders the block no longer has: {gone}"
    for file_name, value in run.files.items():
        (world.workdir / file_name).write_text(str(world.value(value)), encoding="utf-8")
    if block.language in SHELL_LANGUAGES:
        env = run_shell(block, run, world)
        if run.check is not None:
            run.check(world, env)
        return
    names, printed = run_python(block, run, world)
    for text in run.prints:
        assert text in printed, f"{name} printed no {text!r}:\n{printed}"
    if run.check is not None:
        run.check(world, names)


def test_the_bulk_import_json_example_imports(world: World) -> None:
    """The JSON the Bulk import section shows is read by the same command as its CSV."""
    (world.workdir / "catalogue.json").write_text(shown_block("Bulk import @2"), encoding="utf-8")
    args = ["characters", "import", "catalogue.json", "--rights-holder", world.rights_holder_id]
    result = charter_cli(args, world.env(world.admin_key))
    assert result.exit_code == 0, result.output
