"""An in-process stand-in for the Charter server, for testing the SDK's transport layer.

It implements the generated servicer base classes over a small in-memory store,
answers errors the way the real server does (a `google.rpc.Status` with
`ErrorInfo` and, for validation, `BadRequest` in `grpc-status-details-bin`, plus
the request id), records every call's request and metadata, and can be told to
fail or stall the next calls of a method. It is a test double for the
transport only; end-to-end behaviour is tested against the real server.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any, NamedTuple

import grpc
from charter.v1 import (
    access_service_pb2,
    access_service_pb2_grpc,
    api_key_pb2,
    catalog_service_pb2,
    catalog_service_pb2_grpc,
    licensee_pb2,
    rights_holder_pb2,
)
from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

API_KEY = "key_0123456789abcdef0123456789abcdef.s3cret"
CALLER_ID = "key_0123456789abcdef0123456789abcdef"


class _Status(NamedTuple):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


class Abort(Exception):
    """Raised inside a handler to answer with a Charter error status."""

    def __init__(
        self,
        code: grpc.StatusCode,
        reason: str,
        message: str,
        violations: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.violations = code, reason, message, violations


def rich_status(
    code: grpc.StatusCode,
    reason: str,
    message: str,
    *,
    request_id: str,
    violations: tuple[tuple[str, str], ...] = (),
) -> status_pb2.Status:
    """Builds the google.rpc.Status the Charter server attaches to an error."""
    info = error_details_pb2.ErrorInfo(reason=reason, domain="charter.v1", metadata={"request_id": request_id})
    details = [_pack(info)]
    if violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in violations
            ]
        )
        details.append(_pack(bad))
    return status_pb2.Status(code=code.value[0], message=message, details=details)


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


@dataclasses.dataclass
class Call:
    """One call the fake received."""

    method: str
    request: Any
    metadata: dict[str, str]


@dataclasses.dataclass
class _Failure:
    code: grpc.StatusCode
    reason: str
    remaining: int


class FakeCharter:
    """State and behaviour shared by the fake servicers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[Call] = []
        self.failures: dict[str, _Failure] = {}
        self.delays: dict[str, float] = {}
        self.rights_holders: dict[str, rights_holder_pb2.RightsHolder] = {}
        self.licensees: dict[str, licensee_pb2.Licensee] = {}
        self.api_keys: dict[str, api_key_pb2.ApiKey] = {
            CALLER_ID: api_key_pb2.ApiKey(
                id=CALLER_ID,
                display_name="test admin",
                role=api_key_pb2.ROLE_ADMIN,
                state=api_key_pb2.ApiKey.STATE_ACTIVE,
                creator_key_id="bootstrap",
            )
        }
        self.created_by_request_id: dict[str, Message] = {}

    # -- test controls ------------------------------------------------------------------

    def fail(self, method: str, code: grpc.StatusCode, reason: str, *, times: int = 1) -> None:
        """Makes the next `times` calls of a method fail with the code and reason."""
        self.failures[method] = _Failure(code, reason, times)

    def calls_of(self, method: str) -> list[Call]:
        """Returns the recorded calls of one method, oldest first."""
        return [call for call in self.calls if call.method == method]

    # -- dispatch -----------------------------------------------------------------------

    def handle(
        self, method: str, request: Any, context: grpc.ServicerContext, handler: Callable[[Any], Message]
    ) -> Message:
        metadata = {key: value for key, value in context.invocation_metadata() if isinstance(value, str)}
        request_id = metadata.get("x-request-id") or uuid.uuid4().hex
        copy = type(request)()
        copy.CopyFrom(request)
        with self.lock:
            self.calls.append(Call(method, copy, metadata))
        delay = self.delays.get(method)
        if delay:
            time.sleep(delay)
        try:
            with self.lock:
                failure = self.failures.get(method)
                if failure is not None and failure.remaining > 0:
                    failure.remaining -= 1
                    raise Abort(failure.code, failure.reason, f"injected {failure.reason}")
                if metadata.get("authorization") != f"Bearer {API_KEY}":
                    raise Abort(
                        grpc.StatusCode.UNAUTHENTICATED,
                        "CREDENTIALS_MISSING" if "authorization" not in metadata else "CREDENTIALS_INVALID",
                        "no valid API key",
                    )
                response = handler(request)
            # Echo the id in the headers only on success: headers sent before an error
            # "commit" the call, and gRPC then never retries it (gRFC A6), so the real
            # server must answer errors trailers-only as well.
            context.send_initial_metadata((("x-request-id", request_id),))
            return response
        except Abort as exc:
            status = rich_status(exc.code, exc.reason, exc.message, request_id=request_id, violations=exc.violations)
            context.abort_with_status(
                _Status(
                    code=exc.code,
                    details=exc.message,
                    trailing_metadata=(
                        ("grpc-status-details-bin", status.SerializeToString()),
                        ("x-request-id", request_id),
                    ),
                )
            )
            raise AssertionError("abort_with_status returned") from None


def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


def _page(items: list[Any], page_size: int, token: str) -> tuple[list[Any], str]:
    if page_size < 0:
        raise Abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_FIELD",
            "bad page size",
            (("page_size", "must not be negative"),),
        )
    try:
        start = int(token) if token else 0
    except ValueError:
        raise Abort(
            grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "bad token", (("page_token", "malformed"),)
        ) from None
    size = page_size or 50
    end = start + size
    return items[start:end], (str(end) if end < len(items) else "")


def _require(fields: dict[str, str]) -> None:
    missing = tuple((name, "is required") for name, value in fields.items() if not value)
    if missing:
        raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "invalid request", missing)


def _apply_mask(target: Message, source: Message, paths: list[str], allowed: tuple[str, ...]) -> None:
    for path in paths:
        if path not in allowed:
            raise Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "INVALID_FIELD",
                "bad mask",
                (("update_mask", f"unknown field {path}"),),
            )
        setattr(target, path, getattr(source, path))
    target.update_time.CopyFrom(_now())


class FakeCatalog(catalog_service_pb2_grpc.CatalogServiceServicer):
    """CatalogService over the fake's in-memory store."""

    def __init__(self, fake: FakeCharter) -> None:
        self.fake = fake

    def _create(self, kind: str, store: dict[str, Any], resource: Any, request_id: str, prefix: str) -> Any:
        key = f"{kind}:{request_id}"
        if request_id and key in self.fake.created_by_request_id:
            return self.fake.created_by_request_id[key]
        resource.id = f"{prefix}{uuid.uuid4().hex}"
        resource.state = 1  # STATE_ACTIVE in both resource enums.
        resource.create_time.CopyFrom(_now())
        resource.update_time.CopyFrom(_now())
        store[resource.id] = resource
        if request_id:
            self.fake.created_by_request_id[key] = resource
        return resource

    def _get(self, store: dict[str, Any], id: str, reason: str) -> Any:
        if id not in store:
            raise Abort(grpc.StatusCode.NOT_FOUND, reason, f"{id} not found")
        return store[id]

    def CreateRightsHolder(self, request: Any, context: grpc.ServicerContext) -> Message:
        def handler(req: catalog_service_pb2.CreateRightsHolderRequest) -> Message:
            resource = rights_holder_pb2.RightsHolder()
            resource.CopyFrom(req.rights_holder)
            _require(
                {
                    "rights_holder.display_name": resource.display_name,
                    "rights_holder.contact_email": resource.contact_email,
                }
            )
            created = self._create("rh", self.fake.rights_holders, resource, req.request_id, "rh_")
            return catalog_service_pb2.CreateRightsHolderResponse(rights_holder=created)

        return self.fake.handle("CreateRightsHolder", request, context, handler)

    def GetRightsHolder(self, request: Any, context: grpc.ServicerContext) -> Message:
        def handler(req: catalog_service_pb2.GetRightsHolderRequest) -> Message:
            found = self._get(self.fake.rights_holders, req.id, "RIGHTS_HOLDER_NOT_FOUND")
            return catalog_service_pb2.GetRightsHolderResponse(rights_holder=found)

        return self.fake.handle("GetRightsHolder", request, context, handler)

    def ListRightsHolders(self, request: Any, context: grpc.ServicerContext) -> Message:
        def handler(req: catalog_service_pb2.ListRightsHoldersRequest) -> Message:
            state = req.state or rights_holder_pb2.RightsHolder.STATE_ACTIVE
            matching = [
                r
                for r in self.fake.rights_holders.values()
                if r.state == state and req.query.lower() in r.display_name.lower()
            ]
            page, token = _page(matching, req.page_size, req.page_token)
            return catalog_service_pb2.ListRightsHoldersResponse(rights_holders=page, next_page_token=token)

        return self.fake.handle("ListRightsHolders", request, context, handler)

    def UpdateRightsHolder(self, request: Any, context: grpc.ServicerContext) -> Message:
        def handler(req: catalog_service_pb2.UpdateRightsHolderRequest) -> Message:
            found = self._get(self.fake.rights_holders, req.rights_holder.id, "RIGHTS_HOLDER_NOT_FOUND")
            if found.state == rights_holder_pb2.RightsHolder.STATE_ARCHIVED:
                raise Abort(grpc.StatusCode.FAILED_PRECONDITION, "RIGHTS_HOLDER_ARCHIVED", "archived")
            _apply_mask(
                found,
                req.rights_holder,
                list(req.update_mask.paths),
                ("display_name", "legal_name", "contact_email", "revenue_share_account"),
            )
            return catalog_service_pb2.UpdateRightsHolderResponse(rights_holder=found)

        return self.fake.handle("UpdateRightsHolder", request, context, handler)

    def ArchiveRightsHolder(self, request: Any, context: grpc.ServicerContext) -> Message:
        def handler(req: catalog_service_pb2.ArchiveRightsHolderRequest) -> Message:
            found = self._get(self.fake.rights_holders, req.id, "RIGHTS_HOLDER_NOT_FOUND")
            if found.state != rights_holder_pb2.RightsHolder.STATE_ARCHIVED:
                found.state = rights_holder_pb2.RightsHolder.STATE_ARCHIVED
                found.archive_time.CopyFrom(_now())
            return catalog_service_pb2.ArchiveRightsHolderResponse(rights_holder=found)

        return self.fake.handle("ArchiveRightsHolder", request, context, handler)

    def CreateLicensee(self, request: Any, context: grpc.ServicerContext) -> Message:
        def handler(req: catalog_service_pb2.CreateLicenseeRequest) -> Message:
            resource = licensee_pb2.Licensee()
            resource.CopyFrom(req.licensee)
            _require(
                {
                    "licensee.display_name": resource.display_name,
                    "licensee.contact_email": resource.contact_email,
                    "licensee.platform": resource.platform,
                }
            )
            created = self._create("lic", self.fake.licensees, resource, req.request_id, "lic_")
            return catalog_service_pb2.CreateLicenseeResponse(licensee=created)

        return self.fake.handle("CreateLicensee", request, context, handler)

    def GetLicensee(self, request: Any, context: grpc.ServicerContext) -> Message:
        def handler(req: catalog_service_pb2.GetLicenseeRequest) -> Message:
            found = self._get(self.fake.licensees, req.id, "LICENSEE_NOT_FOUND")
            return catalog_service_pb2.GetLicenseeResponse(licensee=found)

        return self.fake.handle("GetLicensee", request, context, handler)

    def ListLicensees(self, request: Any, context: grpc.ServicerContext) -> Message:
        def handler(req: catalog_service_pb2.ListLicenseesRequest) -> Message:
            state = req.state or licensee_pb2.Licensee.STATE_ACTIVE
            matching = [
                r
                for r in self.fake.licensees.values()
                if r.state == state
                and req.query.lower() in r.display_name.lower()
                and (not req.platform or r.platform == req.platform)
            ]
            page, token = _page(matching, req.page_size, req.page_token)
            return catalog_service_pb2.ListLicenseesResponse(licensees=page, next_page_token=token)

        return self.fake.handle("ListLicensees", request, context, handler)

    def UpdateLicensee(self, request: Any, context: grpc.ServicerContext) -> Message:
        def handler(req: catalog_service_pb2.UpdateLicenseeRequest) -> Message:
            found = self._get(self.fake.licensees, req.licensee.id, "LICENSEE_NOT_FOUND")
            _apply_mask(
                found,
                req.licensee,
                list(req.update_mask.paths),
                ("display_name", "legal_name", "contact_email", "platform"),
            )
            return catalog_service_pb2.UpdateLicenseeResponse(licensee=found)

        return self.fake.handle("UpdateLicensee", request, context, handler)

    def ArchiveLicensee(self, request: Any, context: grpc.ServicerContext) -> Message:
        def handler(req: catalog_service_pb2.ArchiveLicenseeRequest) -> Message:
            found = self._get(self.fake.licensees, req.id, "LICENSEE_NOT_FOUND")
            found.state = licensee_pb2.Licensee.STATE_ARCHIVED
            return catalog_service_pb2.ArchiveLicenseeResponse(licensee=found)

        return self.fake.handle("ArchiveLicensee", request, context, handler)


class FakeAccess(access_service_pb2_grpc.AccessServiceServicer):
    """AccessService over the fake's in-memory store."""

    def __init__(self, fake: FakeCharter) -> None:
        self.fake = fake

    def _get(self, id: str) -> api_key_pb2.ApiKey:
        if id not in self.fake.api_keys:
            raise Abort(grpc.StatusCode.NOT_FOUND, "API_KEY_NOT_FOUND", f"{id} not found")
        return self.fake.api_keys[id]

    def CreateApiKey(self, request: Any, context: grpc.ServicerContext) -> Message:
        def handler(req: access_service_pb2.CreateApiKeyRequest) -> Message:
            _require({"display_name": req.display_name})
            if req.role == api_key_pb2.ROLE_UNSPECIFIED:
                raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "bad role", (("role", "is required"),))
            key = f"key:{req.request_id}"
            if req.request_id and key in self.fake.created_by_request_id:
                previous = self.fake.created_by_request_id[key]
                return access_service_pb2.CreateApiKeyResponse(api_key=previous, secret="")
            id = f"key_{uuid.uuid4().hex}"
            created = api_key_pb2.ApiKey(
                id=id,
                display_name=req.display_name,
                role=req.role,
                rights_holder_id=req.rights_holder_id,
                licensee_id=req.licensee_id,
                state=api_key_pb2.ApiKey.STATE_ACTIVE,
                creator_key_id=CALLER_ID,
                create_time=_now(),
            )
            if req.HasField("expire_time"):
                created.expire_time.CopyFrom(req.expire_time)
            self.fake.api_keys[id] = created
            if req.request_id:
                self.fake.created_by_request_id[key] = created
            return access_service_pb2.CreateApiKeyResponse(api_key=created, secret=f"{id}.{uuid.uuid4().hex}")

        return self.fake.handle("CreateApiKey", request, context, handler)

    def GetApiKey(self, request: Any, context: grpc.ServicerContext) -> Message:
        def handler(req: access_service_pb2.GetApiKeyRequest) -> Message:
            return access_service_pb2.GetApiKeyResponse(api_key=self._get(req.id))

        return self.fake.handle("GetApiKey", request, context, handler)

    def ListApiKeys(self, request: Any, context: grpc.ServicerContext) -> Message:
        def handler(req: access_service_pb2.ListApiKeysRequest) -> Message:
            matching = [
                k
                for k in self.fake.api_keys.values()
                if (not req.role or k.role == req.role)
                and (req.show_inactive or k.state == api_key_pb2.ApiKey.STATE_ACTIVE)
            ]
            page, token = _page(matching, req.page_size, req.page_token)
            return access_service_pb2.ListApiKeysResponse(api_keys=page, next_page_token=token)

        return self.fake.handle("ListApiKeys", request, context, handler)

    def RevokeApiKey(self, request: Any, context: grpc.ServicerContext) -> Message:
        def handler(req: access_service_pb2.RevokeApiKeyRequest) -> Message:
            found = self._get(req.id)
            if found.state == api_key_pb2.ApiKey.STATE_REVOKED:
                raise Abort(grpc.StatusCode.FAILED_PRECONDITION, "API_KEY_ALREADY_REVOKED", "already revoked")
            found.state = api_key_pb2.ApiKey.STATE_REVOKED
            found.revoke_time.CopyFrom(_now())
            return access_service_pb2.RevokeApiKeyResponse(api_key=found)

        return self.fake.handle("RevokeApiKey", request, context, handler)

    def GetCaller(self, request: Any, context: grpc.ServicerContext) -> Message:
        def handler(req: access_service_pb2.GetCallerRequest) -> Message:
            return access_service_pb2.GetCallerResponse(api_key=self.fake.api_keys[CALLER_ID])

        return self.fake.handle("GetCaller", request, context, handler)


@dataclasses.dataclass
class RunningFake:
    """A started fake server: its address and its state."""

    target: str
    fake: FakeCharter


def serve(
    credentials: grpc.ServerCredentials | None = None,
) -> Iterator[RunningFake]:
    """Runs a fake Charter server on 127.0.0.1 with a free port for the duration of a fixture."""
    fake = FakeCharter()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    catalog_service_pb2_grpc.add_CatalogServiceServicer_to_server(FakeCatalog(fake), server)
    access_service_pb2_grpc.add_AccessServiceServicer_to_server(FakeAccess(fake), server)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield RunningFake(target=f"127.0.0.1:{port}", fake=fake)
    finally:
        server.stop(grace=None)
