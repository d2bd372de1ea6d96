#!/usr/bin/env python3
"""Generate the Python code of the Charter contract from ``protos/``.

This is the only way the generated modules under ``client_sdk/charter/v1/``
are made: ``*_pb2.py`` and ``*_pb2_grpc.py`` by grpcio-tools' bundled protoc,
and the ``.pyi`` type stubs by mypy-protobuf. The output is committed; a test
runs this script into a temporary folder and fails when the committed copy is
stale.

Usage::

    python protos/generate.py               # regenerate client_sdk/charter/v1
    python protos/generate.py --out DIR     # write DIR/charter/v1 instead
"""

from __future__ import annotations

import argparse
import shutil
import sys
import sysconfig
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
DEFAULT_OUT = PROTO_ROOT.parent / "client_sdk"
PACKAGE_DIR = Path("charter") / "v1"
INIT_TEXT = '"""Generated code of the charter.v1 contract. Do not edit; run protos/generate.py."""\n'
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def _plugin(name: str) -> str:
    """Return the path of a protoc plugin installed beside this interpreter."""
    scripts = Path(sysconfig.get_path("scripts"))
    for candidate in (scripts / name, Path(sys.executable).parent / name):
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"protoc plugin {name} not found; install mypy-protobuf")
    return found


def generate(out_root: Path) -> list[Path]:
    """Generate every ``protos/charter/v1/*.proto`` into ``out_root/charter/v1``."""
    from grpc_tools import protoc  # imported here: a build-time dependency only

    target = out_root / PACKAGE_DIR
    target.mkdir(parents=True, exist_ok=True)
    for stale in target.iterdir():
        if stale.name.endswith(GENERATED_SUFFIXES):
            stale.unlink()
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE_DIR).glob("*.proto"))
    well_known = Path(protoc.__file__).resolve().parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"--proto_path={PROTO_ROOT}",
        f"--proto_path={well_known}",
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--python_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--mypy_out=quiet:{out_root}",
        f"--mypy_grpc_out=quiet:{out_root}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    (target / "__init__.py").write_text(INIT_TEXT, encoding="utf-8")
    (target / "py.typed").write_text("", encoding="utf-8")
    return sorted(target.iterdir())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output root (default: client_sdk)")
    ns = parser.parse_args()
    files = generate(ns.out)
    print(f"generated {len(files)} files into {ns.out / PACKAGE_DIR}")


if __name__ == "__main__":
    main()
