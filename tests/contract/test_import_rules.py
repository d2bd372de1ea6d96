"""The layering rules of the SDK and the server, read from the source with ``ast``.

* ``charter`` (the SDK) never imports ``charter_server``, SQLAlchemy, Alembic, psycopg or
  structlog, so ``pip install ./client_sdk`` alone gives a working SDK;
* only ``charter.cli`` (the optional ``[cli]`` extra) imports Typer and Rich;
* ``charter_server.domain`` imports neither gRPC nor SQLAlchemy;
* ``charter_server.storage`` imports neither ``charter_server.api`` nor ``charter_server.services``;
* ``charter_server.services`` imports neither ``charter_server.api`` nor gRPC;
* ``charter_server.services`` and ``charter_server.storage`` speak no protobuf: they import
  ``charter.v1`` only where `PROTOBUF_EXCEPTIONS` says so, each with its reason (the README's
  "Development" section lists the same exceptions).

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
class Allowed:
    """A documented exception to a rule: ``module`` (and its submodules) may import ``imported``."""

    module: str
    imported: str
    reason: str


@dataclass(frozen=True)
class Rule:
    """Modules under ``scope`` (except those under ``exempt``) must not import ``forbidden``,
    except for the imports ``allowed`` names."""

    name: str
    scope: str
    forbidden: tuple[str, ...]
    exempt: tuple[str, ...] = ()
    allowed: tuple[Allowed, ...] = ()

    def allows(self, module: str, imported: str) -> bool:
        """Whether an exception lets ``module`` import ``imported``."""
        return any(within(module, a.module) and within(imported, a.imported) for a in self.allowed)


_SERVICES = "charter_server.services"
PROTOBUF_EXCEPTIONS = (
    Allowed(
        "charter_server",
        "charter.v1.terms_pb2",
        "the terms are a value of the shared pure core: charter.terms evaluates a Terms message on "
        "the server and offline alike, and grant claims carry it signed, byte for byte",
    ),
    Allowed(
        f"{_SERVICES}.grants",
        "charter.v1.grant_pb2",
        "a grant is signed GrantClaims; its verdicts are the shared verifier's GrantVerdict values",
    ),
    Allowed(
        f"{_SERVICES}.grants",
        "charter.v1.envelope_pb2",
        "a grant is signed into a DSSE Envelope, and VerifyGrant checks the envelope as received",
    ),
    Allowed(
        f"{_SERVICES}.authorization.receipt",
        "charter.v1",
        "a decision receipt is signed DecisionReceipt bytes, built from what Authorize validated; "
        "AuthorizeResult parses them, and a retried request's kept response is replayed as signed",
    ),
    Allowed(
        f"{_SERVICES}.decision_records",
        "charter.v1.envelope_pb2",
        "an offline use's decision record is verified as the signed envelope received, never rebuilt",
    ),
    Allowed(
        f"{_SERVICES}.decision_records",
        "charter.v1.offline_pb2",
        "the lease a retried decision record names is read from its payload without verifying it again "
        "(its key may be revoked since), only for the bytes accepted before",
    ),
    Allowed(
        f"{_SERVICES}.registry_snapshots",
        "charter.v1",
        "a registry snapshot page is signed RegistrySnapshotClaims bytes, built from the registry as read "
        "after its version, and cut at its size in bytes",
    ),
    Allowed(
        f"{_SERVICES}.usage_receipts",
        "charter.v1",
        "a usage record's receipt is read in its signed form (DecisionReceipt in an Envelope), never rebuilt",
    ),
    *(
        Allowed(
            f"{_SERVICES}.authorization.{module}",
            "charter.v1.envelope_pb2",
            "a presented grant is verified as the signed envelope received",
        )
        for module in ("command", "validation", "decision")
    ),
    Allowed(
        f"{_SERVICES}.transparency",
        "charter.v1",
        "a log entry is a LogEntry serialized once and kept as those bytes (its leaf is their hash); "
        "decision entries are read from the receipt's signed DecisionReceipt payload",
    ),
    Allowed(
        f"{_SERVICES}.authorization.validation",
        "charter.v1.grant_pb2",
        "the character and issue time a presented grant claims are read from its GrantClaims "
        "payload, to index and order the candidates (trusted only once it verified)",
    ),
)


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
    Rule(
        "services speak no protobuf, apart from the documented exceptions",
        "charter_server.services",
        ("charter.v1",),
        allowed=PROTOBUF_EXCEPTIONS,
    ),
    Rule(
        "storage speaks no protobuf, apart from the documented exceptions",
        "charter_server.storage",
        ("charter.v1",),
        allowed=PROTOBUF_EXCEPTIONS,
    ),
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
            found = imported_modules(source, module, is_package=is_package, filename=str(path))
            for imported in sorted(found):
                if not any(within(imported, forbidden) for forbidden in rule.forbidden):
                    continue
                # `from pkg import mod` also names pkg: an exception for pkg.mod covers that pkg.
                if rule.allows(module, imported) or any(
                    other.startswith(imported + ".") and rule.allows(module, other) for other in found
                ):
                    continue
                problems.append(f"{path.relative_to(base.parent)}: {module} imports {imported}")
    return problems


@pytest.mark.parametrize("rule", RULES, ids=[rule.name for rule in RULES])
def test_import_rule(rule: Rule) -> None:
    problems = violations(rule)
    assert not problems, f"{rule.name}:\n" + "\n".join(problems)


def test_every_exception_is_used_and_explained() -> None:
    """An exception nobody needs any more is removed, not left to cover a new import."""
    unused = []
    for allowed in PROTOBUF_EXCEPTIONS:
        assert len(allowed.reason.split()) >= 8, allowed
        lenient = Rule("probe", allowed.module, (allowed.imported,))
        if not violations(lenient):
            unused.append(f"{allowed.module} -> {allowed.imported}")
    assert not unused, "exceptions that no import needs:\n" + "\n".join(unused)


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
        "server/charter_server/storage/terms.py": "from charter.v1 import terms_pb2, grant_pb2\nimport charter.v1\n",
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
    # terms_pb2 is a documented exception; grant_pb2 is not, nor a bare `import charter.v1` here.
    terms = "server/charter_server/storage/terms.py: charter_server.storage.terms imports"
    assert found[RULES[6].name] == [f"{terms} charter.v1.grant_pb2"]
    assert imported_modules("from .v1 import api_key_pb2", "charter.client", is_package=False) == {
        "charter.v1",
        "charter.v1.api_key_pb2",
    }
