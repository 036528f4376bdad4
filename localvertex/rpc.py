"""One implementation behind two transports: a Vertex AI method is one async handler that takes the request message
and gives back the response message (or a google.longrunning Operation), and REST and gRPC both call it.

A handler is marked with `@rpc("ModelService")`; its name gives the method (`upload_model` -> `UploadModel`) and its
annotations the request and response types, which are the SDK's own generated ones.
"""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import proto
from google.longrunning import operations_pb2
from google.protobuf import json_format
from google.protobuf.message import Message as PbMessage

from localvertex.errors import VertexError

AIPLATFORM = "google.cloud.aiplatform.v1"
OPERATIONS = "google.longrunning.Operations"
V1_TYPE = f"type.googleapis.com/{AIPLATFORM}."


def rpc(service: str) -> Callable:
    """Marks a handler as a method of `service` (`ModelService`, ..., or `Operations`)."""

    def mark(handler: Callable) -> Callable:
        handler.rpc_service = service
        return handler

    return mark


@dataclass
class Call:
    """What a handler may know of the transport: REST's own request bytes (a prediction is forwarded as sent), whether
    the call came through a dedicated endpoint's DNS, and headers to answer with (REST headers, gRPC metadata)."""

    transport: str
    raw: bytes = b""
    dedicated: bool = False
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Method:
    service: str  # `ModelService`, or `Operations` for google.longrunning
    name: str  # `UploadModel`
    request: type
    response: type
    handler: Callable[[typing.Any, Call], Awaitable]

    @property
    def full_service(self) -> str:
        return OPERATIONS if self.service == "Operations" else f"{AIPLATFORM}.{self.service}"


def methods(*implementations) -> list[Method]:
    """Every marked handler of the given objects, with its request and response types."""
    found = []
    for implementation in implementations:
        for attribute in dir(type(implementation)):
            handler = getattr(type(implementation), attribute)
            service = getattr(handler, "rpc_service", None)
            if service is None:
                continue
            hints = typing.get_type_hints(handler)
            name = "".join(part.title() for part in attribute.split("_"))
            found.append(Method(service, name, hints["request"], hints["return"], getattr(implementation, attribute)))
    return found


def mask_paths(mask, allowed, note: str = "") -> list[str]:
    """The fields an `updateMask` names, all of them ones the method may change (`allowed`)."""
    paths = list(mask.paths)
    if not paths:
        raise VertexError("INVALID_ARGUMENT", "updateMask is required: name the fields to update")
    if unknown := sorted(set(paths) - set(allowed)):
        raise VertexError(
            "INVALID_ARGUMENT",
            f"updateMask names fields that cannot be updated: {unknown}; use {sorted(allowed)} {note}".rstrip(),
        )
    return paths


async def invoke(method: Method, request, call: Call):
    """Runs a handler; strict parsing and conversion errors are the caller's (INVALID_ARGUMENT), as on Vertex AI."""
    try:
        return await method.handler(request, call)
    except VertexError:
        raise
    except (json_format.ParseError, ValueError, TypeError) as e:
        raise VertexError("INVALID_ARGUMENT", f"Invalid request: {e}") from None


# Messages: proto-plus types (google.cloud.aiplatform_v1.types) and plain protobuf ones (operations, HttpBody).


def pb(message) -> PbMessage:
    return type(message).pb(message) if isinstance(message, proto.Message) else message


def descriptor(kind: type):
    return kind.pb().DESCRIPTOR if issubclass(kind, proto.Message) else kind.DESCRIPTOR


def from_dict(kind: type, data: dict):
    """A message from its JSON form, strictly: an unknown field is an error, as on Vertex AI."""
    if issubclass(kind, proto.Message):
        return kind.wrap(json_format.ParseDict(data, kind.pb()()))
    return json_format.ParseDict(data, kind())


def to_dict(message, enum_ints: bool = True) -> dict:
    return json_format.MessageToDict(pb(message), use_integers_for_enums=enum_ints)


def decode(kind: type, data: bytes):
    return kind.deserialize(data) if issubclass(kind, proto.Message) else kind.FromString(data)


def encode(message) -> bytes:
    return pb(message).SerializeToString()


# Long-running operations, stored as their JSON form (what REST answers and the SDK polls on /ui/).


def operation(name: str, response=None, metadata=None, error: VertexError | None = None, done: bool = True):
    """An Operation; `response` None with `done` means google.protobuf.Empty, as deletes answer."""
    op = operations_pb2.Operation(name=name, done=done)
    if metadata is not None:
        op.metadata.Pack(pb(metadata))
    if error is not None:
        op.error.code, op.error.message = error.grpc_code, error.message
    elif done:
        if response is None:
            op.response.type_url = "type.googleapis.com/google.protobuf.Empty"
        else:
            op.response.Pack(pb(response))
    return op


def stored(op: operations_pb2.Operation) -> dict:
    return json.loads(json_format.MessageToJson(op))


def loaded(data: dict) -> operations_pb2.Operation:
    return json_format.ParseDict(data, operations_pb2.Operation(), ignore_unknown_fields=True)


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
