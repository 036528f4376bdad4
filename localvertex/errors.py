"""Vertex AI's errors: a google.rpc code, its HTTP status, and the JSON body the SDK maps to exceptions."""

from __future__ import annotations

import grpc
from google.api_core import exceptions


class VertexError(Exception):
    """Raised by the emulator; answered as `{"error": {"code", "message", "status"}}` or as a failed operation."""

    def __init__(self, status: str, message: str) -> None:
        self.status, self.message = status, message
        super().__init__(f"{status}: {message}")

    @property
    def grpc_code(self) -> int:
        return grpc.StatusCode[self.status].value[0]

    @property
    def http_status(self) -> int:
        return exceptions.exception_class_for_grpc_status(grpc.StatusCode[self.status]).code

    def body(self) -> dict:
        return {"error": {"code": self.http_status, "message": self.message, "status": self.status}}


def not_found(kind: str, name: str) -> VertexError:
    return VertexError("NOT_FOUND", f"{kind} {name} not found")
