"""Every rule a deploy configuration must meet before anything is created or billed.

Rules come from Vertex AI's "Optimized TensorFlow runtime" and "Deploy a model to Cloud TPU VMs" pages. Each rule
has one signature, `(config, catalog) -> problems`; machine facts come from the catalog. Every problem is
collected, so one run of `vsp validate` (or the pipeline's validate step) shows them all.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import re
from pathlib import Path

from vertex_serving.batching import Batching
from vertex_serving.catalog import ACCELERATORS, RUNTIMES, Catalog, Image, Resolved
from vertex_serving.config import DeployConfig
from vertex_serving.errors import InvalidConfig, UserError
from vertex_serving.options import RuntimeOptions, options_for_tpu_mode

EXPLANATION_METHODS = ("sampled_shapley", "integrated_gradients", "xrai")
OPTIMIZATION_MODES = ("as_configured", "measure")
_NETWORK = re.compile(r"projects/[^/]+/global/networks/[^/]+")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]")  # Cloud Storage bucket names
# Project IDs: 6 to 30 lowercase letters, digits and hyphens, a letter first; a domain may prefix it (example.com:id).
_PROJECT = re.compile(r"(?:[a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]+")


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
    """Runs every rule; raises InvalidConfig listing each problem, else returns what will be deployed."""
    errors = choice_rule(config, catalog)
    # An unknown accelerator or runtime is named once, not again by every rule that reads it.
    errors += [problem for rule in RULES if not (errors and rule in _READ_CHOICES) for problem in rule(config, catalog)]
    if errors:
        raise InvalidConfig(errors)
    resolved = _attempt(_resolve_image, config, catalog)
    options = _attempt(_runtime_options, config)
    machine_type = _machine_type(config, catalog)
    spec = {"machine_type": machine_type}
    if config.accelerator_type:
        spec |= {"accelerator_type": config.accelerator_type, "accelerator_count": config.accelerator_count}
    return Plan(
        config=config,
        image=resolved.image,
        options=options,
        container_args=tuple(options.container_args()),
        machine_spec=spec,
        tpu_chips=catalog.tpu_chips(machine_type),
        batching=_attempt(_batching, config),
        warnings=resolved.warnings,
    )


def _attempt(step, *args):
    """A step's value, or its problems raised as InvalidConfig."""
    try:
        return step(*args)
    except UserError as e:
        raise InvalidConfig([e]) from None


def _problems(step, *args) -> list[UserError]:
    """The problems a step raises, as a list (none when it returns)."""
    try:
        step(*args)
    except UserError as e:
        return [e]
    except InvalidConfig as e:
        return list(e.errors)
    return []


# The rules ---------------------------------------------------------------------------------------------------


def choice_rule(config: DeployConfig, catalog: Catalog) -> list[UserError]:
    """`accelerator` and `runtime` choose the image, the machine and the flags: checked before the rules that read them."""
    found = []
    for name, allowed in (("accelerator", ACCELERATORS), ("runtime", RUNTIMES)):
        value = getattr(config, name)
        if value not in allowed:
            close = difflib.get_close_matches(value.strip().lower(), allowed, n=1)
            fix = f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(allowed)}"
            found.append(UserError(name, value, f"is not one of {', '.join(allowed)}", fix))
    return found


def place_rule(config: DeployConfig, catalog: Catalog) -> list[UserError]:
    """The project, the region and the files named for the run exist in the form Google Cloud accepts."""
    found = []
    if config.project and not _PROJECT.fullmatch(config.project):  # unset, `vsp run --project` may give it
        found.append(
            UserError(
                "project",
                config.project,
                "is not a Google Cloud project ID (6 to 30 lowercase letters, digits or hyphens, a letter first)",
                "use the ID `gcloud projects list` shows, not the project's display name",
            )
        )
    if catalog.locations and config.location not in catalog.locations:
        close = difflib.get_close_matches(config.location, catalog.locations, n=1)
        found.append(
            UserError(
                "location",
                config.location,
                "is not a region where Vertex AI serves predictions",
                f"did you mean {close[0]}?" if close else "use one like us-central1 or europe-west4",
            )
        )
    if config.staging_bucket:
        bucket = config.staging_bucket.removeprefix("gs://").split("/")[0]
        if not config.staging_bucket.startswith("gs://") or not _BUCKET.fullmatch(bucket):
            found.append(
                UserError("staging_bucket", config.staging_bucket, "is not a Cloud Storage URI", "write gs://BUCKET")
            )
    found += _samples_problems(config.sample_instances_uri)
    return found


def _samples_problems(uri: str) -> list[UserError]:
    """The samples the smoke test replays: a gs:// object (read by convert), a local file checked here, or none
    (convert then makes synthetic instances from the signature)."""
    fix = "give a JSON Lines file of instances: gs://BUCKET/samples.jsonl, or a local path"
    if not uri:
        return []
    if uri.startswith("gs:") or "://" in uri:
        bucket, _, path = uri.removeprefix("gs://").partition("/")
        if not uri.startswith("gs://") or not _BUCKET.fullmatch(bucket) or not path.strip("/"):
            return [UserError("sample_instances_uri", uri, "is not a gs://BUCKET/PATH URI of a file", fix)]
        return []
    if not Path(uri).expanduser().is_file():
        return [UserError("sample_instances_uri", uri, "is not a file on this machine", fix)]
    return []


def date_rule(config: DeployConfig, catalog: Catalog) -> list[UserError]:
    return _problems(_as_of, config)


def image_rule(config: DeployConfig, catalog: Catalog) -> list[UserError]:
    return _problems(_resolve_image, config, catalog)


def machine_rule(config: DeployConfig, catalog: Catalog) -> list[UserError]:
    """TPU v5e types carry their TPU and need a TPU image; GPUs need a machine family that carries them."""
    machine_type = _machine_type(config, catalog)
    tpu_types = ", ".join(catalog.tpu_machine_types)
    found = []
    is_tpu_machine = catalog.tpu_chips(machine_type) is not None
    if not is_tpu_machine and catalog.is_cloud_tpu(machine_type):
        found.append(
            UserError(
                "machine_type",
                machine_type,
                "is not a Cloud TPU v5e machine type, the only TPU generation Vertex AI serves on",
                f"use {tpu_types}",
            )
        )
        return found
    if config.accelerator_type in catalog.tpu_accelerators_not_served:
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
        if catalog.is_cloud_tpu(machine_type):
            return found
        found.append(
            UserError(
                "machine_type", machine_type, "cannot run a TPU image", f"use a Cloud TPU v5e machine type: {tpu_types}"
            )
        )
    elif not catalog.known_machine_type(machine_type):
        close = difflib.get_close_matches(machine_type, catalog.machine_types(), n=1)
        found.append(
            UserError(
                "machine_type",
                machine_type,
                "is not a machine type Vertex AI serves predictions on",
                f"did you mean {close[0]}?" if close else f"use one like {catalog.default_machine_types.get('cpu')}",
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


def runtime_rule(config: DeployConfig, catalog: Catalog) -> list[UserError]:
    """The runtime flags: where they apply, what contradicts what, and what the chosen image supports."""
    if problems := _problems(_runtime_options, config):
        return problems
    options = _runtime_options(config)
    try:
        image = _resolve_image(config, catalog).image
    except UserError:
        image = None  # image_rule names it
    return _runtime_problems(config, options, image)


def batching_rule(config: DeployConfig, catalog: Catalog) -> list[UserError]:
    return _problems(_batching, config)


def deploy_rule(config: DeployConfig, catalog: Catalog) -> list[UserError]:
    return _deploy_problems(config)


def model_rule(config: DeployConfig, catalog: Catalog) -> list[UserError]:
    """`model_dir` names a SavedModel: a gs:// folder (read at the start of convert), or a local folder that is
    checked here, since a local path can only be read where this check runs."""
    value = config.model_dir
    fix = "give the SavedModel's folder: gs://BUCKET/PATH, or a local path"
    if not value.strip():
        return [UserError("model_dir", value, "is empty", fix)]
    if value.startswith("gs:") or "://" in value:
        bucket, _, path = value.removeprefix("gs://").partition("/")
        if not value.startswith("gs://") or not _BUCKET.fullmatch(bucket) or not path.strip("/"):
            return [UserError("model_dir", value, "is not a gs://BUCKET/PATH URI of a folder", fix)]
        return []
    local = Path(value).expanduser()
    if ".." in local.parts:
        return [
            UserError(
                "model_dir", value, "climbs out of the folder it names with '..'", "give the SavedModel folder itself"
            )
        ]
    if not local.is_dir():
        return [UserError("model_dir", value, "is not a folder on this machine", fix)]
    if not any((local / name).is_file() for name in ("saved_model.pb", "saved_model.pbtxt")):
        return [
            UserError(
                "model_dir",
                value,
                "holds no saved_model.pb or saved_model.pbtxt",
                "give the folder of a SavedModel export",
            )
        ]
    return []


def optimization_rule(config: DeployConfig, catalog: Catalog) -> list[UserError]:
    """The optimize step's settings: a known mode, a speedup that means faster, and flags to try."""
    found = []
    if config.optimization not in OPTIMIZATION_MODES:
        found.append(
            UserError(
                "optimization",
                config.optimization,
                "is not an optimization mode",
                f"use one of {', '.join(OPTIMIZATION_MODES)}",
            )
        )
    if config.min_speedup < 1.0:
        found.append(
            UserError(
                "min_speedup",
                config.min_speedup,
                "is below 1, which would keep a flag that makes the model slower",
                "use 1.0 or more, e.g. 1.10",
            )
        )
    if config.optimization == "measure" and config.runtime == "standard":
        found.append(
            UserError(
                "optimization",
                config.optimization,
                "has nothing to measure with runtime='standard', which takes none of the optimized runtime's flags",
                "set runtime='optimized', or optimization='as_configured'",
            )
        )
    return found


RULES = (
    place_rule,
    date_rule,
    image_rule,
    machine_rule,
    runtime_rule,
    batching_rule,
    deploy_rule,
    model_rule,
    optimization_rule,
)
_READ_CHOICES = (image_rule, machine_rule, runtime_rule)


# What the rules share ----------------------------------------------------------------------------------------


def _machine_type(config: DeployConfig, catalog: Catalog) -> str:
    return config.machine_type or catalog.default_machine_types.get(config.accelerator, "")


def _resolve_image(config: DeployConfig, catalog: Catalog) -> Resolved:
    try:
        as_of = config.as_of_date()
    except ValueError:
        as_of = dt.date.today()  # date_rule names it
    version = config.container_version or catalog.newest_usable(config.accelerator, config.runtime, as_of)
    return catalog.resolve_image(version, config.accelerator, config.runtime, as_of, config.allow_unavailable_image)


def _as_of(config: DeployConfig) -> dt.date:
    try:
        return config.as_of_date()
    except ValueError:
        raise UserError("as_of", config.as_of, "is not a date", "write it as YYYY-MM-DD") from None


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
    # Unset, the largest allowed size is the maximum; a bad size is named once, for allowed_batch_sizes.
    batching = Batching(config.max_batch_size or max(sizes[-1], 1), sizes, config.batch_timeout_micros)
    if problems := batching.problems():
        raise InvalidConfig(problems)
    return batching


def _deploy_problems(config: DeployConfig) -> list[UserError]:
    found = []
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
    if not 0 <= config.canary_percentage <= 100:
        found.append(
            UserError("canary_percentage", config.canary_percentage, "is not a percentage", "use 0 (no canary) to 99")
        )
    elif 0 < config.traffic_percentage <= config.canary_percentage:
        found.append(
            UserError(
                "canary_percentage",
                config.canary_percentage,
                f"is not below traffic_percentage={config.traffic_percentage}, so there is no step to take after it",
                f"set canary_percentage below {config.traffic_percentage}, or 0 for no canary step",
            )
        )
    if config.endpoint_network and not _NETWORK.fullmatch(config.endpoint_network):
        found.append(
            UserError(
                "endpoint_network",
                config.endpoint_network,
                "is not a VPC network name",
                "write projects/PROJECT_NUMBER/global/networks/NETWORK",
            )
        )
    if config.api_endpoint and not config.api_endpoint.startswith(("http://", "https://")):
        found.append(
            UserError(
                "api_endpoint",
                config.api_endpoint,
                "has no scheme",
                f"write https://{config.api_endpoint} (or http:// for localvertex), or leave it empty for Vertex AI",
            )
        )
    for name in ("model_display_name", "endpoint_display_name"):
        if not getattr(config, name).strip():
            found.append(
                UserError(
                    name,
                    getattr(config, name),
                    "is empty, so the SDK would name it after the clock and the next run would make another one",
                    f"set {name}, e.g. {name}: digits",
                )
            )
        elif len(getattr(config, name)) > 128:
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
