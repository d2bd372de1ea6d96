"""``pip install ./client_sdk`` into an empty virtualenv gives a working SDK without server deps.

It needs PyPI (or pip's local cache of wheels) for grpcio and the other SDK dependencies.
The SDK's source is copied first, without build leftovers, so a stale ``build/`` folder cannot
hide a file missing from the package and the test leaves nothing behind in the tree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ._support import ROOT, describe

SERVER_ONLY = ("sqlalchemy", "structlog", "typer", "rich", "babel")  # babel: the CLI extra formats money
CHECK = """
import importlib.metadata, importlib.util, json
import charter, charter.v1.catalog_service_pb2_grpc as generated
print(json.dumps({
    "generated": generated.__file__,
    "distributions": sorted(d.metadata["Name"].lower() for d in importlib.metadata.distributions()),
    "importable": [m for m in %r if importlib.util.find_spec(m) is not None],
}))
"""


def _run(args: list[str | Path], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}
    env.update(PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.timeout(300)  # a pip install on a busy two-core machine
def test_sdk_installs_alone_into_an_empty_virtualenv(tmp_path: Path) -> None:
    source = tmp_path / "client_sdk"
    shutil.copytree(
        ROOT / "client_sdk",
        source,
        ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", "*.pyc"),
    )
    venv = tmp_path / "venv"
    created = _run([sys.executable, "-m", "venv", venv], cwd=tmp_path, timeout=120)
    assert created.returncode == 0, describe(created)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")

    # --no-compile: the bytecode of grpcio, protobuf and the rest is seconds of CPU that this one
    # import below does not need.
    installed = _run([python, "-m", "pip", "install", "--quiet", "--no-compile", source], cwd=tmp_path, timeout=150)
    assert installed.returncode == 0, describe(installed)

    # -I: isolated mode, so neither the working folder nor PYTHON* variables reach sys.path.
    checked = _run([python, "-I", "-c", CHECK % (SERVER_ONLY,)], cwd=venv, timeout=30)
    assert checked.returncode == 0, describe(checked)
    report = json.loads(checked.stdout)
    assert Path(report["generated"]).resolve().is_relative_to(venv.resolve()), report["generated"]
    assert "charter-sdk" in report["distributions"]
    present = sorted(set(SERVER_ONLY) & set(report["distributions"]))
    assert not present, f"pip install ./client_sdk pulled in {present}"
    assert not report["importable"], f"importable in the SDK-only environment: {report['importable']}"
