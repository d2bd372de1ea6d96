"""Helpers of the serving tests: a licensed party made through the SDK, open streams read by
background threads, and a raw call's failure."""

from __future__ import annotations

import datetime as dt
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import charter
import grpc
from charter.v1 import api_key_pb2, decision_pb2, envelope_pb2, terms_pb2
from charter.v1 import authorization_service_pb2 as az
from charter.v1 import authorization_service_pb2_grpc as az_grpc

TERMS = terms_pb2.Terms(
    permitted_use_types=[terms_pb2.USE_TYPE_IMAGE_GENERATION], max_content_rating=terms_pb2.CONTENT_RATING_TEEN
)
CONTEXT = decision_pb2.UseContext(
    use_type=terms_pb2.USE_TYPE_IMAGE_GENERATION, content_rating=terms_pb2.CONTENT_RATING_TEEN
)


@dataclass(frozen=True)
class Party:
    """A rights holder with one opted-in character granted to a licensee, and their keys."""

    rights_holder_id: str
    rights_holder: str
    licensee_id: str
    generator: str
    character_id: str
    grant_id: str
    envelope: envelope_pb2.Envelope


def new_party(target: str, admin: str, *, max_uses: int | None = None, terms: terms_pb2.Terms = TERMS) -> Party:
    """A fresh party on the server at ``target``, made as staff through the SDK."""
    marker = uuid.uuid4().hex[:12]
    with charter.Client(target, api_key=admin) as client:
        holder = client.create_rights_holder(display_name=f"Studio {marker}", contact_email="rights@studio.example")
        licensee = client.create_licensee(display_name=f"App {marker}", contact_email="ops@app.example", platform="app")
        generator = client.create_api_key(
            display_name=f"generator {marker}", role=api_key_pb2.ROLE_GENERATOR, licensee_id=licensee.id
        )
        owner = client.create_api_key(
            display_name=f"owner {marker}", role=api_key_pb2.ROLE_RIGHTS_HOLDER, rights_holder_id=holder.id
        )
        character = client.create_character(rights_holder_id=holder.id, canonical_name=f"Chara {marker}")
        client.opt_in(character.id, terms)
        grant = client.issue_grant(
            character_id=character.id,
            licensee_id=licensee.id,
            expire_time=dt.datetime.now(dt.UTC) + dt.timedelta(days=30),
            max_uses=max_uses,
        )
    return Party(holder.id, owner.secret, licensee.id, generator.secret, character.id, grant.id, grant.envelope)


def bearer(secret: str) -> tuple[tuple[str, str], ...]:
    """Call metadata that authenticates with ``secret``."""
    return (("authorization", f"Bearer {secret}"),)


def authorize_request(party: Party, **fields: Any) -> az.AuthorizeRequest:
    """An Authorize request for the party's character in `CONTEXT`."""
    return az.AuthorizeRequest(character_ids=[party.character_id], context=CONTEXT, **fields)


class Stream:
    """A server stream read by a background thread into a queue, so a test can wait with a timeout."""

    END = object()

    def __init__(self, call: Any) -> None:
        self.call = call
        self.error: grpc.RpcError | None = None
        self.items: queue.Queue[Any] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for item in self.call:
                self.items.put(item)
        except grpc.RpcError as error:
            self.error = error
        self.items.put(self.END)

    def next(self, timeout: float = 5) -> Any:
        """The next message (``Stream.END`` once the stream ended)."""
        return self.items.get(timeout=timeout)

    def ended(self, timeout: float = 5) -> grpc.RpcError | None:
        """Wait for the end of the stream; its error (None when it ended OK)."""
        self._reader.join(timeout)
        assert not self._reader.is_alive(), f"the stream did not end within {timeout} s"
        return self.error

    def close(self) -> None:
        self.call.cancel()
        self._reader.join(5)


def watch(channel: grpc.Channel, secret: str, since: int = 0, timeout: float = 60) -> Stream:
    """An open WatchRevocations stream."""
    request = az.WatchRevocationsRequest(since_sequence=since)
    return Stream(
        az_grpc.AuthorizationServiceStub(channel).WatchRevocations(request, metadata=bearer(secret), timeout=timeout)
    )


def wait_until(condition: Any, timeout: float = 5) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes; whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())
