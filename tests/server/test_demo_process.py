"""The quick start as a new user meets it: ``charter-server demo --listen`` in a process of its own,
and every command it prints pasted into a new shell that has no virtualenv on its PATH."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
COMMAND_INDENT = "  /"  # the printed commands start with the full path of a tool
STARTUP_SECONDS = 60
LISTENING = re.compile(r"^Charter demo on 127\.0\.0\.1:(\d+) ")


@pytest.fixture
def demo_output(tmp_path: Path) -> Iterator[list[str]]:
    """The lines the demo printed before it started serving; the process runs until the test ends.

    It listens on port 0, so the commands it prints must name the port it was given."""
    process = subprocess.Popen(
        [
            str(BIN / "charter-server"),
            *("--database-url", f"sqlite:///{tmp_path / 'demo.db'}"),
            *("demo", "--listen", "127.0.0.1:0"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "COLUMNS": "80"},
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if "statements show" in line:  # the last command it prints
                break
        (port,) = [int(m.group(1)) for m in map(LISTENING.match, lines) if m]
        _wait_for_port(port, deadline)
        yield lines
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_port(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(f"the demo never listened on port {port}")


def test_every_command_the_demo_prints_works_pasted_into_a_new_shell(demo_output: list[str]) -> None:
    commands = [line.strip() for line in demo_output if line.startswith(COMMAND_INDENT)]
    clean_env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"}
    results = [
        subprocess.run(["bash", "-c", command], env=clean_env, capture_output=True, text=True, timeout=60, check=False)
        for command in commands
    ]

    assert len(commands) == 3, demo_output
    assert [result.returncode for result in results] == [0, 0, 0], [result.stderr for result in results]
    assert results[0].stdout.strip() == "['Example Studio (demo)']"
    assert "allow" in results[1].stdout.lower()
    assert "chr_" in results[2].stdout


def test_no_id_the_demo_prints_is_broken_across_lines_at_80_columns(demo_output: list[str]) -> None:
    first_lines = demo_output[:4]

    assert all(not line.rstrip().endswith(("licensee", "grant", "character")) for line in first_lines), first_lines
    assert any(line.startswith("rights holder rh_") and "lic_" in line for line in first_lines), first_lines
