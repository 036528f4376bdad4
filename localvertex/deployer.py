"""Runs a deployed model: checks its machine spec and quota like Vertex AI, then starts its serving container.

A TensorFlow image of the runtime catalog runs as the local TF model server; any other image needs a local
command mapped to it in the emulator's config (how a custom container is tried locally). The container gets
Vertex AI's environment (`AIP_*`) and its `containerSpec.args` verbatim, with `$(VAR)` expanded.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

from google.cloud.aiplatform_v1 import types

from localvertex.errors import VertexError
from localvertex.modelserver.launch import ModelServerProcess, free_port, start_model_server
from vertex_serving.catalog import Catalog

TPU_QUOTA = "Custom model serving TPU v5e cores per region"


@dataclass
class Settings:
    data_dir: Path
    catalog: Catalog
    storage_emulator_host: str
    tpu_v5e_cores: int = 0
    images: dict[str, list[str]] = field(default_factory=dict)  # image URI -> local command
    deploy_timeout: float = 600.0


class Deployer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.servers: dict[str, ModelServerProcess] = {}

    def check(self, model: types.Model, resources: types.DedicatedResources) -> int:
        """Vertex AI's checks of a deploy request's machine spec; returns the TPU v5e cores it asks for."""
        spec, image_uri = resources.machine_spec, model.container_spec.image_uri
        machine_type, catalog = spec.machine_type, self.settings.catalog
        if not machine_type:
            raise VertexError("INVALID_ARGUMENT", "dedicatedResources.machineSpec.machineType is required")
        if resources.min_replica_count < 1:
            raise VertexError("INVALID_ARGUMENT", "dedicatedResources.minReplicaCount must be at least 1")
        chips = catalog.tpu_chips(machine_type)
        if chips is None and not catalog.is_cloud_tpu(machine_type) and not catalog.known_machine_type(machine_type):
            raise VertexError("INVALID_ARGUMENT", f'Machine type "{machine_type}" is not supported.')
        image = catalog.find(image_uri)
        tpu_image = (image and image.accelerator == "tpu") or any(
            p["image"] == image_uri and p.get("accelerator") == "tpu" for p in catalog.prebuilt.values()
        )
        accelerator = types.AcceleratorType(spec.accelerator_type).name if spec.accelerator_type else ""
        if accelerator in catalog.tpu_accelerators_not_served or (catalog.is_cloud_tpu(machine_type) and chips is None):
            raise VertexError(
                "INVALID_ARGUMENT",
                f"Only Cloud TPU v5e is supported for prediction: use machine type {', '.join(catalog.tpu_machine_types)}",
            )
        if chips is not None:
            if spec.accelerator_type or spec.accelerator_count:
                raise VertexError(
                    "INVALID_ARGUMENT",
                    f"Machine type {machine_type} has its TPU built in: remove acceleratorType and acceleratorCount",
                )
            if not tpu_image:
                raise VertexError(
                    "INVALID_ARGUMENT",
                    f"Machine type {machine_type} needs a TPU serving image, but the model's image is {image_uri}",
                )
            return chips * max(resources.min_replica_count, resources.max_replica_count)
        if tpu_image:
            raise VertexError(
                "INVALID_ARGUMENT", f"Image {image_uri} is a TPU image: deploy it on a Cloud TPU v5e machine type"
            )
        return 0

    def check_quota(self, wanted: int, in_use: int) -> None:
        """The TPU quota, checked when resources are allocated, so it fails the deploy operation as on Vertex AI."""
        if wanted and in_use + wanted > self.settings.tpu_v5e_cores:
            raise VertexError(
                "RESOURCE_EXHAUSTED",
                f"Quota exceeded for quota metric '{TPU_QUOTA}': limit {self.settings.tpu_v5e_cores}, in use {in_use}, "
                f"requested {wanted}. On Vertex AI request a quota increase; locally start the emulator with "
                "--tpu-v5e-cores N",
            )

    def command(self, image_uri: str) -> list[str] | None:
        """None for the catalog's TF images (the local TF model server), else the command mapped to the image."""
        if self.settings.catalog.find(image_uri):
            return None
        if image_uri in self.settings.images:
            return self.settings.images[image_uri]
        raise VertexError(
            "FAILED_PRECONDITION",
            f"Image {image_uri} cannot run locally: localvertex runs the TensorFlow images of its catalog; map other "
            f"images to a local command in {self.settings.data_dir / 'localvertex.toml'} under [images]",
        )

    async def start(
        self,
        endpoint: str,
        deployed_model_id: str,
        model: types.Model,
        spec: types.MachineSpec,
        port: int | None = None,
    ) -> ModelServerProcess:
        """Starts the container and returns once it is healthy; a failure leaves nothing running."""
        container = model.container_spec
        endpoint_id = endpoint.rsplit("/", 1)[-1]
        predict_route, health_route = routes(endpoint_id, deployed_model_id, container)
        env = {
            "AIP_STORAGE_URI": model.artifact_uri,
            "AIP_ENDPOINT_ID": endpoint_id,
            "AIP_DEPLOYED_MODEL_ID": deployed_model_id,
            "AIP_MACHINE_TYPE": spec.machine_type,
            "AIP_ACCELERATOR_TYPE": types.AcceleratorType(spec.accelerator_type).name if spec.accelerator_type else "",
            "STORAGE_EMULATOR_HOST": self.settings.storage_emulator_host,
            # A server killed with its emulator cannot clean up: its scratch files stay where the next start can.
            "TMPDIR": str(self.settings.data_dir / "tmp"),
        }
        (self.settings.data_dir / "tmp").mkdir(parents=True, exist_ok=True)
        env |= {e.name: expand(e.value, env) for e in container.env}
        log = server_log(self.settings.data_dir, deployed_model_id)
        server = start_model_server(
            model.artifact_uri,
            [expand(a, env) for a in container.args],
            log_path=log,
            port=port or free_port(),
            predict_route=predict_route,
            health_route=health_route,
            env=env,
            command=self.command(container.image_uri),
            die_with_parent=True,
        )
        self.servers[deployed_model_id] = server
        try:
            await asyncio.get_running_loop().run_in_executor(None, server.wait_healthy, self.settings.deploy_timeout)
        except (RuntimeError, TimeoutError) as e:
            self.stop(deployed_model_id)
            raise VertexError("FAILED_PRECONDITION", f"Model server failed to start: {server.reason()}") from e
        return server

    def stop(self, deployed_model_id: str) -> None:
        server = self.servers.pop(deployed_model_id, None)
        if server:
            server.stop()

    def stop_all(self) -> None:
        for deployed_model_id in list(self.servers):
            self.stop(deployed_model_id)

    def ready(self, deployed_model_id: str) -> ModelServerProcess:
        server = self.servers.get(deployed_model_id)
        if server is None or server.process.poll() is not None:
            raise VertexError("UNAVAILABLE", f"DeployedModel {deployed_model_id} has no running model server")
        return server


def server_log(data_dir: Path, deployed_model_id: str) -> Path:
    """Where a DeployedModel's model-server log is kept: every start of its server adds to it (restarts included),
    and it outlives the server, as its prediction log does in Cloud Logging."""
    if not deployed_model_id.isdigit():
        raise VertexError("INVALID_ARGUMENT", f"DeployedModel id {deployed_model_id!r} is not a number")
    return data_dir / "logs" / f"deployed-model-{deployed_model_id}.log"


def routes(endpoint_id: str, deployed_model_id: str, container: types.ModelContainerSpec) -> tuple[str, str]:
    """The container's predict and health routes: its own, or the ones Vertex AI gives prebuilt containers."""
    base = f"/v1/endpoints/{endpoint_id}/deployedModels/{deployed_model_id}"
    return container.predict_route or f"{base}:predict", container.health_route or base


def status_message(spec: types.MachineSpec, server: ModelServerProcess, catalog: Catalog) -> str:
    where = f"serving on 127.0.0.1:{server.port}"
    if catalog.tpu_chips(spec.machine_type) is not None:
        return f"{spec.machine_type}: Cloud TPU v5e emulated on this CPU; {where}"
    if spec.accelerator_type:
        return f"{types.AcceleratorType(spec.accelerator_type).name} emulated on this CPU; {where}"
    return where


def expand(text: str, env: dict[str, str]) -> str:
    """Vertex AI's `$(VAR)` expansion in container args and env; `$$` escapes a `$`."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: "$" if m[0] == "$$" else env.get(m[1], m[0]), text)


def now() -> str:
    """RFC 3339 in UTC to the microsecond, so resources made within one second still order by time."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
