"""Helpers of the server tests: raw generated stubs, bearer metadata, status details, free ports."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import structlog
from charter.v1 import access_service_pb2_grpc, catalog_service_pb2_grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from typer.testing import CliRunner, Result

REQUEST_ID_KEY = "x-request-id"


def bearer(secret: str) -> tuple[tuple[str, str], ...]:
    """Call metadata that authenticates with ``secret``."""
    return (("authorization", f"Bearer {secret}"),)


@contextmanager
def open_channel(
    target: str, credentials: grpc.ChannelCredentials | None = None, options: list[tuple[str, object]] | None = None
) -> Iterator[grpc.Channel]:
    """An insecure (or, given credentials, secure) channel, closed afterwards."""
    if credentials is None:
        channel = grpc.insecure_channel(target, options=options)
    else:
        channel = grpc.secure_channel(target, credentials, options=options)
    try:
        yield channel
    finally:
        channel.close()


def catalog_stub(channel: grpc.Channel) -> catalog_service_pb2_grpc.CatalogServiceStub:
    """The raw generated CatalogService stub."""
    return catalog_service_pb2_grpc.CatalogServiceStub(channel)


def access_stub(channel: grpc.Channel) -> access_service_pb2_grpc.AccessServiceStub:
    """The raw generated AccessService stub."""
    return access_service_pb2_grpc.AccessServiceStub(channel)


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    """The ``google.rpc.ErrorInfo`` detail of a failed call, if it has one."""
    status = rpc_status.from_call(error)
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None


def reason(error: grpc.RpcError) -> str | None:
    """The machine reason of a failed call."""
    info = error_info(error)
    return None if info is None else info.reason


def trailing(call: grpc.Call | grpc.RpcError, key: str) -> str | None:
    """One trailing metadata value of a finished call (or of the error it raised)."""
    for item in call.trailing_metadata() or ():
        if item.key == key:
            value = item.value
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_cli(args: list[str], env: dict[str, str] | None = None) -> Result:
    """Invoke ``charter-server`` in process.

    The command configures structlog and the root logger onto the runner's captured stderr,
    which is closed afterwards; the previous setup is put back so later log lines have
    somewhere to go.
    """
    from charter_server.cli import app

    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        return CliRunner(env=env).invoke(app, args)
    finally:
        structlog.configure(**config)
        root.handlers[:] = handlers
        root.setLevel(level)
