"""The README's worked example of the transparency log is right: its values come out of
`charter.transparency`, and its standalone verification snippet runs and passes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from charter import transparency

README = Path(__file__).resolve().parents[3] / "README.md"


def _section() -> str:
    text = README.read_text(encoding="utf-8")
    return text[text.index("## Transparency log") : text.index("## PostgreSQL")]


def _blocks() -> list[tuple[str, str]]:
    return re.findall(r"```(\w*)\n(.*?)```", _section(), re.S)


def test_the_worked_example_is_what_the_library_computes() -> None:
    section = _section()
    leaves = [transparency.leaf_hash(f"entry {i}".encode()) for i in range(3)]
    tree = transparency.CompactRange()
    tree.extend(leaves)
    signer = transparency.NoteSigner("charter.example/log", bytes(32))
    checkpoint = transparency.sign_checkpoint(transparency.Checkpoint("charter.example/log", 3, tree.root()), signer)

    for value in (*leaves, tree.root(), transparency.node_hash(leaves[0], leaves[1])):
        assert value.hex()[:8] in section
    assert tree.root().hex() in section
    assert signer.verifier.vkey in section
    assert [b for lang, b in _blocks() if b.startswith("charter.example/log\n")] == [checkpoint.decode()]


def test_the_standalone_snippet_verifies_the_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (checkpoint,) = [b for _, b in _blocks() if b.startswith("charter.example/log\n")]
    (snippet,) = [b for lang, b in _blocks() if lang == "python"]
    (tmp_path / "checkpoint").write_text(checkpoint, encoding="utf-8")
    monkeypatch.chdir(tmp_path)

    exec(compile(snippet, "README.md", "exec"), {})

    forged = checkpoint.replace("\n3\n", "\n4\n")
    (tmp_path / "checkpoint").write_text(forged, encoding="utf-8")
    with pytest.raises(Exception) as raised:
        exec(compile(snippet, "README.md", "exec"), {})
    assert type(raised.value).__name__ == "InvalidSignature"
