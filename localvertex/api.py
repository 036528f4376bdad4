"""The Vertex AI v1 REST surface the aiplatform SDK uses: models, endpoints, deployments, predictions, operations.

Requests and resources go through the SDK's own generated types (`google.cloud.aiplatform_v1.types`), so field
names, enums and strict parsing are the SDK's. Quick calls answer with an operation that is already done; a
deploy answers at once with a pending operation that completes when the model server is healthy.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time

import aiohttp
from aiohttp import web
from google.cloud import storage
from google.cloud.aiplatform_v1 import types

from localvertex import traffic
from localvertex.deployer import Deployer, now, status_message
from localvertex.errors import VertexError, not_found
from localvertex.store import Store

log = logging.getLogger("localvertex")
_V1 = "type.googleapis.com/google.cloud.aiplatform.v1."
_PARENT = r"projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
_ROUTES = [
    ("POST", rf"{_PARENT}/endpoints", "create_endpoint"),
    ("GET", rf"{_PARENT}/endpoints", "list_endpoints"),
    ("GET", rf"{_PARENT}/endpoints/(?P<id>[^/:]+)", "get_endpoint"),
    ("DELETE", rf"{_PARENT}/endpoints/(?P<id>[^/:]+)", "delete_endpoint"),
    ("PATCH", rf"{_PARENT}/endpoints/(?P<id>[^/:]+)", "update_endpoint"),
    ("POST", rf"{_PARENT}/endpoints/(?P<id>[^/:]+):deployModel", "deploy_model"),
    ("POST", rf"{_PARENT}/endpoints/(?P<id>[^/:]+):undeployModel", "undeploy_model"),
    ("POST", rf"{_PARENT}/endpoints/(?P<id>[^/:]+):predict", "predict"),
    ("POST", rf"{_PARENT}/models:upload", "upload_model"),
    ("GET", rf"{_PARENT}/models", "list_models"),
    ("GET", rf"{_PARENT}/models/(?P<id>[^/:@]+):listVersions", "list_versions"),
    ("GET", rf"{_PARENT}/models/(?P<id>[^/:@]+)(?:@(?P<version>[^/:]+))?", "get_model"),
    ("DELETE", rf"{_PARENT}/models/(?P<id>[^/:@]+)(?:@(?P<version>[^/:]+))?", "delete_model"),
    ("GET", rf"{_PARENT}(?:/(?:endpoints|models)/[^/]+)?/operations/[^/]+", "get_operation"),
]


class Api:
    def __init__(self, store: Store, deployer: Deployer, services: tuple = ()) -> None:
        """`services` add their own `ROUTES` (method, path pattern, handler name) beside the ones here."""
        self.store, self.deployer = store, deployer
        self.session: aiohttp.ClientSession | None = None
        self.tasks: set[asyncio.Task] = set()
        self.pending_cores = 0  # TPU cores of deploys still loading
        self.routes = [(method, re.compile(pattern), getattr(self, name)) for method, pattern, name in _ROUTES]
        for service in services:
            self.routes += [(m, re.compile(pattern), getattr(service, name)) for m, pattern, name in service.ROUTES]

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_route("*", "/v1/{path:.*}", self._dispatch)
        app.router.add_route("*", "/ui/{path:.*}", self._dispatch)  # where the SDK polls operations
        app.router.add_route("POST", "/{path:v2/entries:list}", self._dispatch)  # Cloud Logging (logs.py)
        app.on_startup.append(self._open)
        app.on_cleanup.append(self._close)
        return app

    async def _open(self, app) -> None:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600))

    async def _close(self, app) -> None:
        for task in list(self.tasks):
            task.cancel()
        await self.session.close()

    async def _dispatch(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        try:
            check_local(request)
            for method, pattern, handler in self.routes:
                found = pattern.fullmatch(path)
                if found and method == request.method:
                    raw = await request.read() if request.can_read_body else b""
                    body = json.loads(raw) if raw else {}
                    # The request's own bytes too: a prediction is forwarded as sent, not re-encoded.
                    return _json(await handler(found.groupdict() | {"path": path, "raw": raw}, body, request.query))
            raise VertexError("NOT_FOUND", f"Method not found: {request.method} {request.path}")
        except web.HTTPRequestEntityTooLarge:
            message = f"Request payload size exceeds the limit: {MAX_REQUEST_BYTES} bytes"
            return _json(VertexError("INVALID_ARGUMENT", message).body(), 400)
        except RecursionError:  # JSON nested deeper than Python's parser goes: still the caller's error
            return _json(VertexError("INVALID_ARGUMENT", "Invalid JSON payload: nested too deeply").body(), 400)
        except VertexError as e:
            return _json(e.body(), e.http_status)
        except json.JSONDecodeError as e:
            return _json(VertexError("INVALID_ARGUMENT", f"Invalid JSON payload: {e}").body(), 400)
        except (ValueError, TypeError) as e:  # strict parsing by the SDK's types
            return _json(VertexError("INVALID_ARGUMENT", f"Invalid request: {e}").body(), 400)

    # Endpoints --------------------------------------------------------------------------------------------

    async def create_endpoint(self, p: dict, body: dict, query) -> dict:
        endpoint = types.Endpoint.from_json(json.dumps(body))
        endpoint_id = query.get("endpointId") or self.store.next_id("endpoint", 1000)
        name = f"{_parent(p)}/endpoints/{endpoint_id}"
        if self.store.get("endpoint", name):
            raise VertexError("ALREADY_EXISTS", f"Endpoint {name} already exists")
        endpoint.name, endpoint.create_time, endpoint.update_time, endpoint.etag = name, now(), now(), _etag()
        self.store.put("endpoint", name, endpoint)
        return self._done(f"{name}/operations/{self.store.next_id('operation')}", "Endpoint", endpoint)

    async def list_endpoints(self, p: dict, body: dict, query) -> dict:
        found = [e for e in self.store.list("endpoint", f"{_parent(p)}/endpoints/") if _matches(e, query)]
        return _page("endpoints", found, query)

    async def get_endpoint(self, p: dict, body: dict, query) -> dict:
        return _dict(self._endpoint(p))

    async def delete_endpoint(self, p: dict, body: dict, query) -> dict:
        endpoint = self._endpoint(p)
        if endpoint.deployed_models:
            ids = [d.id for d in endpoint.deployed_models]
            raise VertexError(
                "FAILED_PRECONDITION", f"Endpoint {endpoint.name} still has DeployedModels {ids}: undeploy them first"
            )
        self.store.delete(endpoint.name)
        return self._done(f"{_parent(p)}/operations/{self.store.next_id('operation')}", None, None)

    async def update_endpoint(self, p: dict, body: dict, query) -> dict:
        """`Endpoint.update`: the fields `updateMask` names; a traffic split is checked as a deploy's is."""
        changes = types.Endpoint.from_json(json.dumps(body))
        paths = [_snake(path.strip()) for path in query.get("updateMask", "").split(",") if path.strip()]
        if not paths:
            raise VertexError("INVALID_ARGUMENT", "updateMask is required: name the fields to update")
        unknown = sorted(set(paths) - _ENDPOINT_UPDATABLE)
        if unknown:
            raise VertexError(
                "INVALID_ARGUMENT",
                f"updateMask names fields that cannot be updated: {unknown}; use {sorted(_ENDPOINT_UPDATABLE)}",
            )
        with self.store.transaction():
            endpoint = self._endpoint(p)
            if "traffic_split" in paths:
                if endpoint.network:
                    raise VertexError("INVALID_ARGUMENT", "A private endpoint has no traffic split to update")
                split = dict(changes.traffic_split)
                endpoint.traffic_split = traffic.update_split(split, {d.id for d in endpoint.deployed_models})
            for path in set(paths) - {"traffic_split"}:
                setattr(endpoint, path, getattr(changes, path))
            endpoint.update_time, endpoint.etag = now(), _etag()
            self.store.put("endpoint", endpoint.name, endpoint)
        return _dict(endpoint)

    def _endpoint(self, p: dict) -> types.Endpoint:
        name = f"{_parent(p)}/endpoints/{p['id']}"
        return self.store.get("endpoint", name) or _raise(not_found("Endpoint", name))

    # Models -----------------------------------------------------------------------------------------------

    async def upload_model(self, p: dict, body: dict, query) -> dict:
        request = types.UploadModelRequest.from_json(json.dumps(body))
        model, parent = request.model, _parent(p)
        if not model.display_name:
            raise VertexError("INVALID_ARGUMENT", "model.displayName is required")
        if not model.container_spec.image_uri:
            raise VertexError("INVALID_ARGUMENT", "model.containerSpec.imageUri is required")
        if model.artifact_uri:
            await asyncio.get_running_loop().run_in_executor(None, _check_artifact, model.artifact_uri)
        with self.store.transaction():
            if request.parent_model:
                versions = self._versions(request.parent_model)
                model_id, version = (
                    request.parent_model.rsplit("/", 1)[-1],
                    str(max(int(v.version_id) for v in versions) + 1),
                )
            else:
                model_id = request.model_id or self.store.next_id("model", 1000)
                versions, version = [], "1"
                if self.store.list("model", f"{parent}/models/{model_id}@"):
                    raise VertexError("ALREADY_EXISTS", f"Model {parent}/models/{model_id} already exists")
            aliases = list(model.version_aliases)
            for old in versions:  # an alias names one version: the new one takes it
                if set(old.version_aliases) & set(aliases):
                    old.version_aliases = [a for a in old.version_aliases if a not in aliases]
                    self.store.put("model", f"{old.name}@{old.version_id}", old)
            if not versions and "default" not in aliases:
                aliases.append("default")
            name = f"{parent}/models/{model_id}"
            model.name, model.version_id, model.version_aliases = name, version, aliases
            model.create_time = versions[0].create_time if versions else now()
            model.update_time = model.version_create_time = model.version_update_time = now()
            model.supported_deployment_resources_types = [types.Model.DeploymentResourcesType.DEDICATED_RESOURCES]
            model.etag = _etag()
            self.store.put("model", f"{name}@{version}", model)
        response = types.UploadModelResponse(model=name, model_version_id=version)
        return self._done(f"{name}/operations/{self.store.next_id('operation')}", "UploadModelResponse", response)

    async def list_models(self, p: dict, body: dict, query) -> dict:
        by_id: dict[str, types.Model] = {}
        for version in self.store.list("model", f"{_parent(p)}/models/"):
            by_id.setdefault(version.name, version)
            if "default" in version.version_aliases:
                by_id[version.name] = version
        return _page("models", [m for m in by_id.values() if _matches(m, query)], query)

    async def list_versions(self, p: dict, body: dict, query) -> dict:
        return _page(
            "models", [m for m in self._versions(f"{_parent(p)}/models/{p['id']}") if _matches(m, query)], query
        )

    async def get_model(self, p: dict, body: dict, query) -> dict:
        return _dict(self._model(f"{_parent(p)}/models/{p['id']}", p.get("version")))

    async def delete_model(self, p: dict, body: dict, query) -> dict:
        name = f"{_parent(p)}/models/{p['id']}"
        targets = [self._model(name, p["version"])] if p.get("version") else self._versions(name)
        if p.get("version") and "default" in targets[0].version_aliases and len(self._versions(name)) > 1:
            raise VertexError(
                "FAILED_PRECONDITION",
                f"Version {targets[0].version_id} is the default version of {name}: make another version the default first",
            )
        deployed = [ref.endpoint for t in targets for ref in t.deployed_models]
        if deployed:
            raise VertexError(
                "FAILED_PRECONDITION", f"Model {name} is deployed to {sorted(set(deployed))}: undeploy it first"
            )
        for target in targets:
            self.store.delete(f"{target.name}@{target.version_id}")
        return self._done(f"{_parent(p)}/operations/{self.store.next_id('operation')}", None, None)

    def _versions(self, name: str) -> list[types.Model]:
        versions = self.store.list("model", f"{name}@")
        return versions or _raise(not_found("Model", name))

    def _model(self, name: str, version: str | None = None) -> types.Model:
        """A model version by id or alias; without one, the default version."""
        name, _, at = name.partition("@")
        wanted = version or at or "default"
        for model in self._versions(name):
            if model.version_id == wanted or wanted in model.version_aliases:
                return model
        raise not_found("Model", f"{name}@{wanted}")

    # Deployments ------------------------------------------------------------------------------------------

    async def deploy_model(self, p: dict, body: dict, query) -> dict:
        request = types.DeployModelRequest.from_json(json.dumps(body))
        endpoint, deployed = self._endpoint(p), request.deployed_model
        if "dedicated_resources" not in deployed:
            raise VertexError(
                "INVALID_ARGUMENT", "deployedModel.dedicatedResources is required for a custom-trained model"
            )
        model = self._model(deployed.model)
        resources = deployed.dedicated_resources
        cores = self.deployer.check(model, resources)
        deployed_id = self.store.next_id("deployed_model", 2000)
        private = bool(endpoint.network)
        existing = {d.id for d in endpoint.deployed_models}
        traffic.deploy_split(dict(endpoint.traffic_split), dict(request.traffic_split), deployed_id, existing, private)
        operation = f"{endpoint.name}/operations/{self.store.next_id('operation')}"
        self.store.put("operation", operation, {"name": operation, "done": False})
        task = asyncio.ensure_future(self._deploy(p, deployed_id, model, request, operation, cores))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return {"name": operation, "done": False}

    async def _deploy(self, p: dict, deployed_id: str, model: types.Model, request, operation: str, cores: int) -> None:
        spec = request.deployed_model.dedicated_resources.machine_spec
        try:
            self.deployer.check_quota(cores, self._tpu_cores_in_use(p) + self.pending_cores)
            self.pending_cores += cores
            try:
                server = await self.deployer.start(f"{_parent(p)}/endpoints/{p['id']}", deployed_id, model, spec)
            finally:
                self.pending_cores -= cores
            with self.store.transaction():
                endpoint = self._endpoint(p)  # read again: it may have changed while the model loaded
                existing = {d.id for d in endpoint.deployed_models}
                split = traffic.deploy_split(
                    dict(endpoint.traffic_split),
                    dict(request.traffic_split),
                    deployed_id,
                    existing,
                    bool(endpoint.network),
                )
                deployed = request.deployed_model
                deployed.id, deployed.model, deployed.model_version_id = (
                    deployed_id,
                    f"{model.name}@{model.version_id}",
                    model.version_id,
                )
                deployed.create_time = now()
                deployed.status = types.DeployedModel.Status(
                    message=status_message(spec, server, self.deployer.settings.catalog),
                    last_update_time=now(),
                    available_replica_count=1,
                )
                if endpoint.network:
                    deployed.private_endpoints = types.PrivateEndpoints(
                        predict_http_uri=server.url + server.predict_route,
                        health_http_uri=server.url + server.health_route,
                    )
                endpoint.deployed_models.append(deployed)
                endpoint.traffic_split, endpoint.update_time, endpoint.etag = split, now(), _etag()
                self.store.put("endpoint", endpoint.name, endpoint)
                model = self._model(model.name, model.version_id)
                model.deployed_models.append(
                    types.DeployedModelRef(endpoint=endpoint.name, deployed_model_id=deployed_id)
                )
                self.store.put("model", f"{model.name}@{model.version_id}", model)
                self.store.set_server(deployed_id, endpoint.name, server.port, str(server.log_path))
            response = types.DeployModelResponse(deployed_model=deployed)
            self.store.put("operation", operation, _operation(operation, "DeployModelResponse", response))
            log.info("deployed model %s as DeployedModel %s on %s", model.name, deployed_id, server.url)
        except VertexError as e:
            self.deployer.stop(deployed_id)
            self.store.put("operation", operation, _failed(operation, e))
            log.warning("deploy of DeployedModel %s failed: %s", deployed_id, e.message)
        except Exception as e:  # an emulator fault must still end the operation, or the SDK polls forever
            self.deployer.stop(deployed_id)
            self.store.put(
                "operation", operation, _failed(operation, VertexError("INTERNAL", f"{type(e).__name__}: {e}"))
            )
            log.exception("deploy of DeployedModel %s failed", deployed_id)

    async def undeploy_model(self, p: dict, body: dict, query) -> dict:
        request = types.UndeployModelRequest.from_json(json.dumps(body))
        with self.store.transaction():
            endpoint = self._endpoint(p)
            removed = next((d for d in endpoint.deployed_models if d.id == request.deployed_model_id), None)
            if removed is None:
                raise not_found("DeployedModel", f"{request.deployed_model_id} on {endpoint.name}")
            remaining = {d.id for d in endpoint.deployed_models} - {removed.id}
            split = traffic.undeploy_split(
                dict(endpoint.traffic_split), dict(request.traffic_split), removed.id, remaining
            )
            endpoint.deployed_models = [d for d in endpoint.deployed_models if d.id != removed.id]
            endpoint.traffic_split, endpoint.update_time, endpoint.etag = split, now(), _etag()
            self.store.put("endpoint", endpoint.name, endpoint)
            model = self._model(removed.model)
            model.deployed_models = [r for r in model.deployed_models if r.deployed_model_id != removed.id]
            self.store.put("model", f"{model.name}@{model.version_id}", model)
            self.store.drop_server(removed.id)
        self.deployer.stop(removed.id)
        return self._done(
            f"{endpoint.name}/operations/{self.store.next_id('operation')}",
            "UndeployModelResponse",
            types.UndeployModelResponse(),
        )

    def _tpu_cores_in_use(self, p: dict) -> int:
        chips = self.deployer.settings.catalog.tpu_machine_types
        total = 0
        for endpoint in self.store.list("endpoint", f"{_parent(p)}/endpoints/"):
            for d in endpoint.deployed_models:
                r = d.dedicated_resources
                total += chips.get(r.machine_spec.machine_type, 0) * max(r.min_replica_count, r.max_replica_count)
        return total

    # Predictions ------------------------------------------------------------------------------------------

    async def predict(self, p: dict, body: dict, query) -> dict:
        endpoint = self._endpoint(p)
        if endpoint.network:
            raise VertexError(
                "FAILED_PRECONDITION",
                "A private endpoint is called through deployedModels[].privateEndpoints.predictHttpUri",
            )
        deployed_id = traffic.pick(dict(endpoint.traffic_split))
        deployed = next(d for d in endpoint.deployed_models if d.id == deployed_id)
        server = self.deployer.ready(deployed_id)
        try:
            async with self.session.post(
                server.url + server.predict_route, data=p["raw"], headers={"Content-Type": "application/json"}
            ) as response:
                answer = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, json.JSONDecodeError) as e:
            raise VertexError("UNAVAILABLE", f"DeployedModel {deployed_id} did not answer: {e}") from None
        if status != 200:
            message = answer.get("error", answer) if isinstance(answer, dict) else answer
            raise VertexError(_STATUS_BY_HTTP.get(status, "INTERNAL"), f"DeployedModel {deployed_id}: {message}")
        model_name, _, version = deployed.model.partition("@")
        model = self._model(model_name, version)
        return answer | {
            "deployedModelId": deployed_id,
            "model": model_name,
            "modelDisplayName": model.display_name,
            "modelVersionId": model.version_id,
        }

    # Operations -------------------------------------------------------------------------------------------

    async def get_operation(self, p: dict, body: dict, query) -> dict:
        return self.store.get("operation", p["path"]) or _raise(not_found("Operation", p["path"]))

    def _done(self, name: str, kind: str | None, message) -> dict:
        operation = _operation(name, kind, message)
        self.store.put("operation", name, operation)
        return operation


def done_operation(store: Store, parent: str) -> dict:
    """A finished operation with an empty response, stored so the SDK can poll it (deletes answer with one)."""
    name = f"{parent}/operations/{store.next_id('operation')}"
    operation = _operation(name, None, None)
    store.put("operation", name, operation)
    return operation


def check_local(request: web.Request) -> None:
    """Only this machine's own clients may call: a web page (another Origin), a rebound DNS name (another Host) or a
    form post (not JSON) must not create or delete resources through the user's browser."""
    host = request.headers.get("Host", "").rsplit(":", 1)[0].strip("[]")
    if host not in _LOCAL_HOSTS:
        raise VertexError("PERMISSION_DENIED", f"Host {host!r} is not this machine: call localvertex on 127.0.0.1")
    origin = request.headers.get("Origin")
    if origin is not None and origin.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]") not in _LOCAL_HOSTS:
        raise VertexError("PERMISSION_DENIED", f"Origin {origin!r} may not call localvertex")
    mutating = request.method in ("POST", "PATCH", "PUT", "DELETE") and request.can_read_body
    if mutating and request.content_type != "application/json":
        raise VertexError("INVALID_ARGUMENT", f"Content-Type {request.content_type!r} is not application/json")


_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def _operation(name: str, kind: str | None, message) -> dict:
    if kind is None:
        return {"name": name, "done": True, "response": {"@type": "type.googleapis.com/google.protobuf.Empty"}}
    return {"name": name, "done": True, "response": {"@type": _V1 + kind, **_dict(message)}}


def _failed(name: str, error: VertexError) -> dict:
    return {"name": name, "done": True, "error": {"code": error.grpc_code, "message": error.message}}


def _check_artifact(uri: str) -> None:
    if not uri.startswith("gs://"):
        raise VertexError(
            "INVALID_ARGUMENT", f"artifactUri {uri} is not a Cloud Storage URI: stage it to gs:// (set staging_bucket)"
        )
    bucket, _, prefix = uri.removeprefix("gs://").partition("/")
    try:
        found = list(
            storage.Client().list_blobs(bucket, prefix=prefix.rstrip("/") + "/" if prefix else "", max_results=1)
        )
    except Exception as e:  # the storage client raises NotFound for a missing bucket
        raise VertexError("NOT_FOUND", f"artifactUri {uri} not found: {e}") from None
    if not found:
        raise VertexError("NOT_FOUND", f"artifactUri {uri} not found: no objects under it")


def _matches(resource, query) -> bool:
    return traffic.matches(_dict(resource), query.get("filter", ""))


def _page(key: str, items: list, query) -> dict:
    size = int(query.get("pageSize") or 100)
    start = int(query.get("pageToken") or 0)
    page = {key: [_dict(i) for i in items[start : start + size]]} if items[start : start + size] else {}
    if start + size < len(items):
        page["nextPageToken"] = str(start + size)
    return page


def _parent(p: dict) -> str:
    return f"projects/{p['project']}/locations/{p['location']}"


def _dict(message) -> dict:
    return json.loads(type(message).to_json(message))


def _json(body: dict, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type="application/json")


def _raise(error: Exception):
    raise error


def _etag() -> str:
    return str(time.time_ns())


MAX_REQUEST_BYTES = 16 * 1024 * 1024  # the control plane's; predictions are held to the serving limit downstream
_ENDPOINT_UPDATABLE = {"display_name", "description", "labels", "traffic_split"}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


_STATUS_BY_HTTP = {
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
