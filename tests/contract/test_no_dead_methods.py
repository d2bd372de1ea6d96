"""No dead methods in the server's storage and services: every public method of a class there is
named somewhere else (an attribute, a name or a string, read with ``ast``, so a comment naming it
does not count) in the server, the tests or the benches. A repository method nobody calls is
code nobody checks: it rots while it reads as supported (``UsageRepository.receipt_used`` did,
after decision-record ids were scoped per licensee).

Methods called by a framework rather than by name are listed in `CALLED_BY_FRAMEWORK`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from ._support import ROOT

SERVER = ROOT / "server" / "charter_server"
CHECKED = (SERVER / "storage", SERVER / "services")
SEARCHED = (SERVER, ROOT / "tests", ROOT / "bench")
CALLED_BY_FRAMEWORK = frozenset(
    {
        "process_bind_param",  # SQLAlchemy TypeDecorator hooks (storage/tables.py)
        "process_result_value",
    }
)


def _sources(folders: tuple[Path, ...]) -> Iterator[Path]:
    for folder in folders:
        yield from sorted(folder.rglob("*.py"))


def _methods() -> dict[str, list[str]]:
    """Public method name -> where it is defined (``path:Class``)."""
    found: dict[str, list[str]] = {}
    for path in _sources(CHECKED):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if not isinstance(node, ast.ClassDef):
                continue
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and not item.name.startswith("_"):
                    found.setdefault(item.name, []).append(f"{path.relative_to(ROOT)}:{node.name}")
    return found


def _references() -> set[str]:
    """Every attribute, name and string constant of the searched code (definitions aside)."""
    named: set[str] = set()
    for path in _sources(SEARCHED):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute):
                named.add(node.attr)
            elif isinstance(node, ast.Name):
                named.add(node.id)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                named.add(node.value)
    return named


def test_every_storage_and_service_method_has_a_caller() -> None:
    named = _references()
    dead = {name: where for name, where in _methods().items() if name not in named and name not in CALLED_BY_FRAMEWORK}

    assert dead == {}, "methods nobody calls (remove them, or say in CALLED_BY_FRAMEWORK who does)"
