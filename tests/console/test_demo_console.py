"""``charter-server demo`` serves the console too and prints its address and a one-time sign-in
link for the demo's rights holder, which signs in once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

LINK = re.compile(r"(http://127\.0\.0\.1:\d+)(/sign-in/once/[A-Za-z0-9_-]+)")


def test_the_demo_prints_a_one_time_sign_in_link_to_its_console(tmp_path: Path) -> None:
    env = {**os.environ, "CHARTER_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}", "CHARTER_LOG_LEVEL": "warning"}
    command = [
        sys.executable,
        "-m",
        "charter_server",
        "--listen",
        "127.0.0.1:0",
        "demo",
        "--console-listen",
        "127.0.0.1:0",
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    found = None
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        while found is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            found = LINK.search(line)
        assert found is not None, "".join(lines[-40:])
        base, path = found.group(1), found.group(2)
        with httpx.Client(base_url=base, timeout=30, follow_redirects=True) as browser:
            signed_in = browser.get(path)
            catalogue = browser.get("/catalogue")
        with httpx.Client(base_url=base, timeout=30) as again:
            reused = again.get(path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    assert signed_in.status_code == 200  # followed to the catalogue
    assert catalogue.status_code == 200
    assert "Aoi Hoshino" in catalogue.text
    assert reused.status_code == 410
