"""Which models a server serves and which versions of each: TF Serving's `--model_config_file` and version policies.

The file is a `tensorflow.serving.ModelServerConfig` text proto (TF Serving's "serving config" guide); it is
checked with the rules of TF Serving's ServerCore, and versions are picked from a model's numbered folders as its
FileSystemStoragePathSource picks them (latest N, all, or specific versions).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from vertex_serving.errors import UserError
from vertex_serving.tfserving.errors import ServingError

log = logging.getLogger("modelserver")
PLATFORM = "tensorflow"  # the only platform TF Serving's default platform config map knows
CONFIG_EXAMPLE = 'model_config_list { config { name: "m" base_path: "/models/m" model_platform: "tensorflow" } }'


@dataclass(frozen=True)
class ModelConfig:
    name: str
    base_path: str
    policy: str = "latest"  # latest | all | specific
    num_versions: int = 1  # for latest
    versions: tuple[int, ...] = ()  # for specific
    labels: dict[str, int] = field(default_factory=dict)


def read_model_config(path: Path, allow_labels_for_unavailable: bool = False) -> list[ModelConfig]:
    """The models of a ModelServerConfig file, refused where TF Serving's server refuses to start on it."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    flag = "--model_config_file"
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise UserError(flag, str(path), f"cannot be read ({e.strerror})", "give the path of a readable file") from None
    message = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as e:
        raise UserError(
            flag,
            str(path),
            f"is not valid: Error parsing text-format tensorflow.serving.ModelServerConfig: {e}",
            f"write it like {CONFIG_EXAMPLE}",
        ) from None
    kind = message.WhichOneof("config")
    if kind == "custom_model_config":
        raise UserError(
            flag,
            str(path),
            "uses custom_model_config: ModelServer does not yet support custom model config.",
            "use model_config_list",
        )
    if kind is None or not message.model_config_list.config:
        raise UserError(flag, str(path), "lists no models", f"write it like {CONFIG_EXAMPLE}")
    configs = [_model(c) for c in message.model_config_list.config]
    seen: set[str] = set()
    for config in configs:
        if config.name in seen:
            raise UserError(
                flag,
                str(path),
                f"is invalid: Illegal to list model {config.name} multiple times in config list",
                "give each model its own name",
            )
        seen.add(config.name)
        if config.labels and not allow_labels_for_unavailable:
            labels = dict(sorted(config.labels.items()))
            version = next(iter(labels.values()))
            raise UserError(
                "version_labels",
                labels,
                f"cannot be set at startup: Request to assign label to version {version} of model {config.name}, "
                "which is not currently available for inference",
                "start the server with --allow_version_labels_for_unavailable_models",
            )
    return configs


def _model(config) -> ModelConfig:
    from tensorflow_serving.config import model_server_config_pb2

    name = config.name
    if config.model_type != model_server_config_pb2.MODEL_TYPE_UNSPECIFIED:
        if config.model_platform:
            _refuse(
                name,
                "Illegal setting both ModelServerConfig::model_type (deprecated) and "
                f"ModelServerConfig::model_platform, model name is {name}",
                "remove model_type",
            )
        if config.model_type != model_server_config_pb2.TENSORFLOW:
            _refuse(
                name,
                f"ModelServerConfig::model_type choice {config.model_type} not supported.",
                f'use model_platform: "{PLATFORM}"',
            )
        platform = PLATFORM
    else:
        platform = config.model_platform
    if not platform:
        _refuse(
            name,
            "Illegal setting neither ModelServerConfig::model_type (deprecated) nor "
            f"ModelServerConfig::model_platform, model name is {name}",
            f'add model_platform: "{PLATFORM}"',
        )
    if platform != PLATFORM:
        _refuse(name, f"Model {name} requests unsupported platform {platform}", f'use model_platform: "{PLATFORM}"')
    if _is_relative(config.base_path):
        _refuse(
            name,
            f"Expected model {name} to have an absolute path or URI; got base_path()={config.base_path}",
            "give an absolute path or a gs:// URI",
        )
    policy = config.model_version_policy
    kind = policy.WhichOneof("policy_choice") or "latest"
    return ModelConfig(
        name=name,
        base_path=config.base_path,
        policy=kind,
        num_versions=max(policy.latest.num_versions, 1),
        versions=tuple(policy.specific.versions),
        labels=dict(config.version_labels),
    )


def _refuse(name: str, problem: str, fix: str) -> None:
    raise UserError(f"model_config_list.config[name={name!r}]", name, f"is invalid: {problem}", fix)


def _is_relative(uri: str) -> bool:
    parsed = urlparse(uri)
    return not parsed.scheme and not parsed.netloc and not uri.startswith("/")


def aspired_versions(name: str, base: Path, config: ModelConfig) -> list[tuple[int, Path]]:
    """The versions the policy serves, newest first, from `base`'s numbered folders.

    A folder that is itself a SavedModel is version 1 (how Vertex AI hands a model to its TF containers).
    """
    if not base.is_dir():
        raise ServingError("NOT_FOUND", f"Could not find base path {base} for servable {name}")
    if (base / "saved_model.pb").exists() or (base / "saved_model.pbtxt").exists():
        found = {1: base}
    else:
        found = {int(p.name): p for p in sorted(base.iterdir()) if p.is_dir() and re.fullmatch(r"\d+", p.name)}
    if config.policy == "all":
        chosen = sorted(found, reverse=True)
    elif config.policy == "specific":
        if not config.versions:
            log.warning("No specific versions requested for servable %s.", name)
        for version in config.versions:
            if version not in found:
                log.warning(
                    "Version %d of servable %s, which was requested to be served as a 'specific' version in the "
                    "servable's version policy, was not found in the file system",
                    version,
                    name,
                )
        chosen = sorted((v for v in set(config.versions) if v in found), reverse=True)
    else:
        chosen = sorted(found, reverse=True)[: config.num_versions]
    if not chosen:
        raise ServingError(
            "NOT_FOUND",
            f"No versions of servable {name} found under base path {base}. Did you forget to name your leaf "
            "directory as a number (eg. '/1/')?",
        )
    return [(v, found[v]) for v in chosen]
