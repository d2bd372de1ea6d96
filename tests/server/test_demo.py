"""The demo catalogue of the quick start: its generator key may render the demo character when a
prompt names it under the demo terms, and is refused, with the failed terms named, otherwise; its
rights holder finds the first use, already reported, in this month's statement."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from charter.v1 import authorization_service_pb2 as az
from charter.v1 import authorization_service_pb2_grpc as az_grpc
from charter.v1 import decision_pb2, terms_pb2
from charter.v1 import usage_service_pb2 as us
from charter.v1 import usage_service_pb2_grpc as us_grpc
from charter_server import demo
from charter_server.domain.models import Role

from ._support import bearer


def _authorize(server: Any, secret: str, **context: Any) -> az.AuthorizeResponse:
    request = az.AuthorizeRequest(
        prompt="Hoshino Aoi dancing on a stage",
        context=decision_pb2.UseContext(
            use_type=terms_pb2.USE_TYPE_IMAGE_GENERATION, content_rating=terms_pb2.CONTENT_RATING_ALL_AGES, **context
        ),
    )
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        response: az.AuthorizeResponse = az_grpc.AuthorizationServiceStub(channel).Authorize(
            request, metadata=bearer(secret), timeout=10
        )
    return response


def test_the_demo_generator_may_render_the_demo_character_named_in_a_prompt(
    server_factory: Any, tmp_path: Path
) -> None:
    server = server_factory(database_url=f"sqlite:///{tmp_path / 'demo.db'}")
    data = demo.seed(server.services)
    server.services.screen.refresh_now()

    allowed = _authorize(server, data.secrets[Role.GENERATOR])
    commercial = _authorize(server, data.secrets[Role.GENERATOR], commercial=True)

    assert allowed.decision.allowed
    assert [(c.character_id, c.grant_id, c.detected) for c in allowed.decision.characters] == [
        (data.character_id, data.grant_id, True)
    ]
    assert allowed.decision.characters[0].obligations.watermark_required
    assert not commercial.decision.allowed
    assert list(commercial.decision.characters[0].reasons) == [decision_pb2.DENY_REASON_COMMERCIAL_USE_NOT_PERMITTED]


def test_the_demo_rights_holder_sees_the_reported_first_use_in_this_months_statement(
    server_factory: Any, tmp_path: Path
) -> None:
    server = server_factory(database_url=f"sqlite:///{tmp_path / 'demo.db'}")
    data = demo.seed(server.services)
    request = us.GetStatementRequest(rights_holder_id=data.rights_holder_id, period=f"{datetime.now(UTC):%Y-%m}")

    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        response = us_grpc.UsageServiceStub(channel).GetStatement(
            request, metadata=bearer(data.secrets[Role.RIGHTS_HOLDER]), timeout=10
        )

    assert [(line.character_id, line.licensee_id, line.uses) for line in response.statement.lines] == [
        (data.character_id, data.licensee_id, 1)
    ]
