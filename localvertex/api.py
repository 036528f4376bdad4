"""Vertex AI's Model, Endpoint and Prediction services and long-running operations, as the aiplatform SDK uses them.

Each method is one handler over the SDK's own generated types (request message in, response message or operation
out); `rest.py` and `grpc_transport.py` serve the same handlers. Quick calls answer with an operation that is already
done; a deploy answers at once with a pending operation that completes when the model server is healthy.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time

import aiohttp
from google.api import httpbody_pb2
from google.cloud import storage
from google.cloud.aiplatform_v1 import types
from google.longrunning import operations_pb2
from google.protobuf import struct_pb2

from localvertex import explain, query, traffic
from localvertex.deployer import Deployer, now, status_message
from localvertex.errors import VertexError, not_found
from localvertex.rpc import Call, loaded, mask_paths, operation, rpc, stored, to_dict
from localvertex.store import Store

log = logging.getLogger("localvertex")
LOCATION = re.compile(r"projects/[^/]+/locations/[^/]+")
_ENDPOINT_ID = re.compile(r"[a-z][a-z0-9-]{0,61}[a-z0-9]|[a-z]|[1-9][0-9]{0,8}")
_ALIAS = re.compile(r"[a-z][a-zA-Z0-9-]{0,126}[a-z0-9-]|[a-z]")
_ENDPOINT_UPDATABLE = {"display_name", "description", "labels", "traffic_split"}
_MODEL_WIDE = {"display_name", "description"}  # shared by every version of a model
_MODEL_UPDATABLE = _MODEL_WIDE | {"version_description", "labels"}
_REPLICA_FIELDS = {
    "dedicated_resources.min_replica_count",
    "dedicated_resources.max_replica_count",
    "dedicated_resources.required_replica_count",
    "dedicated_resources.autoscaling_metric_specs",
    "disable_container_logging",
}
_STATUS_BY_HTTP = {
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
WAIT_LIMIT = 600.0  # seconds an operations.wait without a timeout waits at most
Stage = types.DeploymentStage


class Api:
    """The handlers; `dedicated_dns` is where dedicated endpoints are reached (a TLS listener on this machine)."""

    def __init__(self, store: Store, deployer: Deployer, dedicated_dns: str = "") -> None:
        self.store, self.deployer, self.dedicated_dns = store, deployer, dedicated_dns
        self.session: aiohttp.ClientSession | None = None
        self.tasks: set[asyncio.Task] = set()
        self.pending_cores = 0  # TPU cores of deploys still loading
        self.loading: dict[str, str] = {}  # DeployedModel id -> endpoint, while its deploy runs

    async def open(self) -> None:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600))

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.session:
            await self.session.close()

    # Endpoints --------------------------------------------------------------------------------------------

    @rpc("EndpointService")
    async def create_endpoint(self, request: types.CreateEndpointRequest, call: Call) -> operations_pb2.Operation:
        parent, endpoint = location(request.parent), request.endpoint
        if request.endpoint_id and not _ENDPOINT_ID.fullmatch(request.endpoint_id):
            raise VertexError(
                "INVALID_ARGUMENT",
                f"endpointId {request.endpoint_id!r} is invalid: use up to 63 lowercase letters, digits and hyphens "
                "starting with a letter, or up to 9 digits without a leading zero",
            )
        if not endpoint.display_name:
            raise VertexError("INVALID_ARGUMENT", "endpoint.displayName is required")
        if endpoint.dedicated_endpoint_enabled and endpoint.network:
            raise VertexError(
                "INVALID_ARGUMENT",
                "dedicatedEndpointEnabled and network exclude each other: a dedicated endpoint is public",
            )
        name = f"{parent}/endpoints/{request.endpoint_id or self.store.next_id('endpoint', 1000)}"
        with self.store.transaction():
            if self.store.get("endpoint", name):
                raise VertexError("ALREADY_EXISTS", f"Endpoint {name} already exists")
            endpoint.name, endpoint.create_time, endpoint.update_time, endpoint.etag = name, now(), now(), _etag()
            self.store.put("endpoint", name, endpoint)
        metadata = types.CreateEndpointOperationMetadata(generic_metadata=_generic())
        return self._done(name, self._shown(endpoint), metadata)

    @rpc("EndpointService")
    async def list_endpoints(self, request: types.ListEndpointsRequest, call: Call) -> types.ListEndpointsResponse:
        query.compile_filter(request.filter, query.ENDPOINTS)  # refused before the store is read
        endpoints = self.store.list("endpoint", f"{location(request.parent)}/endpoints/")
        items, token = query.listing(endpoints, request, query.ENDPOINTS, _view)
        return types.ListEndpointsResponse(endpoints=[self._shown(e) for e in items], next_page_token=token)

    @rpc("EndpointService")
    async def get_endpoint(self, request: types.GetEndpointRequest, call: Call) -> types.Endpoint:
        return self._shown(self._endpoint(request.name))

    @rpc("EndpointService")
    async def delete_endpoint(self, request: types.DeleteEndpointRequest, call: Call) -> operations_pb2.Operation:
        endpoint = self._endpoint(request.name)
        if endpoint.deployed_models or any(e == endpoint.name for e in self.loading.values()):
            ids = [d.id for d in endpoint.deployed_models] + [d for d, e in self.loading.items() if e == endpoint.name]
            raise VertexError(
                "FAILED_PRECONDITION", f"Endpoint {endpoint.name} still has DeployedModels {ids}: undeploy them first"
            )
        self.store.delete(endpoint.name)
        return self._done(
            _parent_location(endpoint.name), None, types.DeleteOperationMetadata(generic_metadata=_generic())
        )

    @rpc("EndpointService")
    async def update_endpoint(self, request: types.UpdateEndpointRequest, call: Call) -> types.Endpoint:
        """`Endpoint.update`: the fields `updateMask` names; a traffic split is checked as a deploy's is."""
        changes, paths = request.endpoint, mask_paths(request.update_mask, _ENDPOINT_UPDATABLE)
        if "display_name" in paths and not changes.display_name:
            raise VertexError("INVALID_ARGUMENT", "endpoint.displayName must not be empty")
        with self.store.transaction():
            endpoint = self._endpoint(changes.name)
            if "traffic_split" in paths:
                if endpoint.network:
                    raise VertexError("INVALID_ARGUMENT", "A private endpoint has no traffic split to update")
                split = dict(changes.traffic_split)
                endpoint.traffic_split = traffic.update_split(split, {d.id for d in endpoint.deployed_models})
            for path in set(paths) - {"traffic_split"}:
                setattr(endpoint, path, getattr(changes, path))
            endpoint.update_time, endpoint.etag = now(), _etag()
            self.store.put("endpoint", endpoint.name, endpoint)
        return self._shown(endpoint)

    @rpc("EndpointService")
    async def update_endpoint_long_running(
        self, request: types.UpdateEndpointLongRunningRequest, call: Call
    ) -> operations_pb2.Operation:
        """`:update` replaces only `clientConnectionConfig`, as Vertex AI documents; other changes are refused."""
        changes = request.endpoint
        with self.store.transaction():
            endpoint = self._endpoint(changes.name)
            changed = [
                f
                for f in ("display_name", "description", "labels", "traffic_split")
                if f in changes and _plain(getattr(changes, f)) != _plain(getattr(endpoint, f))
            ]
            if changed:
                raise VertexError(
                    "INVALID_ARGUMENT",
                    f"endpoints:update changes only clientConnectionConfig, not {changed}: update those with PATCH "
                    "and an updateMask (Endpoint.update)",
                )
            endpoint.client_connection_config = changes.client_connection_config
            endpoint.update_time, endpoint.etag = now(), _etag()
            self.store.put("endpoint", endpoint.name, endpoint)
        metadata = types.UpdateEndpointOperationMetadata(generic_metadata=_generic())
        return self._done(endpoint.name, self._shown(endpoint), metadata)

    def _endpoint(self, name: str) -> types.Endpoint:
        resource(name, "endpoints")
        return self.store.get("endpoint", name) or _raise(not_found("Endpoint", name))

    def _shown(self, endpoint: types.Endpoint) -> types.Endpoint:
        """An endpoint as answered: a dedicated one carries the DNS name it is reached at."""
        if endpoint.dedicated_endpoint_enabled:
            endpoint.dedicated_endpoint_dns = self.dedicated_dns
        return endpoint

    # Models -----------------------------------------------------------------------------------------------

    @rpc("ModelService")
    async def upload_model(self, request: types.UploadModelRequest, call: Call) -> operations_pb2.Operation:
        model, parent = request.model, location(request.parent)
        if not model.display_name:
            raise VertexError("INVALID_ARGUMENT", "model.displayName is required")
        if not model.container_spec.image_uri:
            raise VertexError("INVALID_ARGUMENT", "model.containerSpec.imageUri is required")
        catalog = self.deployer.settings.catalog
        if "explanation_spec" in model:
            explain.check_spec(model.explanation_spec, model.container_spec.image_uri, catalog, "model.explanationSpec")
        for alias in model.version_aliases:
            _check_alias(alias)
        if model.artifact_uri:
            saved_model = catalog.find(model.container_spec.image_uri) is not None
            await asyncio.get_running_loop().run_in_executor(None, _check_artifact, model.artifact_uri, saved_model)
        with self.store.transaction():
            if request.parent_model:
                versions = self._versions(request.parent_model)
                model_id = request.parent_model.rsplit("/", 1)[-1]
                version = str(max(int(v.version_id) for v in versions) + 1)
            else:
                model_id = request.model_id or self.store.next_id("model", 1000)
                versions, version = [], "1"
                if self.store.list("model", f"{parent}/models/{model_id}@"):
                    raise VertexError("ALREADY_EXISTS", f"Model {parent}/models/{model_id} already exists")
            aliases = list(model.version_aliases)
            if not versions and "default" not in aliases:
                aliases.append("default")
            self._take_aliases(versions, aliases)
            name = f"{parent}/models/{model_id}"
            model.name, model.version_id, model.version_aliases = name, version, aliases
            model.create_time = versions[0].create_time if versions else now()
            model.update_time = model.version_create_time = model.version_update_time = now()
            model.supported_deployment_resources_types = [types.Model.DeploymentResourcesType.DEDICATED_RESOURCES]
            model.etag = _etag()
            self.store.put("model", f"{name}@{version}", model)
        response = types.UploadModelResponse(model=name, model_version_id=version)
        return self._done(name, response, types.UploadModelOperationMetadata(generic_metadata=_generic()))

    @rpc("ModelService")
    async def list_models(self, request: types.ListModelsRequest, call: Call) -> types.ListModelsResponse:
        query.compile_filter(request.filter, query.MODELS)  # refused before the store is read
        by_id: dict[str, types.Model] = {}
        for version in self.store.list("model", f"{location(request.parent)}/models/"):
            by_id.setdefault(version.name, version)
            if "default" in version.version_aliases:
                by_id[version.name] = version
        items, token = query.listing(list(by_id.values()), request, query.MODELS, _view)
        return types.ListModelsResponse(models=items, next_page_token=token)

    @rpc("ModelService")
    async def list_model_versions(
        self, request: types.ListModelVersionsRequest, call: Call
    ) -> types.ListModelVersionsResponse:
        query.compile_filter(request.filter, query.MODEL_VERSIONS)  # refused before the model is looked up
        items, token = query.listing(self._versions(request.name), request, query.MODEL_VERSIONS, _version_view)
        return types.ListModelVersionsResponse(models=items, next_page_token=token)

    @rpc("ModelService")
    async def get_model(self, request: types.GetModelRequest, call: Call) -> types.Model:
        return self._model(request.name)

    @rpc("ModelService")
    async def update_model(self, request: types.UpdateModelRequest, call: Call) -> types.Model:
        """`Model.update` (display name, description, labels) and `update_version` (version description, labels):
        the display name and description belong to the model, the rest to the version named (else the default)."""
        paths = mask_paths(request.update_mask, _MODEL_UPDATABLE, "(version aliases change with mergeVersionAliases)")
        changes = request.model
        if "display_name" in paths and not changes.display_name:
            raise VertexError("INVALID_ARGUMENT", "model.displayName must not be empty")
        with self.store.transaction():
            # The SDK sends the unversioned name with the version's own `versionId` (update_version) or the
            # default's (Model.update).
            target = self._model(changes.name, None if "@" in changes.name else changes.version_id or None)
            for version in self._versions(target.name):
                if version.version_id == target.version_id:
                    version = target
                    for path in set(paths) - _MODEL_WIDE:
                        setattr(version, path, getattr(changes, path))
                    version.version_update_time = now()
                for path in set(paths) & _MODEL_WIDE:
                    setattr(version, path, getattr(changes, path))
                version.update_time, version.etag = now(), _etag()
                self.store.put("model", f"{version.name}@{version.version_id}", version)
        return self._model(target.name, target.version_id)

    @rpc("ModelService")
    async def merge_version_aliases(self, request: types.MergeVersionAliasesRequest, call: Call) -> types.Model:
        """Adds aliases (`prod`) and removes them (`-prod`); an alias held by another version moves here, which is
        how `default` moves. `default` itself cannot be removed: there is always a default version."""
        if not request.version_aliases:
            raise VertexError("INVALID_ARGUMENT", "versionAliases is required: aliases to add, or to remove with '-'")
        adding = [a for a in request.version_aliases if not a.startswith("-")]
        removing = [a[1:] for a in request.version_aliases if a.startswith("-")]
        for alias in adding + removing:
            _check_alias(alias)
        if "default" in removing and "default" not in adding:
            raise VertexError(
                "FAILED_PRECONDITION",
                "The default alias cannot be removed: add it to another version, which moves it there",
            )
        cancelled = set(adding) & set(removing)  # adding and removing one alias cancel out
        with self.store.transaction():
            target = self._model(request.name)
            others = [v for v in self._versions(target.name) if v.version_id != target.version_id]
            aliases = [a for a in target.version_aliases if a not in set(removing) - cancelled]
            aliases += [a for a in adding if a not in aliases and a not in cancelled]
            self._take_aliases(others, aliases)
            target.version_aliases = aliases
            target.version_update_time = target.update_time = now()
            self.store.put("model", f"{target.name}@{target.version_id}", target)
        return target

    @rpc("ModelService")
    async def delete_model(self, request: types.DeleteModelRequest, call: Call) -> operations_pb2.Operation:
        name, _, version = request.name.partition("@")
        targets = [self._model(name, version)] if version else self._versions(name)
        if version:
            self._check_version_deletable(targets[0])
        deployed = [ref.endpoint for t in targets for ref in t.deployed_models]
        if deployed:
            raise VertexError(
                "FAILED_PRECONDITION", f"Model {name} is deployed to {sorted(set(deployed))}: undeploy it first"
            )
        for target in targets:
            self.store.delete(f"{target.name}@{target.version_id}")
        return self._done(_parent_location(name), None, types.DeleteOperationMetadata(generic_metadata=_generic()))

    @rpc("ModelService")
    async def delete_model_version(
        self, request: types.DeleteModelVersionRequest, call: Call
    ) -> operations_pb2.Operation:
        """`ModelRegistry.delete_version`: not the last version, not the default one, not while deployed."""
        if "@" not in request.name:
            raise VertexError(
                "INVALID_ARGUMENT", f"name {request.name!r} names no version: use models/ID@VERSION (or @ALIAS)"
            )
        target = self._model(request.name)
        versions = self._versions(target.name)
        if len(versions) == 1:
            raise VertexError(
                "FAILED_PRECONDITION",
                f"Version {target.version_id} is the only version of {target.name}: delete the model instead",
            )
        self._check_version_deletable(target)
        if target.deployed_models:
            endpoints = sorted({ref.endpoint for ref in target.deployed_models})
            raise VertexError(
                "FAILED_PRECONDITION",
                f"Version {target.version_id} of {target.name} is deployed to {endpoints}: undeploy it first",
            )
        self.store.delete(f"{target.name}@{target.version_id}")
        return self._done(target.name, None, types.DeleteOperationMetadata(generic_metadata=_generic()))

    def _check_version_deletable(self, version: types.Model) -> None:
        if "default" in version.version_aliases and len(self._versions(version.name)) > 1:
            raise VertexError(
                "FAILED_PRECONDITION",
                f"Version {version.version_id} is the default version of {version.name}: make another version the "
                "default first",
            )

    def _take_aliases(self, versions: list[types.Model], aliases: list[str]) -> None:
        """An alias names one version: the versions that held `aliases` lose them."""
        for old in versions:
            if set(old.version_aliases) & set(aliases):
                old.version_aliases = [a for a in old.version_aliases if a not in aliases]
                old.version_update_time = now()
                self.store.put("model", f"{old.name}@{old.version_id}", old)

    def _versions(self, name: str) -> list[types.Model]:
        name = name.partition("@")[0]
        resource(name, "models")
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

    @rpc("EndpointService")
    async def deploy_model(self, request: types.DeployModelRequest, call: Call) -> operations_pb2.Operation:
        endpoint, deployed = self._endpoint(request.endpoint), request.deployed_model
        if "dedicated_resources" not in deployed:
            raise VertexError(
                "INVALID_ARGUMENT", "deployedModel.dedicatedResources is required for a custom-trained model"
            )
        model = self._model(deployed.model)
        if "explanation_spec" in deployed:
            explain.check_spec(
                deployed.explanation_spec,
                model.container_spec.image_uri,
                self.deployer.settings.catalog,
                "deployedModel.explanationSpec",
            )
        cores = self.deployer.check(model, deployed.dedicated_resources)
        private = bool(endpoint.network)
        loading = [d for d, e in self.loading.items() if e == endpoint.name]
        if private and (endpoint.deployed_models or loading):
            present = [d.id for d in endpoint.deployed_models] + loading
            raise VertexError(
                "FAILED_PRECONDITION",
                f"Endpoint {endpoint.name} is a private endpoint and already has DeployedModel {present[0]}: a "
                "private endpoint serves one model; undeploy it first, or deploy to another endpoint",
            )
        deployed_id = self.store.next_id("deployed_model", 2000)
        existing = {d.id for d in endpoint.deployed_models}
        traffic.deploy_split(dict(endpoint.traffic_split), dict(request.traffic_split), deployed_id, existing, private)
        name = f"{endpoint.name}/operations/{self.store.next_id('operation')}"
        started = now()
        metadata = types.DeployModelOperationMetadata(
            generic_metadata=_generic(started), deployment_stage=Stage.STARTING_MODEL_SERVER
        )
        pending = operation(name, metadata=metadata, done=False)
        self.store.put("operation", name, stored(pending))
        self.loading[deployed_id] = endpoint.name
        task = asyncio.ensure_future(self._deploy(endpoint.name, deployed_id, model, request, name, cores, started))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return pending

    async def _deploy(
        self, endpoint_name: str, deployed_id: str, model: types.Model, request, name: str, cores: int, started: str
    ) -> None:
        spec = request.deployed_model.dedicated_resources.machine_spec

        def metadata(stage) -> types.DeployModelOperationMetadata:
            return types.DeployModelOperationMetadata(generic_metadata=_generic(started), deployment_stage=stage)

        try:
            self.deployer.check_quota(
                cores, self._tpu_cores_in_use(_parent_location(endpoint_name)) + self.pending_cores
            )
            self.pending_cores += cores
            try:
                server = await self.deployer.start(endpoint_name, deployed_id, model, spec)
            finally:
                self.pending_cores -= cores
            with self.store.transaction():
                endpoint = self._endpoint(endpoint_name)  # read again: it may have changed while the model loaded
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
                deployed.display_name = deployed.display_name or model.display_name
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
            done = operation(name, response, metadata(Stage.SUCCESSFULLY_DEPLOYED))
            self.store.put("operation", name, stored(done))
            log.info("deployed model %s as DeployedModel %s on %s", model.name, deployed_id, server.url)
        except Exception as e:  # an emulator fault must still end the operation, or the SDK polls forever
            error = e if isinstance(e, VertexError) else VertexError("INTERNAL", f"{type(e).__name__}: {e}")
            self.deployer.stop(deployed_id)
            self.store.put(
                "operation", name, stored(operation(name, metadata=metadata(Stage.FAILED_TO_DEPLOY), error=error))
            )
            if isinstance(e, VertexError):
                log.warning("deploy of DeployedModel %s failed: %s", deployed_id, e.message)
            else:
                log.exception("deploy of DeployedModel %s failed", deployed_id)
        finally:
            self.loading.pop(deployed_id, None)

    @rpc("EndpointService")
    async def undeploy_model(self, request: types.UndeployModelRequest, call: Call) -> operations_pb2.Operation:
        with self.store.transaction():
            endpoint = self._endpoint(request.endpoint)
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
        metadata = types.UndeployModelOperationMetadata(generic_metadata=_generic())
        return self._done(endpoint.name, types.UndeployModelResponse(), metadata)

    @rpc("EndpointService")
    async def mutate_deployed_model(
        self, request: types.MutateDeployedModelRequest, call: Call
    ) -> operations_pb2.Operation:
        """Replica counts (and the other fields Vertex AI lets change) of a DeployedModel. More TPU cores than the
        quota leaves fail the operation, as a deploy's do. Locally a DeployedModel stays one model server."""
        paths = mask_paths(request.update_mask, _REPLICA_FIELDS)
        changes = request.deployed_model
        with self.store.transaction():
            endpoint = self._endpoint(request.endpoint)
            deployed = next((d for d in endpoint.deployed_models if d.id == changes.id), None)
            if deployed is None:
                raise not_found("DeployedModel", f"{changes.id} on {endpoint.name}")
            resources, asked = deployed.dedicated_resources, changes.dedicated_resources
            old = _cores(self.deployer.settings.catalog.tpu_machine_types, resources)
            for path in paths:
                head, _, field = path.partition(".")
                if field:
                    setattr(resources, field, getattr(asked, field))
                else:
                    setattr(deployed, head, getattr(changes, head))
            if resources.min_replica_count < 1:
                raise VertexError("INVALID_ARGUMENT", "dedicatedResources.minReplicaCount must be at least 1")
            if resources.max_replica_count and resources.max_replica_count < resources.min_replica_count:
                raise VertexError(
                    "INVALID_ARGUMENT",
                    f"dedicatedResources.maxReplicaCount {resources.max_replica_count} is below minReplicaCount "
                    f"{resources.min_replica_count}",
                )
            metadata = types.MutateDeployedModelOperationMetadata(generic_metadata=_generic())
            new = _cores(self.deployer.settings.catalog.tpu_machine_types, resources)
            if new > old:
                in_use = self._tpu_cores_in_use(_parent_location(endpoint.name)) + self.pending_cores - old
                try:
                    self.deployer.check_quota(new, in_use)
                except VertexError as e:
                    return self._failed(endpoint.name, e, metadata)
            endpoint.update_time, endpoint.etag = now(), _etag()
            self.store.put("endpoint", endpoint.name, endpoint)
        return self._done(endpoint.name, types.MutateDeployedModelResponse(deployed_model=deployed), metadata)

    def _tpu_cores_in_use(self, parent: str) -> int:
        chips = self.deployer.settings.catalog.tpu_machine_types
        return sum(
            _cores(chips, d.dedicated_resources)
            for endpoint in self.store.list("endpoint", f"{parent}/endpoints/")
            for d in endpoint.deployed_models
        )

    # Predictions ------------------------------------------------------------------------------------------

    @rpc("PredictionService")
    async def predict(self, request: types.PredictRequest, call: Call) -> types.PredictResponse:
        endpoint, deployed = self._serving(request.endpoint, call)
        # REST's body is forwarded as sent, so a compact body under the serving limit stays under it.
        body = call.raw or json.dumps({k: v for k, v in to_dict(request).items() if k != "endpoint"}).encode()
        answer = await self._forward(deployed.id, body)
        if not isinstance(answer, dict) or "predictions" not in answer:
            raise VertexError("INTERNAL", f"DeployedModel {deployed.id} answered without predictions")
        response = self._response(types.PredictResponse, deployed)
        _extend(types.PredictResponse.pb(response).predictions, answer["predictions"])
        return response

    @rpc("PredictionService")
    async def raw_predict(self, request: types.RawPredictRequest, call: Call) -> httpbody_pb2.HttpBody:
        """The body goes to the model server as it is, and its answer comes back as it is, with Vertex AI's
        `X-Vertex-AI-*` headers naming the DeployedModel that answered."""
        endpoint, deployed = self._serving(request.endpoint, call)
        server = self.deployer.ready(deployed.id)
        content_type = request.http_body.content_type or "application/json"
        try:
            async with self.session.post(
                server.url + server.predict_route, data=request.http_body.data, headers={"Content-Type": content_type}
            ) as answer:
                data, status = await answer.read(), answer.status
                answered_type = answer.headers.get("Content-Type", "application/json")
        except aiohttp.ClientError as e:
            raise VertexError("UNAVAILABLE", f"DeployedModel {deployed.id} did not answer: {e}") from None
        if status != 200:
            raise VertexError(_STATUS_BY_HTTP.get(status, "INTERNAL"), f"DeployedModel {deployed.id}: {data.decode()}")
        model = self._model(deployed.model)
        call.headers.update(
            {
                "X-Vertex-AI-Endpoint-Id": endpoint.name.rsplit("/", 1)[-1],
                "X-Vertex-AI-Deployed-Model-Id": deployed.id,
                "X-Vertex-AI-Model": model.name,
                "X-Vertex-AI-Model-Display-Name": model.display_name,
                "X-Vertex-AI-Model-Version-Id": model.version_id,
            }
        )
        return httpbody_pb2.HttpBody(content_type=answered_type, data=data)

    @rpc("PredictionService")
    async def explain(self, request: types.ExplainRequest, call: Call) -> types.ExplainResponse:
        """Sampled Shapley attributions, with the spec of the request, else of the DeployedModel, else of the Model."""
        endpoint = self._endpoint(request.endpoint)
        if request.deployed_model_id:
            self._check_reachable(endpoint, call)
            deployed = next((d for d in endpoint.deployed_models if d.id == request.deployed_model_id), None)
            if deployed is None:
                raise not_found("DeployedModel", f"{request.deployed_model_id} on {endpoint.name}")
        else:
            endpoint, deployed = self._serving(request.endpoint, call)
        model = self._model(deployed.model)
        spec = next(
            (s for s in (deployed.explanation_spec, model.explanation_spec) if explain.method_of(s)),
            None,
        )
        override = request.explanation_spec_override
        if "parameters" in override:  # new parameters; the metadata stays the model's
            spec = types.ExplanationSpec(parameters=override.parameters, metadata=spec.metadata if spec else None)
            explain.check_spec(
                spec, model.container_spec.image_uri, self.deployer.settings.catalog, "explanationSpecOverride"
            )
        if spec is None:
            raise VertexError(
                "FAILED_PRECONDITION",
                f"DeployedModel {deployed.id} has no explanation spec: upload the model with explanation parameters "
                "(sampled_shapley_attribution) and metadata, or pass an explanationSpecOverride",
            )
        if explain.method_of(spec) != explain.SAMPLED_SHAPLEY:
            raise VertexError(
                "UNIMPLEMENTED",
                f"localvertex explains with Sampled Shapley only, not {explain.method_of(spec)}",
            )
        metadata = to_dict(spec.metadata)
        for name, given in to_dict(override.metadata).get("inputs", {}).items():  # baselines for this request
            metadata.setdefault("inputs", {}).setdefault(name, {})["inputBaselines"] = given.get("inputBaselines", [])
        instances = to_dict(struct_pb2.ListValue(values=types.ExplainRequest.pb(request).instances))
        rng = random.Random(0)
        paths = [
            explain.plan(i, metadata, spec.parameters.sampled_shapley_attribution.path_count, rng)
            for i in instances or []
        ]
        steps = [step for p in paths for step in p.steps]
        indices = [int(i) for i in spec.parameters.output_indices or []]
        parameters = to_dict(types.ExplainRequest.pb(request).parameters) if "parameters" in request else None
        body = {"instances": steps} | ({"parameters": parameters} if parameters is not None else {})
        answer = await self._forward(deployed.id, json.dumps(body).encode())
        predictions = answer.get("predictions") if isinstance(answer, dict) else None
        if not isinstance(predictions, list) or len(predictions) != len(steps):
            raise VertexError("INTERNAL", f"DeployedModel {deployed.id} answered {len(steps)} instances wrongly")
        response = self._response(types.ExplainResponse, deployed)
        explanations, answered, start = [], [], 0
        for p in paths:
            found, prediction = explain.attribution(p, predictions[start : start + len(p.steps)], metadata, indices)
            start += len(p.steps)
            explanations.append(types.Explanation(attributions=[found]))
            answered.append(prediction)
        response.explanations = explanations
        _extend(types.ExplainResponse.pb(response).predictions, answered)
        return response

    def _serving(self, name: str, call: Call) -> tuple[types.Endpoint, types.DeployedModel]:
        """The endpoint and the DeployedModel its traffic split picks for this request."""
        endpoint = self._endpoint(name)
        self._check_reachable(endpoint, call)
        deployed_id = traffic.pick(dict(endpoint.traffic_split))
        return endpoint, next(d for d in endpoint.deployed_models if d.id == deployed_id)

    def _check_reachable(self, endpoint: types.Endpoint, call: Call) -> None:
        if endpoint.network:
            raise VertexError(
                "FAILED_PRECONDITION",
                "A private endpoint is called through deployedModels[].privateEndpoints.predictHttpUri",
            )
        if endpoint.dedicated_endpoint_enabled and not call.dedicated:
            raise VertexError(
                "FAILED_PRECONDITION",
                "This endpoint is a dedicated endpoint and cannot be accessed through the Vertex AI API. Please "
                f"access the endpoint using its dedicated dns name '{self.dedicated_dns}'",
            )
        if call.dedicated and not endpoint.dedicated_endpoint_enabled:
            raise VertexError(
                "FAILED_PRECONDITION",
                f"Endpoint {endpoint.name} is not a dedicated endpoint: call it through the Vertex AI API",
            )

    async def _forward(self, deployed_id: str, body: bytes):
        server = self.deployer.ready(deployed_id)
        try:
            async with self.session.post(
                server.url + server.predict_route, data=body, headers={"Content-Type": "application/json"}
            ) as response:
                answer = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, json.JSONDecodeError) as e:
            raise VertexError("UNAVAILABLE", f"DeployedModel {deployed_id} did not answer: {e}") from None
        if status != 200:
            message = answer.get("error", answer) if isinstance(answer, dict) else answer
            raise VertexError(_STATUS_BY_HTTP.get(status, "INTERNAL"), f"DeployedModel {deployed_id}: {message}")
        return answer

    def _response(self, kind: type, deployed: types.DeployedModel):
        model_name, _, version = deployed.model.partition("@")
        model = self._model(model_name, version)
        fields = {"deployed_model_id": deployed.id}
        if kind is types.PredictResponse:
            fields |= {"model": model_name, "model_display_name": model.display_name, "model_version_id": version}
        return kind(**fields)

    # Operations -------------------------------------------------------------------------------------------

    @rpc("Operations")
    async def get_operation(self, request: operations_pb2.GetOperationRequest, call: Call) -> operations_pb2.Operation:
        found = self.store.get("operation", request.name)
        return loaded(found) if found else _raise(not_found("Operation", request.name))

    @rpc("Operations")
    async def list_operations(
        self, request: operations_pb2.ListOperationsRequest, call: Call
    ) -> operations_pb2.ListOperationsResponse:
        """The operations of a resource (`endpoints/E`, `models/M`) or of a location, oldest first."""
        matches = query.compile_filter(request.filter, _OPERATIONS)
        found = [
            loaded(o)
            for o in self.store.list("operation", f"{request.name}/operations/")
            if "name" in o and matches({"done": str(o.get("done", False)).lower()})
        ]
        found.sort(key=lambda o: int(o.name.rsplit("/", 1)[-1]))  # ids count up; a stored update moves a row
        items, token = query.page(found, request.page_size, request.page_token)
        return operations_pb2.ListOperationsResponse(operations=items, next_page_token=token)

    @rpc("Operations")
    async def wait_operation(
        self, request: operations_pb2.WaitOperationRequest, call: Call
    ) -> operations_pb2.Operation:
        """Returns once the operation is done or `timeout` passed (at most WAIT_LIMIT), as it is then."""
        limit = request.timeout.ToTimedelta().total_seconds() if request.HasField("timeout") else WAIT_LIMIT
        deadline = time.monotonic() + min(limit, WAIT_LIMIT)
        while True:
            found = await self.get_operation(operations_pb2.GetOperationRequest(name=request.name), call)
            if found.done or time.monotonic() >= deadline:
                return found
            await asyncio.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    def _done(self, owner: str, response, metadata) -> operations_pb2.Operation:
        """A finished operation under `owner` (a resource or a location), stored so the SDK can poll it."""
        return finished(self.store, owner, response, metadata)

    def _failed(self, owner: str, error: VertexError, metadata) -> operations_pb2.Operation:
        name = f"{owner}/operations/{self.store.next_id('operation')}"
        failed = operation(name, metadata=metadata, error=error)
        self.store.put("operation", name, stored(failed))
        return failed


def finished(store: Store, owner: str, response, metadata=None) -> operations_pb2.Operation:
    """A finished operation under `owner`; `response` None means google.protobuf.Empty (what deletes answer)."""
    name = f"{owner}/operations/{store.next_id('operation')}"
    op = operation(name, response, metadata)
    store.put("operation", name, stored(op))
    return op


def location(parent: str) -> str:
    if not LOCATION.fullmatch(parent):
        raise VertexError("INVALID_ARGUMENT", f"parent {parent!r} is not projects/PROJECT/locations/LOCATION")
    return parent


def resource(name: str, collection: str) -> None:
    """Refuses a name that is not `projects/P/locations/L/<collection>/ID` (gRPC requests carry any string)."""
    if not re.fullmatch(rf"{LOCATION.pattern}/{collection}/[^/:@]+(?:@[^/:]+)?", name):
        raise VertexError(
            "INVALID_ARGUMENT", f"name {name!r} is not projects/PROJECT/locations/LOCATION/{collection}/ID"
        )


def _parent_location(name: str) -> str:
    return "/".join(name.split("/")[:4])


def _plain(value):
    return value if isinstance(value, str) else dict(value)


def _generic(created: str | None = None) -> types.GenericOperationMetadata:
    return types.GenericOperationMetadata(create_time=created or now(), update_time=now())


def _cores(chips: dict[str, int], resources: types.DedicatedResources) -> int:
    return chips.get(resources.machine_spec.machine_type, 0) * max(
        resources.min_replica_count, resources.max_replica_count
    )


def _extend(target, values: list) -> None:
    """Python values into a repeated google.protobuf.Value field, at protobuf's own speed."""
    listed = struct_pb2.ListValue()
    listed.extend(values)
    target.extend(listed.values)


def _view(resource) -> dict:
    """What the list filters and order_by of models and endpoints read (snake_case)."""
    kind = "model" if isinstance(resource, types.Model) else "endpoint"
    return {
        kind: resource.name.rsplit("/", 1)[-1],
        "display_name": resource.display_name,
        "labels": dict(resource.labels),
        "base_model_name": "",
        "create_time": query.stamp(resource.create_time),
        "update_time": query.stamp(resource.update_time),
    }


def _version_view(model: types.Model) -> dict:
    return {
        "labels": dict(model.labels),
        "create_time": query.stamp(model.version_create_time),
        "update_time": query.stamp(model.version_update_time),
    }


_OPERATIONS = query.Schema("ListOperations", {"done": query.EQUAL}, ())


def _check_alias(alias: str) -> None:
    if not _ALIAS.fullmatch(alias):
        raise VertexError(
            "INVALID_ARGUMENT",
            f"Version alias {alias!r} is invalid: use up to 128 letters, digits and hyphens, starting with a "
            "lowercase letter (a version id such as '2' cannot be an alias)",
        )


def _check_artifact(uri: str, saved_model: bool) -> None:
    """The artifact folder exists; for a TensorFlow serving image it holds exactly one SavedModel file at its top."""
    if not uri.startswith("gs://"):
        raise VertexError(
            "INVALID_ARGUMENT", f"artifactUri {uri} is not a Cloud Storage URI: stage it to gs:// (set staging_bucket)"
        )
    bucket, _, prefix = uri.removeprefix("gs://").partition("/")
    prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
    try:
        found = [b.name.removeprefix(prefix) for b in storage.Client().list_blobs(bucket, prefix=prefix)]
    except Exception as e:  # the storage client raises NotFound for a missing bucket
        raise VertexError("NOT_FOUND", f"artifactUri {uri} not found: {e}") from None
    if not found:
        raise VertexError("NOT_FOUND", f"artifactUri {uri} not found: no objects under it")
    graphs = [n for n in ("saved_model.pb", "saved_model.pbtxt") if n in found]
    if saved_model and len(graphs) != 1:
        raise VertexError(
            "FAILED_PRECONDITION",
            f"Model directory {uri} is expected to contain exactly one of: [saved_model.pb, saved_model.pbtxt]"
            + ("; it holds both" if graphs else ""),
        )


def _raise(error: Exception):
    raise error


def _etag() -> str:
    return str(time.time_ns())
