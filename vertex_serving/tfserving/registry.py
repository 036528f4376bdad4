"""The model versions a server holds, their states, and the lookup of a request's ModelSpec, as TF Serving does it.

Mirrors ServerCore and ServableStateMonitor: a request names a model and, optionally, a version or a version label;
no version means the latest available one. Errors carry TF Serving's codes and wording (server_core.cc,
basic_manager.cc, get_model_status_impl.cc).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Generic, TypeVar

from vertex_serving.tfserving.errors import ServingError

T = TypeVar("T")
STATES = ("START", "LOADING", "AVAILABLE", "UNLOADING", "END")


@dataclass
class VersionState(Generic[T]):
    state: str = "START"
    error: ServingError | None = None
    servable: T | None = None


class ModelRegistry(Generic[T]):
    """Per model: versions with their states and loaded servables, and the version labels of its config."""

    def __init__(self, labels: dict[str, dict[str, int]] | None = None) -> None:
        self._models: dict[str, dict[int, VersionState[T]]] = {}
        self._labels = {name: dict(by_label) for name, by_label in (labels or {}).items()}
        self._lock = threading.Lock()
        self._available: dict[str, tuple[int, ...]] = {}  # newest first; kept on each change, read on each request

    def set_state(self, name: str, version: int, state: str, servable: T | None = None, error=None) -> None:
        with self._lock:
            versions = self._models.setdefault(name, {})
            versions[version] = VersionState(state, error, servable)
            self._available[name] = tuple(
                sorted((v for v, s in versions.items() if s.state == "AVAILABLE"), reverse=True)
            )

    def servables(self) -> list[T]:
        with self._lock:
            return [v.servable for versions in self._models.values() for v in versions.values() if v.servable]

    def lookup(self, name: str, version: int | None = None, label: str | None = None) -> tuple[int, T]:
        """The (version, servable) a request asks for: ServerCore::GetServableHandle."""
        if not name:
            raise ServingError("INVALID_ARGUMENT", "ModelSpec has no name specified.")
        if label is not None:
            version = self._labels.get(name, {}).get(label)
            if version is None:
                raise ServingError("INVALID_ARGUMENT", f"Unrecognized servable version label: {label}")
        available = self._available.get(name, ())  # replaced whole under the lock: a consistent snapshot
        versions = self._models.get(name, {})
        if version is None:
            if not available:
                raise ServingError("NOT_FOUND", f"Servable not found for request: Latest({name})")
            version = available[0]
        elif version not in available:
            raise ServingError("NOT_FOUND", f"Servable not found for request: Specific({name}, {version})")
        return version, versions[version].servable

    def lookup_spec(self, spec) -> tuple[int, T]:
        """`lookup` for a `tensorflow.serving.ModelSpec`, whose version and version_label are a oneof."""
        choice = spec.WhichOneof("version_choice")
        if choice == "version":
            return self.lookup(spec.name, version=spec.version.value)
        if choice == "version_label":
            return self.lookup(spec.name, label=spec.version_label)
        return self.lookup(spec.name)

    def status(self, name: str, version: int | None = None):
        """A `GetModelStatusResponse`: every version of the model (newest first), or the one asked for."""
        from tensorflow_serving.apis import get_model_status_pb2

        with self._lock:
            versions = dict(self._models.get(name, {}))
        if version is not None:
            if version not in versions:
                raise ServingError("NOT_FOUND", f"Could not find version {version} of model {name}")
            versions = {version: versions[version]}
        elif not versions:
            raise ServingError("NOT_FOUND", f"Could not find any versions of model {name}")
        response = get_model_status_pb2.GetModelStatusResponse()
        for number in sorted(versions, reverse=True):
            entry = versions[number]
            status = response.model_version_status.add(version=number)
            status.state = get_model_status_pb2.ModelVersionStatus.State.Value(entry.state)
            status.status.SetInParent()  # TF Serving always writes the status, OK included
            if entry.error:
                codes = status.status.DESCRIPTOR.fields_by_name["error_code"].enum_type.values_by_name
                status.status.error_code = codes.get(entry.error.code, codes["UNKNOWN"]).number
                status.status.error_message = entry.error.message
        return response

    def spec_status(self, request):
        """GetModelStatus for a `GetModelStatusRequest`: a version label is not a version, so it lists them all."""
        if not request.HasField("model_spec"):
            raise ServingError("INVALID_ARGUMENT", "Missing ModelSpec")
        spec = request.model_spec
        return self.status(spec.name, spec.version.value if spec.HasField("version") else None)
