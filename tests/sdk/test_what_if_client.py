"""The SDK's what-if call (`simulate_use`) against a real server: sync and async, a licensee's
grants under proposed terms, the caller's own licensee for a generator, typed errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from charter import Client, InvalidArgumentError, PermissionDeniedError
from charter.aio import AsyncClient
from charter.v1 import authorization_service_pb2, decision_pb2, terms_pb2

from ._live import TERMS, USE, Live, Party, run_async


@pytest.fixture
def generator(live: Live, party: Party) -> Iterator[Client]:
    with Client(live.target, api_key=party.generator, timeout=5) as client:
        yield client


def test_simulate_use_under_proposed_terms_and_as_the_generator(admin: Client, generator: Client, party: Party) -> None:
    character = party.character_ids[0]
    video_only = terms_pb2.Terms()
    video_only.CopyFrom(TERMS)
    del video_only.permitted_use_types[:]
    video_only.permitted_use_types.append(terms_pb2.USE_TYPE_VIDEO_GENERATION)

    as_generator = generator.simulate_use(character_ids=[character], **USE)
    proposed = admin.simulate_use(
        character_ids=[character],
        licensee_id=party.licensee_id,
        proposed_character_id=character,
        proposed_terms=video_only,
        **USE,
    )

    async def scenario(client: AsyncClient) -> authorization_service_pb2.SimulateUseResponse:
        return await client.simulate_use(character_ids=[character], licensee_id=party.licensee_id, **USE)

    through_async = run_async(generator.target, party.generator, scenario)

    assert as_generator.allowed and as_generator.licensee_id == party.licensee_id
    assert [d.character_id for d in as_generator.decisions] == [character]
    assert as_generator.decisions[0].obligations.revenue_share_bps == TERMS.revenue_share_bps
    assert not proposed.allowed
    assert list(proposed.decisions[0].reasons) == [decision_pb2.DENY_REASON_USE_TYPE_NOT_PERMITTED]
    assert proposed.decisions[0].terms_version == 0
    assert through_async.allowed


def test_simulate_use_errors_are_typed(admin: Client, generator: Client, party: Party) -> None:
    with pytest.raises(InvalidArgumentError) as invalid:
        admin.simulate_use(character_ids=["chr_nope"], **USE)
    with pytest.raises(PermissionDeniedError):
        generator.simulate_use(character_ids=[party.character_ids[0]], licensee_id="lic_" + "0" * 32, **USE)
    with pytest.raises(ValueError, match="proposed"):
        admin.simulate_use(character_ids=[party.character_ids[0]], proposed_terms=TERMS, **USE)
    assert [v.field for v in invalid.value.field_violations] == ["character_ids[0]"]
