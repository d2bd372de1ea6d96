"""What `charter audit prove` prints: each entry of the receipt with its C2SP tlog-proof bundle, as
text or JSON, and "verified:" only when every entry's body was shown (and checked)."""

from __future__ import annotations

import typer

from charter.cli import _output
from charter.transparency import Checkpoint, ProofBundle
from charter.v1 import transparency_pb2


def print_proof(
    json_output: bool,
    digest: bytes,
    checkpoint: Checkpoint,
    shown: list[tuple[transparency_pb2.LoggedEntry, transparency_pb2.LogEntry | None, ProofBundle]],
) -> None:
    """Print the proved entries of the receipt ``digest`` in the tree of ``checkpoint``."""
    if json_output:
        _output.print_json(
            {
                "receiptDigest": digest.hex(),
                "origin": checkpoint.origin,
                "treeSize": checkpoint.size,
                "entries": [
                    {
                        "index": entry.index,
                        "leafHash": entry.leaf_hash.hex(),
                        "withheld": entry.withheld,
                        "entry": None if body is None else _output.to_dict(body),
                        "bundle": bundle.to_text().decode("utf-8"),
                    }
                    for entry, body, bundle in shown
                ],
            }
        )
        return
    typer.echo(f"receipt {digest.hex()}: {len(shown)} entries in {checkpoint.origin}, tree of {checkpoint.size}")
    for entry, body, bundle in shown:
        about = "withheld" if body is None else _about(body)
        typer.echo(f"  entry {entry.index}  leaf {entry.leaf_hash.hex()}  {about}")
        for line in bundle.to_text().decode("utf-8").splitlines():
            typer.echo(f"    {line}")
    if all(body is not None for _, body, _ in shown):
        typer.echo("verified: every entry is included in the signed tree")


def _about(body: transparency_pb2.LogEntry) -> str:
    decision = body.decision  # only decision entries get this far
    verdict = "allowed" if decision.allowed else "denied"
    return f"{verdict} {decision.character_id or '(no character)'}"
