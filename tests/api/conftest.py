"""Fixtures of the gRPC API tests: one channel and the generated stubs per session server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from charter.v1 import access_service_pb2_grpc, catalog_service_pb2_grpc


@pytest.fixture(scope="session")
def channel(keys: Any) -> Iterator[grpc.Channel]:
    """An insecure channel to the session's server (one per backend)."""
    with grpc.insecure_channel(keys.target) as opened:
        grpc.channel_ready_future(opened).result(timeout=10)
        yield opened


@pytest.fixture(scope="session")
def catalog(channel: grpc.Channel) -> catalog_service_pb2_grpc.CatalogServiceStub:
    """The generated CatalogService stub."""
    return catalog_service_pb2_grpc.CatalogServiceStub(channel)


@pytest.fixture(scope="session")
def access(channel: grpc.Channel) -> access_service_pb2_grpc.AccessServiceStub:
    """The generated AccessService stub."""
    return access_service_pb2_grpc.AccessServiceStub(channel)
