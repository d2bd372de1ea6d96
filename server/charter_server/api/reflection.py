"""gRPC server reflection, in both versions tools speak: ``grpc.reflection.v1`` and
``grpc.reflection.v1alpha``.

The two versions are the same messages under two package names, so one servicer (grpcio's
asyncio reflection servicer) answers both; the v1 service description is made from the v1alpha
one by renaming its package. Reflection reads a descriptor pool of its own, holding the served
files and their dependencies, so nothing is added to the process-wide pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from grpc_reflection.v1alpha import reflection, reflection_pb2

V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"
V1 = "grpc.reflection.v1.ServerReflection"
METHODS = (f"/{V1ALPHA}/ServerReflectionInfo", f"/{V1}/ServerReflectionInfo")
_V1_FILE = "grpc/reflection/v1/reflection.proto"


def _with_dependencies(files: Iterable[FileDescriptor]) -> list[FileDescriptor]:
    """``files`` and everything they import, dependencies first."""
    ordered: list[FileDescriptor] = []
    seen: set[str] = set()

    def visit(file: FileDescriptor) -> None:
        if file.name in seen:
            return
        seen.add(file.name)
        for dependency in file.dependencies:
            visit(dependency)
        ordered.append(file)

    for file in files:
        visit(file)
    return ordered


def _v1_file() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    proto.name = _V1_FILE
    proto.package = "grpc.reflection.v1"
    for message in proto.message_type:
        for field in message.field:
            if field.type_name.startswith(".grpc.reflection.v1alpha."):
                field.type_name = field.type_name.replace(".v1alpha.", ".v1.", 1)
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(".v1alpha.", ".v1.", 1)
            method.output_type = method.output_type.replace(".v1alpha.", ".v1.", 1)
    proto.options.Clear()
    return proto


def servicer(service_files: Iterable[FileDescriptor], service_names: Iterable[str]) -> Any:
    """The reflection servicer over a pool of ``service_files`` (and their dependencies), listing
    ``service_names`` and both reflection services."""
    pool = descriptor_pool.DescriptorPool()
    for file in _with_dependencies((*service_files, reflection_pb2.DESCRIPTOR)):
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        pool.AddSerializedFile(proto.SerializeToString())
    pool.AddSerializedFile(_v1_file().SerializeToString())
    return reflection.aio.ReflectionServicer((*service_names, V1ALPHA, V1), pool=pool)


def handler(servicer_: Any) -> Any:
    """The servicer's bidirectional method, as the dispatcher's stream handler expects it."""

    async def info(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        async for reply in servicer_.ServerReflectionInfo(requests, context):
            yield reply

    return info


def parse(raw: bytes) -> reflection_pb2.ServerReflectionRequest:
    """A reflection request of either version (the same bytes)."""
    return reflection_pb2.ServerReflectionRequest.FromString(raw)
