"""`charter audit prove --state`: a prover that keeps a witness's checkpoint catches a split view, a
log that shows this prover a tree other than the one it shows the witness.

A split view needs no bad proof: the operator builds a second tree of the same entries with one
other entry changed, signs its checkpoint with the log's own key and proves the receipt in it. Alone,
`prove` cannot tell (that is what witnesses are for); with the witness's kept checkpoint it asks the
log to prove that one tree extends the other, which no log can do for two trees. As in
`test_audit_hostile_cli`, the server is the real one and the operator holds its real log key."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from charter import Client, envelope, transparency
from charter.transparency import Checkpoint, sign_checkpoint
from charter.transparency.merkle import CompactRange
from charter.transparency.note import parse_note
from charter.v1 import transparency_service_pb2 as ts
from sdk._live import Live
from sdk._scene import Scene
from sdk._tap import Tap

from ._commands import invoke
from ._readable import ReadableRunner
from .test_audit_cli import alerts, append
from .test_audit_hostile_cli import log_signer, logged_receipt


def kept(state: Path) -> Checkpoint:
    return Checkpoint.from_text(parse_note(state.read_bytes())[0])


def real_proof(live: Live, receipt: Path) -> ts.GetInclusionProofResponse:
    digest = transparency.payload_digest(envelope.from_json(receipt.read_text(encoding="utf-8")))
    with Client(live.target, api_key=live.admin) as client:
        return client.get_inclusion_proof(receipt_digest=digest)


def tree_reader(leaves: Sequence[bytes]) -> transparency.NodeReader:
    """The hashes of the complete subtrees of the tree of ``leaves``, as the log's compact range
    makes them while appending."""
    nodes = {}
    compact = CompactRange()
    for leaf in leaves:
        nodes.update(compact.append(leaf))
    return lambda wanted: [nodes[node] for node in wanted]


def split_view(live: Live, honest: ts.GetInclusionProofResponse) -> ts.GetInclusionProofResponse:
    """The honest answer's proof, in a second tree of the same size signed with the log's key: the
    same entries but one (not the receipt's) changed."""
    size = Checkpoint.from_text(parse_note(honest.checkpoint)[0]).size
    with Client(live.target, api_key=live.admin) as client:
        leaves = [logged.leaf_hash for logged in client.list_log_entries()][:size]
    ours = {included.entry.index for included in honest.entries}
    other = next(index for index in range(size) if index not in ours)
    leaves[other] = transparency.leaf_hash(b"an entry this prover is never shown")
    read = tree_reader(leaves)
    forked = ts.GetInclusionProofResponse()
    forked.CopyFrom(honest)
    root = transparency.root_hash(size, read)
    forked.checkpoint = sign_checkpoint(Checkpoint(live.server.settings.origin, size, root), log_signer(live))
    for included in forked.entries:
        del included.proof[:]
        included.proof.extend(transparency.inclusion_proof(included.entry.index, size, read))
    return forked


def test_a_split_view_passes_a_lone_prover_and_is_caught_with_the_witness_state(
    runner: ReadableRunner, cli_live: Live, scene: Scene, tmp_path: Path
) -> None:
    _, receipt, _ = logged_receipt(runner, cli_live, scene, tmp_path)
    state = tmp_path / "witness.checkpoint"
    assert invoke(runner, cli_live, "audit", "watch", "--state", str(state)).exit_code == 0
    witnessed = state.read_bytes()
    forked = split_view(cli_live, real_proof(cli_live, receipt))
    assert Checkpoint.from_text(parse_note(forked.checkpoint)[0]).root_hash != kept(state).root_hash

    with Tap(cli_live.target) as tap:
        tap.answer("GetInclusionProof", lambda _request: forked)
        alone = invoke(runner, cli_live, "audit", "prove", str(receipt), via=tap)
        with_state = invoke(runner, cli_live, "audit", "prove", str(receipt), "--state", str(state), via=tap)

    assert alone.exit_code == 0, alone.output  # every proof in the second tree holds
    assert with_state.exit_code == 2, with_state.output
    assert alerts(with_state)
    assert state.read_bytes() == witnessed


def test_a_split_view_at_a_larger_size_is_caught_by_the_consistency_proof(
    runner: ReadableRunner, cli_live: Live, scene: Scene, tmp_path: Path
) -> None:
    """The witness kept a smaller tree; the prover is shown a forked larger one: the log's honest
    consistency proof does not lead from the kept root to the forked one."""
    state = tmp_path / "witness.checkpoint"
    assert invoke(runner, cli_live, "audit", "watch", "--state", str(state)).exit_code == 0
    _, receipt, _ = logged_receipt(runner, cli_live, scene, tmp_path)
    append(cli_live, 2)
    forked = split_view(cli_live, real_proof(cli_live, receipt))
    assert Checkpoint.from_text(parse_note(forked.checkpoint)[0]).size > kept(state).size

    with Tap(cli_live.target) as tap:
        tap.answer("GetInclusionProof", lambda _request: forked)
        proved = invoke(runner, cli_live, "audit", "prove", str(receipt), "--state", str(state), via=tap)

    assert proved.exit_code == 2, proved.output
    assert alerts(proved)


def test_prove_with_the_state_keeps_a_larger_checkpoint_and_accepts_an_older_one(
    runner: ReadableRunner, cli_live: Live, scene: Scene, tmp_path: Path
) -> None:
    _, receipt, _ = logged_receipt(runner, cli_live, scene, tmp_path)
    older = real_proof(cli_live, receipt)
    state = tmp_path / "witness.checkpoint"
    assert invoke(runner, cli_live, "audit", "watch", "--state", str(state)).exit_code == 0
    append(cli_live, 3)

    grown = invoke(runner, cli_live, "audit", "prove", str(receipt), "--state", str(state))

    assert grown.exit_code == 0, grown.output
    larger = kept(state)
    assert larger.size >= Checkpoint.from_text(parse_note(older.checkpoint)[0]).size + 3

    # A replica behind the witness answers with an older tree: proved a prefix of the kept one.
    with Tap(cli_live.target) as tap:
        tap.answer("GetInclusionProof", lambda _request: older)
        behind = invoke(runner, cli_live, "audit", "prove", str(receipt), "--state", str(state), via=tap)

    assert behind.exit_code == 0, behind.output
    assert kept(state) == larger


def test_prove_starts_a_missing_state_with_its_checkpoint(
    runner: ReadableRunner, cli_live: Live, scene: Scene, tmp_path: Path
) -> None:
    _, receipt, _ = logged_receipt(runner, cli_live, scene, tmp_path)
    state = tmp_path / "new" / "witness.checkpoint"

    proved = invoke(runner, cli_live, "audit", "prove", str(receipt), "--state", str(state))

    assert proved.exit_code == 0, proved.output
    assert kept(state).size >= 1
    assert invoke(runner, cli_live, "audit", "watch", "--state", str(state)).exit_code == 0
