"""Running `charter` commands as staff against a real server, directly or through a tap."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from charter import Client
from charter.cli._app import app
from charter.v1 import signing_key_pb2
from sdk._live import Live  # tests/ is on sys.path: pytest's rootdir-relative layout
from sdk._tap import Tap
from typer.testing import CliRunner, Result

ERROR_LINE = re.compile(r"^error: (?P<code>[A-Z_]+)(?: (?P<reason>[A-Z_]+))?: .* \(request id (?P<rid>[0-9a-f]{32})\)$")
"""The line a failed call prints first on stderr: its code, reason and request id."""


def invoke(
    runner: CliRunner,
    live: Live,
    *args: str,
    via: Tap | None = None,
    api_key: str | None = None,
    json_output: bool = False,
) -> Result:
    """Runs `charter` against the server, or `via` a tap in front of it, with the server's admin key
    unless another is given; `json_output` puts `--json` before the command."""
    base = ["--target", (via or live).target, "--api-key", api_key or live.admin]
    if json_output:
        base.append("--json")
    return runner.invoke(app, [*base, *args])


def json_of(result: Result) -> Any:
    """What a command that succeeded printed as JSON."""
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def envelope_file(runner: CliRunner, live: Live, grant_id: str, path: Path) -> Path:
    """Writes a grant's envelope as `charter grants show --envelope-json` prints it to `path`."""
    shown = invoke(runner, live, "grants", "show", grant_id, "--envelope-json")
    assert shown.exit_code == 0, shown.output
    path.write_text(shown.stdout, encoding="utf-8")
    return path


def active_signing_key(staff: Client) -> str:
    """The id of the server's active key of grants and receipts, as staff (an admin client) list them."""
    key = signing_key_pb2.SigningKey
    (active,) = [
        k.key_id for k in staff.list_signing_keys() if k.state == key.STATE_ACTIVE and k.purpose == key.PURPOSE_GRANTS
    ]
    return active
