"""The layering rules of the SDK and the server, read from the source with ``ast``.

* ``charter`` (the SDK) never imports ``charter_server``, SQLAlchemy, Alembic, psycopg or
  structlog, so ``pip install ./client_sdk`` alone gives a working SDK;
* only ``charter.cli`` (the optional ``[cli]`` extra) imports Typer and Rich;
* ``charter_server.domain`` imports neither gRPC nor SQLAlchemy;
* ``charter_server.storage`` imports neither ``charter_server.api`` nor ``charter_server.services``;
* ``charter_server.services`` imports neither ``charter_server.api`` nor gRPC.

Every import counts, also those under ``if TYPE_CHECKING:`` and inside functions, and so do
``importlib.import_module("...")`` and ``__import__("...")`` with a literal name. The rules
hold trivially for packages that do not exist yet, so they pass on an empty or partial tree.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ._support import ROOT

GRPC = ("grpc", "grpc_status", "grpc_health", "grpc_reflection")
SOURCE_ROOTS = ((ROOT / "client_sdk", "charter"), (ROOT / "server", "charter_server"))


@dataclass(frozen=True)
class Rule:
    """Modules under ``scope`` (except those under ``exempt``) must not import ``forbidden``."""

    name: str
    scope: str
    forbidden: tuple[str, ...]
    exempt: tuple[str, ...] = ()


RULES = (
    Rule(
        "the SDK does not import the server or its dependencies",
        "charter",
        ("charter_server", "sqlalchemy", "alembic", "psycopg", "structlog"),
    ),
    Rule(
        "only charter.cli imports the CLI's dependencies",
        "charter",
        ("typer", "rich"),
        exempt=("charter.cli",),
    ),
    Rule(
        "the domain imports neither gRPC nor SQLAlchemy",
        "charter_server.domain",
        (*GRPC, "sqlalchemy", "alembic"),
    ),
    Rule(
        "storage does not import the API or the services",
        "charter_server.storage",
        ("charter_server.api", "charter_server.services"),
    ),
    Rule("services import neither the API nor gRPC", "charter_server.services", ("charter_server.api", *GRPC)),
)


def within(module: str, prefix: str) -> bool:
    """Tell whether ``module`` is ``prefix`` or a submodule of it."""
    return module == prefix or module.startswith(prefix + ".")


def iter_modules(base: Path, package: str) -> Iterator[tuple[str, Path, bool]]:
    """Yield (module name, path, is a package) for every Python file of ``base/package``."""
    for path in sorted((base / package).rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = list(path.relative_to(base).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        yield ".".join(parts), path, is_package


def imported_modules(source: str, module: str, *, is_package: bool, filename: str = "<source>") -> set[str]:
    """Return every module name that ``source`` (the code of ``module``) imports."""
    tree = ast.parse(source, filename=filename)
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            if base:
                found.add(base)
            # `from pkg import name` may import the submodule pkg.name.
            found.update(f"{base}.{alias.name}" if base else alias.name for alias in node.names)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = ""
            if isinstance(func, ast.Attribute):
                name = func.attr
            elif isinstance(func, ast.Name):
                name = func.id
            first = node.args[0]
            if name in {"import_module", "__import__"} and isinstance(first, ast.Constant):
                found.add(str(first.value))
    return found


def violations(rule: Rule, roots: tuple[tuple[Path, str], ...] = SOURCE_ROOTS) -> list[str]:
    """Return one line per import that breaks ``rule`` in the given source trees."""
    problems: list[str] = []
    for base, package in roots:
        for module, path, is_package in iter_modules(base, package):
            if not within(module, rule.scope) or any(within(module, e) for e in rule.exempt):
                continue
            source = path.read_text(encoding="utf-8")
            for imported in sorted(imported_modules(source, module, is_package=is_package, filename=str(path))):
                if any(within(imported, forbidden) for forbidden in rule.forbidden):
                    problems.append(f"{path.relative_to(base.parent)}: {module} imports {imported}")
    return problems


@pytest.mark.parametrize("rule", RULES, ids=[rule.name for rule in RULES])
def test_import_rule(rule: Rule) -> None:
    problems = violations(rule)
    assert not problems, f"{rule.name}:\n" + "\n".join(problems)


def test_checker_finds_violations(tmp_path: Path) -> None:
    """The checker itself: relative imports, TYPE_CHECKING blocks and exemptions."""
    files = {
        "server/charter_server/__init__.py": "",
        "server/charter_server/api/__init__.py": "",
        "server/charter_server/services/__init__.py": "",
        "server/charter_server/services/grants.py": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..api import convert\n"
        ),
        "server/charter_server/storage/repo.py": "from charter_server import services\n",
        "server/charter_server/domain/model.py": "def f():\n    import grpc.aio\n",
        "client_sdk/charter/__init__.py": "import importlib\nimportlib.import_module('structlog')\n",
        "client_sdk/charter/cli/__init__.py": "import typer\nfrom rich.table import Table\n",
        "client_sdk/charter/client.py": "from . import errors\nfrom .v1 import api_key_pb2\n",
    }
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    roots = ((tmp_path / "client_sdk", "charter"), (tmp_path / "server", "charter_server"))
    found = {rule.name: violations(rule, roots) for rule in RULES}

    assert found[RULES[0].name] == ["client_sdk/charter/__init__.py: charter imports structlog"]
    assert found[RULES[1].name] == []  # typer and rich in charter.cli are allowed
    assert found[RULES[2].name] == [
        "server/charter_server/domain/model.py: charter_server.domain.model imports grpc.aio"
    ]
    assert found[RULES[3].name] == [
        "server/charter_server/storage/repo.py: charter_server.storage.repo imports charter_server.services"
    ]
    grants = "server/charter_server/services/grants.py: charter_server.services.grants imports"
    assert found[RULES[4].name] == [f"{grants} charter_server.api", f"{grants} charter_server.api.convert"]
    assert imported_modules("from .v1 import api_key_pb2", "charter.client", is_package=False) == {
        "charter.v1",
        "charter.v1.api_key_pb2",
    }
