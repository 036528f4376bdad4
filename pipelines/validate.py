"""Checks a whole deploy configuration against Vertex AI's rules before anything is created or billed.

Rules come from Vertex AI's "Optimized TensorFlow runtime" and "Deploy a model to Cloud TPU VMs" pages. Every
problem is collected, so one run of `vsp validate` shows them all.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

from pipelines.batching import Batching
from pipelines.catalog import ACCELERATORS, Catalog, Image
from pipelines.config import DeployConfig
from pipelines.errors import InvalidConfig, UserError
from pipelines.options import RuntimeOptions, options_for_tpu_mode

DEFAULT_MACHINE_TYPES = {"cpu": "n1-standard-4", "gpu": "n1-standard-8", "tpu": "ct5lp-hightpu-1t"}
EXPLANATION_METHODS = ("sampled_shapley", "integrated_gradients", "xrai")
_NETWORK = re.compile(r"projects/[^/]+/global/networks/[^/]+")
_OTHER_TPUS = ("TPU_V2", "TPU_V3", "TPU_V4_POD", "TPU_V5_LITEPOD")


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a valid configuration resolves to: the exact image, args and machine that will be deployed."""

    config: DeployConfig
    image: Image
    options: RuntimeOptions
    container_args: tuple[str, ...]
    machine_spec: dict
    tpu_chips: int | None
    batching: Batching | None
    warnings: tuple[str, ...]


def validate(config: DeployConfig, catalog: Catalog) -> Plan:
    errors: list[UserError] = []

    def check(rule, *args):
        try:
            return rule(*args)
        except UserError as e:
            errors.append(e)
        except InvalidConfig as e:
            errors.extend(e.errors)

    as_of = check(_as_of, config)
    resolved = check(_resolve_image, config, catalog, as_of or dt.date.today())
    image = resolved.image if resolved else None
    machine_type = config.machine_type or DEFAULT_MACHINE_TYPES.get(config.accelerator, "")
    errors += _machine_problems(config, catalog, machine_type)
    options = check(_runtime_options, config)
    if options:
        errors += _runtime_problems(config, options, image)
    batching = check(_batching, config)
    errors += _deploy_problems(config)
    if errors:
        raise InvalidConfig(errors)
    spec = {"machine_type": machine_type}
    if config.accelerator_type:
        spec |= {"accelerator_type": config.accelerator_type, "accelerator_count": config.accelerator_count}
    return Plan(
        config=config,
        image=image,
        options=options,
        container_args=tuple(options.container_args()),
        machine_spec=spec,
        tpu_chips=catalog.tpu_machine_types.get(machine_type),
        batching=batching,
        warnings=resolved.warnings,
    )


def _as_of(config: DeployConfig) -> dt.date:
    try:
        return config.as_of_date()
    except ValueError:
        raise UserError("as_of", config.as_of, "is not a date", "write it as YYYY-MM-DD") from None


def _resolve_image(config: DeployConfig, catalog: Catalog, as_of: dt.date):
    version = config.container_version or catalog.newest_usable(config.accelerator, config.runtime, as_of)
    return catalog.resolve_image(version, config.accelerator, config.runtime, as_of, config.allow_unavailable_image)


def _machine_problems(config: DeployConfig, catalog: Catalog, machine_type: str) -> list[UserError]:
    """TPU v5e types carry their TPU and need a TPU image; GPUs need a machine family that carries them."""
    tpu_types = ", ".join(catalog.tpu_machine_types)
    found = []
    is_tpu_machine = machine_type in catalog.tpu_machine_types
    if not is_tpu_machine and (machine_type.startswith("ct") or "tpu" in machine_type):
        found.append(
            UserError(
                "machine_type",
                machine_type,
                "is not a Cloud TPU v5e machine type, the only TPU generation Vertex AI serves on",
                f"use {tpu_types}",
            )
        )
    if config.accelerator_type in _OTHER_TPUS:
        found.append(
            UserError(
                "accelerator_type",
                config.accelerator_type,
                "is not how a TPU is chosen: only Cloud TPU v5e is served, built into its machine type",
                f"remove it and set machine_type to one of {tpu_types}",
            )
        )
        return found
    if is_tpu_machine:
        if config.accelerator != "tpu":
            found.append(
                UserError(
                    "machine_type",
                    machine_type,
                    f"needs a TPU image, but accelerator={config.accelerator!r}",
                    "set accelerator='tpu' (a container_version with a TPU image)",
                )
            )
        for name in ("accelerator_type", "accelerator_count"):
            if getattr(config, name):
                found.append(
                    UserError(
                        name,
                        getattr(config, name),
                        f"cannot be set with machine_type={machine_type!r}: its TPU is built in",
                        f"remove {name}",
                    )
                )
        return found
    if config.accelerator == "tpu":
        if machine_type.startswith("ct") or "tpu" in machine_type:
            return found
        found.append(
            UserError(
                "machine_type", machine_type, "cannot run a TPU image", f"use a Cloud TPU v5e machine type: {tpu_types}"
            )
        )
    elif config.accelerator == "gpu":
        found += _gpu_problems(config, catalog, machine_type)
    elif config.accelerator == "cpu" and (config.accelerator_type or config.accelerator_count):
        name = "accelerator_type" if config.accelerator_type else "accelerator_count"
        found.append(
            UserError(
                name,
                getattr(config, name),
                "is set but accelerator='cpu' serves a CPU image",
                "set accelerator='gpu', or remove it",
            )
        )
    return found


def _gpu_problems(config: DeployConfig, catalog: Catalog, machine_type: str) -> list[UserError]:
    from google.cloud.aiplatform_v1.types import AcceleratorType

    gpus = [m.name for m in AcceleratorType if m.name.startswith("NVIDIA_")]
    if not config.accelerator_type:
        return [
            UserError("accelerator_type", "", "is required with accelerator='gpu'", f"use one of {', '.join(gpus)}")
        ]
    if config.accelerator_type not in gpus:
        return [
            UserError(
                "accelerator_type",
                config.accelerator_type,
                "is not a Vertex AI GPU type",
                f"use one of {', '.join(gpus)}",
            )
        ]
    found = []
    if config.accelerator_count < 1:
        found.append(
            UserError(
                "accelerator_count",
                config.accelerator_count,
                "must be at least 1 with a GPU",
                "set accelerator_count: 1",
            )
        )
    if config.runtime == "optimized" and config.accelerator_type in catalog.gpu_unsupported_by_optimized:
        name = catalog.gpu_unsupported_by_optimized[config.accelerator_type]
        found.append(
            UserError(
                "accelerator_type",
                config.accelerator_type,
                f"({name}) is not supported by the optimized TensorFlow runtime",
                "use NVIDIA_TESLA_T4 or a newer GPU, or runtime='standard'",
            )
        )
    family = max(
        (f for f in catalog.gpu_families if machine_type.startswith(f + "-") or machine_type == f),
        key=len,
        default=None,
    )
    if family is None:
        families = ", ".join(f"{f}-*" for f in catalog.gpu_families)
        found.append(UserError("machine_type", machine_type, "carries no GPU", f"use a GPU machine family: {families}"))
    elif config.accelerator_type not in catalog.gpu_families[family]:
        carried = ", ".join(catalog.gpu_families[family])
        found.append(
            UserError(
                "accelerator_type",
                config.accelerator_type,
                f"is not offered on machine_type={machine_type!r}",
                f"use {carried}, or another machine family",
            )
        )
    return found


def _runtime_options(config: DeployConfig) -> RuntimeOptions:
    flags = {
        n: getattr(config, n) for n in ("allow_precompilation", "allow_compression", "use_tfrt", "disable_optimizer")
    }
    if config.accelerator == "tpu":
        return options_for_tpu_mode(config.tpu_mode or "auto_partition", config.tpu_function_alias, **flags)
    problems = []
    if config.tpu_mode:
        problems.append(
            UserError(
                "tpu_mode",
                config.tpu_mode,
                f"applies only to accelerator='tpu', not {config.accelerator!r}",
                "remove tpu_mode, or set accelerator='tpu'",
            )
        )
    if config.tpu_function_alias:
        problems.append(
            UserError(
                "tpu_function_alias",
                config.tpu_function_alias,
                "applies only to tpu_mode='manual_partition' on accelerator='tpu'",
                "remove it",
            )
        )
    if problems:
        raise InvalidConfig(problems)
    return RuntimeOptions(**flags)


def _runtime_problems(config: DeployConfig, options: RuntimeOptions, image: Image | None) -> list[UserError]:
    found = []
    if config.tpu_function_alias and config.tpu_mode != "manual_partition" and config.accelerator == "tpu":
        found.append(
            UserError(
                "tpu_function_alias",
                config.tpu_function_alias,
                f"is only used with tpu_mode='manual_partition', not {config.tpu_mode or 'auto_partition'!r}",
                "set tpu_mode='manual_partition', or remove the alias",
            )
        )
    if config.runtime == "standard":
        for name in options.any_optimized_flag():
            found.append(
                UserError(
                    name,
                    getattr(config, name, True),
                    "is a flag of the optimized TensorFlow runtime; the standard tf2-* runtime does not accept it",
                    "set runtime='optimized', or remove it",
                )
            )
    if options.disable_optimizer:
        why = " (tpu_mode='preconverted' sets it)" if config.tpu_mode == "preconverted" else ""
        for name in ("allow_precompilation", "allow_compression"):
            if getattr(options, name):
                found.append(
                    UserError(
                        name,
                        True,
                        f"contradicts disable_optimizer=true{why}, which serves with no optimization",
                        f"remove {name}, or disable_optimizer",
                    )
                )
    if options.use_tfrt and image is not None:
        found += _tfrt_problems(config, options, image)
    method = config.explanation_method
    if method and method not in EXPLANATION_METHODS:
        found.append(
            UserError(
                "explanation_method",
                method,
                "is not a Vertex AI explanation method",
                f"use one of {', '.join(EXPLANATION_METHODS)}",
            )
        )
    elif method and method != "sampled_shapley" and config.runtime == "optimized":
        found.append(
            UserError(
                "explanation_method",
                method,
                "is not supported by the optimized TensorFlow runtime, which explains only with Sampled Shapley",
                "use explanation_method='sampled_shapley', or runtime='standard'",
            )
        )
    return found


def _tfrt_problems(config: DeployConfig, options: RuntimeOptions, image: Image) -> list[UserError]:
    version = tuple(int(p) for p in image.version.split(".")) if not image.nightly else None
    if image.accelerator == "cpu" and version == (2, 8):
        return [
            UserError(
                "use_tfrt",
                True,
                "is not available in the 2.8 CPU image (TFRT-CPU starts with 2.9)",
                "use container_version 2.9 or newer, or remove use_tfrt",
            )
        ]
    found = []
    if image.accelerator == "gpu":
        if version is not None and version < (2, 13):
            found.append(
                UserError(
                    "use_tfrt",
                    True,
                    f"needs a GPU image of 2.13 or newer, but container_version={image.version!r}",
                    "use 2.13 or newer, or nightly",
                )
            )
        if not options.allow_precompilation:
            found.append(
                UserError(
                    "use_tfrt", True, "on GPU needs allow_precompilation=true as well", "set allow_precompilation: true"
                )
            )
    return found


def _batching(config: DeployConfig) -> Batching | None:
    if not config.max_batch_size and not config.allowed_batch_sizes:
        if config.batch_timeout_micros:
            raise UserError(
                "batch_timeout_micros",
                config.batch_timeout_micros,
                "has no effect without server-side batching",
                "set max_batch_size (and allowed_batch_sizes)",
            )
        return None
    sizes = config.allowed_batch_sizes
    batching = Batching(config.max_batch_size or sizes[-1], sizes, config.batch_timeout_micros)
    if problems := batching.problems():
        raise InvalidConfig(problems)
    return batching


def _deploy_problems(config: DeployConfig) -> list[UserError]:
    found = []
    if config.accelerator not in ACCELERATORS:
        return found  # resolve_image already names it
    if config.min_replica_count < 1:
        found.append(
            UserError("min_replica_count", config.min_replica_count, "must be at least 1", "set min_replica_count: 1")
        )
    if config.max_replica_count < config.min_replica_count:
        found.append(
            UserError(
                "max_replica_count",
                config.max_replica_count,
                f"is below min_replica_count={config.min_replica_count}",
                f"set it to {config.min_replica_count} or more",
            )
        )
    if not 0 <= config.traffic_percentage <= 100:
        found.append(UserError("traffic_percentage", config.traffic_percentage, "is not a percentage", "use 0 to 100"))
    if config.endpoint_network and not _NETWORK.fullmatch(config.endpoint_network):
        found.append(
            UserError(
                "endpoint_network",
                config.endpoint_network,
                "is not a VPC network name",
                "write projects/PROJECT_NUMBER/global/networks/NETWORK",
            )
        )
    if config.staging_bucket and not config.staging_bucket.startswith("gs://"):
        found.append(
            UserError("staging_bucket", config.staging_bucket, "is not a Cloud Storage URI", "write gs://BUCKET")
        )
    for name in ("model_display_name", "endpoint_display_name"):
        if len(getattr(config, name)) > 128:
            found.append(
                UserError(name, getattr(config, name), "is longer than Vertex AI's 128 characters", "shorten it")
            )
    if config.deploy_timeout_seconds <= 0:
        found.append(
            UserError("deploy_timeout_seconds", config.deploy_timeout_seconds, "must be positive", "use e.g. 1800")
        )
    for name in ("smoke_atol", "smoke_rtol", "smoke_p99_latency_ms"):
        if getattr(config, name) < 0:
            found.append(UserError(name, getattr(config, name), "is negative", "use 0 or more"))
    if not 0 <= config.smoke_min_top1_agreement <= 1:
        found.append(
            UserError(
                "smoke_min_top1_agreement",
                config.smoke_min_top1_agreement,
                "is not a fraction",
                "use 0 to 1, e.g. 0.99",
            )
        )
    if config.smoke_requests < 1:
        found.append(UserError("smoke_requests", config.smoke_requests, "must be at least 1", "use e.g. 50"))
    return found
