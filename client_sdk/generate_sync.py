#!/usr/bin/env python3
"""Generate the synchronous client calls, ``charter/_sync/``, from the asyncio ones in ``charter/_async/``.

Each call of the two clients is written once, for asyncio, in ``charter/_async/`` (one module per
service area). This script makes the synchronous copy with unasync (the tool httpcore and the
Cerbos SDK use): it removes ``async`` and ``await`` and renames what differs by name
(``AsyncClient`` to ``Client``, ``__aenter__`` to ``__enter__``, ``charter._io_async`` to
``charter._io_sync``, ...; see `NAMES`). unasync leaves strings and comments alone, so this script
then rewrites docstrings and comments the same way (``async with`` to ``with``, ``An async
generator`` to ``A generator``, the same renames), marks every file as generated, and formats it
with the project's ruff settings. The output is committed; a test runs this script into a
temporary folder and fails when the committed copy is stale.

Usage::

    python client_sdk/generate_sync.py             # regenerate client_sdk/charter/_sync
    python client_sdk/generate_sync.py --out DIR   # write DIR/charter/_sync instead
"""

# ruff: noqa: S603 - running the project's own formatter with fixed arguments.

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import tokenize_rt
import unasync

SDK_ROOT = Path(__file__).resolve().parent
SOURCE = SDK_ROOT / "charter" / "_async"
PACKAGE_DIR = Path("charter") / "_sync"
RUFF_CONFIG = SDK_ROOT.parent / "pyproject.toml"

NAMES = {
    "_async": "_sync",
    "_io_async": "_io_sync",
    "AsyncClient": "Client",
    "AsyncRevocationWatch": "RevocationWatch",
    "AbstractAsyncContextManager": "AbstractContextManager",
    "async_license_block": "license_block",
}
"""Names that differ between the two clients, beyond unasync's own (``__aenter__``, ``AsyncIterator``, ...)."""

_ALL_NAMES: dict[str, str] = unasync.Rule("/_async/", "/_sync/", additional_replacements=NAMES).token_replacements

# Prose (docstrings and comments) rewritten in this order; the names follow.
_PROSE = (
    (re.compile(r"\b([Aa]n) async (?=[aeiou])"), r"\1 "),
    (re.compile(r"\b([Aa])n async (?=\w)"), r"\1 "),
    (re.compile(r"\basync (?=with\b|for\b)"), ""),
    (re.compile(r"\bawait "), ""),
    (re.compile(r"\basync (?=\w)"), ""),
)
_NAME = re.compile(r"\b(" + "|".join(sorted(map(re.escape, _ALL_NAMES), key=len, reverse=True)) + r")\b")


def _prose(text: str) -> str:
    for pattern, replacement in _PROSE:
        text = pattern.sub(replacement, text)
    return _NAME.sub(lambda match: _ALL_NAMES[match.group(1)], text)


def _rewrite_prose(source: str) -> str:
    """Rewrites the docstrings (triple-quoted strings) and comments of unasync's output."""
    tokens = tokenize_rt.src_to_tokens(source)
    for index, token in enumerate(tokens):
        if token.name == "COMMENT" or (token.name == "STRING" and token.src.endswith(('"""', "'''"))):
            tokens[index] = token._replace(src=_prose(token.src))
    return str(tokenize_rt.tokens_to_src(tokens))


def generate(out_root: Path) -> list[Path]:
    """Generates every ``charter/_async/*.py`` into ``out_root/charter/_sync``; returns the files."""
    target = out_root / PACKAGE_DIR
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    # ruff tells first-party imports by the package a file is in: make `charter` one here too.
    marker = target.parent / "__init__.py"
    if not marker.exists():
        marker.write_text("", encoding="utf-8")
    sources = sorted(SOURCE.glob("*.py"))
    rule = unasync.Rule(f"{SOURCE}{os.sep}", f"{target}{os.sep}", additional_replacements=NAMES)
    unasync.unasync_files([str(path) for path in sources], [rule])
    for path in sources:
        output = target / path.name
        header = f"# Generated from charter/_async/{path.name} by client_sdk/generate_sync.py; do not edit.\n"
        output.write_text(header + _rewrite_prose(output.read_text(encoding="utf-8")), encoding="utf-8")
    ruff = [sys.executable, "-m", "ruff"]
    settings = ["--config", str(RUFF_CONFIG), "--quiet"]
    # unasync leaves imports and __all__ unsorted where a name changed (AsyncIterator ->
    # Iterator), and a loop yielding each item of a list, which an async generator needs, is
    # `yield from` in a synchronous one (an "unsafe" fix only where the loop's name is used after).
    fixes = ["--fix-only", "--unsafe-fixes", "--select", "I,RUF022,UP028"]
    subprocess.run([*ruff, "check", *settings, *fixes, str(target)], check=True)
    subprocess.run([*ruff, "format", *settings, str(target)], check=True)
    return sorted(target.glob("*.py"))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=SDK_ROOT, help="output root (default: client_sdk)")
    namespace = parser.parse_args()
    files = generate(namespace.out)
    print(f"generated {len(files)} files into {namespace.out / PACKAGE_DIR}")


if __name__ == "__main__":
    main()
