"""Idempotent creates: a retried ``request_id`` returns the first outcome, never a second resource."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from typing import Any, TypeVar

from charter_server.domain.clock import Clock
from charter_server.domain.errors import AlreadyExists
from charter_server.domain.models import Principal
from charter_server.storage.database import Database
from charter_server.storage.uow import UnitOfWork

T = TypeVar("T")


def fingerprint(value: Any) -> str:
    """A stable digest of a create request's content (a dataclass)."""
    data = dataclasses.asdict(value) if dataclasses.is_dataclass(value) and not isinstance(value, type) else value
    text = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def request_id_reused(request_id: str) -> AlreadyExists:
    """The error for a ``request_id`` already used for a different request by the same caller."""
    return AlreadyExists(
        "this request_id was already used for a different request",
        reason="REQUEST_ID_REUSED",
        metadata={"request_id_reused": request_id},
    )


class _Raced(Exception):
    """A concurrent call with the same request id committed first."""


def create_once(
    db: Database,
    clock: Clock,
    principal: Principal,
    method: str,
    request_id: str,
    content: Any,
    create: Callable[[UnitOfWork], str],
    load: Callable[[UnitOfWork, str], T],
) -> tuple[T, bool]:
    """Run ``create`` at most once per (caller, method, request id).

    Returns the loaded resource and whether this call created it. The same request id
    with different content raises ``AlreadyExists`` with reason ``REQUEST_ID_REUSED``.
    """
    digest = fingerprint(content)

    def replay(uow: UnitOfWork) -> tuple[T, bool] | None:
        if not request_id:
            return None
        recorded = uow.request_records.get(principal.key_id, method, request_id)
        if recorded is None:
            return None
        if recorded[0] != digest:
            raise request_id_reused(request_id)
        return load(uow, recorded[1]), False

    try:
        with db.uow(write=True) as uow:
            earlier = replay(uow)
            if earlier is not None:
                return earlier
            resource_id = create(uow)
            if request_id and not uow.request_records.add(
                principal.key_id, method, request_id, digest, resource_id, clock.now()
            ):
                raise _Raced
            result = load(uow, resource_id)
            uow.commit()
            return result, True
    except _Raced:
        with db.uow() as uow:
            earlier = replay(uow)
        if earlier is None:  # pragma: no cover - the racing row was committed before we saw it
            raise
        return earlier
