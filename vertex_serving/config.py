"""A deploy configuration: the pipeline's parameters by name, read from a YAML or TOML file.

`DeployConfig` is the one list of the deploy pipeline's parameters: the pipeline signature and the validate step's
inputs derive from (or are tested against) its fields, and `to_parameters` / `from_parameters` are the only
encoding of its values for a pipeline run. An unknown key or a value of the wrong type is refused before anything
runs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path

import yaml

from vertex_serving.errors import InvalidConfig, UserError

REQUIRED = {"required": True}  # field metadata: the pipeline has no default for it


@dataclasses.dataclass(frozen=True)
class DeployConfig:
    """Every parameter of the deploy pipeline, with the defaults a first run should get."""

    # Where Vertex AI is; an empty api_endpoint means Google's own for `location`.
    project: str = dataclasses.field(default="", metadata=REQUIRED)
    location: str = "us-central1"
    api_endpoint: str = ""
    staging_bucket: str = ""
    # The model and how it is served.
    model_dir: str = dataclasses.field(default="", metadata=REQUIRED)
    model_display_name: str = dataclasses.field(default="", metadata=REQUIRED)
    version_description: str = ""  # the new model version's description (the retrain gate records its score here)
    catalog: str = ""  # TOML text, a file or a gs:// URI merged over the packaged runtime catalog
    container_version: str = ""
    accelerator: str = "cpu"
    runtime: str = "optimized"
    allow_precompilation: bool = False
    allow_compression: bool = False
    use_tfrt: bool | None = None
    disable_optimizer: bool = False
    tpu_mode: str = ""
    tpu_function_alias: str = ""
    allowed_batch_sizes: tuple[int, ...] = ()
    max_batch_size: int = 0
    batch_timeout_micros: int = 0
    explanation_method: str = ""
    allow_unavailable_image: bool = False
    as_of: str = ""
    # Where it is deployed.
    machine_type: str = ""
    accelerator_type: str = ""
    accelerator_count: int = 0
    min_replica_count: int = 1
    max_replica_count: int = 1
    endpoint_display_name: str = dataclasses.field(default="", metadata=REQUIRED)
    endpoint_network: str = ""
    traffic_percentage: int = 100
    canary_percentage: int = 10  # the share of the smoke-tested step before traffic_percentage; 0: no canary step
    deploy_timeout_seconds: float = 1800.0
    undeploy_zero_traffic: bool = False  # after a passed smoke test, retire this model's versions left with 0%
    # The smoke test that decides whether the new model keeps its traffic.
    sample_instances_uri: str = ""
    smoke_atol: float = 1e-4
    smoke_rtol: float = 1e-3
    smoke_min_top1_agreement: float = 0.99
    smoke_requests: int = 50
    smoke_p99_latency_ms: float = 0.0
    # The optimize step: "measure" tries the runtime's optimizations on this model and keeps only those faster by
    # min_speedup within the smoke test's tolerances; "as_configured" deploys the flags as written.
    optimization: str = "as_configured"
    min_speedup: float = 1.1

    def to_parameters(self) -> dict:
        """The values as pipeline parameters: tuples as lists, an unset use_tfrt as "" (a run has no null)."""
        values = dataclasses.asdict(self)
        for name, kind in _FIELD_KINDS.items():
            if kind == "optional_bool":
                values[name] = "" if values[name] is None else str(values[name]).lower()
            elif kind == "int_list":
                values[name] = list(values[name])
        return values

    @classmethod
    def from_parameters(cls, values: Mapping[str, object]) -> DeployConfig:
        """The inverse of `to_parameters`; list items arrive as doubles (protobuf Values) and are read back."""
        decoded = dict(values)
        for name, kind in _FIELD_KINDS.items():
            if name not in decoded:
                continue
            value = decoded[name]
            if kind == "optional_bool" and isinstance(value, str):
                decoded[name] = {"": None, "true": True, "false": False}.get(value.lower(), value)
            elif kind == "int_list" and isinstance(value, list | tuple):
                decoded[name] = [int(v) if isinstance(v, float) and v.is_integer() else v for v in value]
        return cls.from_mapping(decoded)

    @classmethod
    def parameters(cls) -> list[tuple[str, type, object, bool]]:
        """(name, pipeline type, default, required) of each pipeline parameter, required ones first."""
        found = []
        for f in dataclasses.fields(cls):
            default = cls().to_parameters()[f.name]
            found.append((f.name, _PIPELINE_TYPES[_FIELD_KINDS[f.name]], default, f.metadata.get("required", False)))
        return sorted(found, key=lambda p: not p[3])

    def as_of_date(self) -> dt.date:
        return dt.date.fromisoformat(self.as_of) if self.as_of else dt.date.today()

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> DeployConfig:
        """Checks every key and type at once; raises InvalidConfig listing each problem."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        errors, accepted = [], {}
        for key, value in values.items():
            if key not in fields:
                close = difflib.get_close_matches(key, fields, n=1)
                fix = f"did you mean {close[0]}?" if close else "see `vsp validate --help` for the parameters"
                errors.append(UserError(key, value, "is not a parameter of the deploy pipeline", fix))
                continue
            try:
                accepted[key] = _coerce(key, value, hints[key])
            except UserError as e:
                errors.append(e)
        if errors:
            raise InvalidConfig(errors)
        return cls(**accepted)


def _kind(hint: object) -> str:
    allowed = set(typing.get_args(hint)) if isinstance(hint, types.UnionType) else {hint}
    if typing.get_origin(hint) is tuple:
        return "int_list"
    if allowed == {bool, type(None)}:
        return "optional_bool"
    (only,) = allowed
    return only.__name__


_FIELD_KINDS = {name: _kind(hint) for name, hint in typing.get_type_hints(DeployConfig).items()}
_PIPELINE_TYPES = {"str": str, "bool": bool, "int": int, "float": float, "int_list": list, "optional_bool": str}


# How a run is submitted, beside the pipeline's parameters in the same file; not parameters themselves.
SUBMISSION_KEYS = ("pipeline_root", "service_account", "network")


def load_config(path: str | Path) -> DeployConfig:
    """Reads a YAML (.yaml/.yml) or TOML (.toml) file of parameters (and submission settings, left aside)."""
    values = read_config_file(path)
    return DeployConfig.from_mapping({k: v for k, v in values.items() if k not in SUBMISSION_KEYS})


def load_submission(path: str | Path) -> dict[str, str]:
    """The submission settings of a config file: pipeline_root, service_account and network."""
    values = read_config_file(path)
    found = {k: values[k] for k in SUBMISSION_KEYS if k in values}
    for key, value in found.items():
        if not isinstance(value, str):
            raise UserError(key, value, f"is a {type(value).__name__}, not a string", f"write {key} as a string")
    return found


def read_config_file(path: str | Path) -> Mapping:
    """The mapping a YAML or TOML config file holds."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise UserError(
            "config", str(path), f"cannot be read ({e.strerror})", "give the path of a YAML or TOML file"
        ) from None
    try:
        if path.suffix == ".toml":
            values = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            values = yaml.load(text, Loader=_UniqueKeys) or {}  # a SafeLoader that refuses repeated keys
        else:
            raise UserError("config", str(path), "has an unknown file type", "name it *.yaml, *.yml or *.toml")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as e:
        raise UserError(
            "config", str(path), f"is not valid {path.suffix[1:].upper()} ({e})".replace("\n", " "), "fix the syntax"
        ) from None
    if not isinstance(values, Mapping):
        raise UserError(
            "config", str(path), "is not a mapping of parameter names to values", "write `name: value` lines"
        )
    return values


def _coerce(key: str, value: object, hint: object) -> object:
    """The value in the field's type; YAML/TOML numbers for versions are refused, not guessed."""
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in allowed:
        return None
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, list | tuple) or not all(type(v) is int for v in value):
            raise UserError(key, value, "is not a list of whole numbers", f"write {key}: [1, 8, 32]")
        return tuple(value)
    if str in allowed:
        if isinstance(value, dt.date):
            return value.isoformat()
        if isinstance(value, float | int) and not isinstance(value, bool):
            if isinstance(value, float):  # YAML has already turned 2.10 into 2.1: say so, and what was meant
                problem = "is a number, not text, and numbers lose trailing zeros (2.10 reads as 2.1)"
                meant = f'"{value}" (or "{value}0" if you wrote {value}0)'
            else:
                problem, meant = "is a number, not text", f'"{value}"'
            raise UserError(key, value, problem, f"quote it: {key}: {meant}")
        if isinstance(value, str):
            return value
    if bool in allowed and isinstance(value, bool):
        return value
    if int in allowed and type(value) is int:
        return value
    if float in allowed and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if float in allowed and isinstance(value, str) and _is_float(value):
        raise UserError(
            key,
            value,
            "is text: YAML reads a number such as 1e-4 as text unless it has a dot",
            f"write {key}: {_with_dot(float(value))}",
        )
    if int in allowed and isinstance(value, float) and value.is_integer():
        raise UserError(key, value, "is a float, not an int", f"write {key}: {int(value)}")
    if int in allowed and isinstance(value, str) and value.strip().lstrip("-").isdigit():
        raise UserError(key, value, "is text, not an int", f"write {key}: {int(value)} (without quotes)")
    expected = " or ".join("null" if a is type(None) else a.__name__ for a in allowed)
    raise UserError(key, value, f"is {_a(type(value).__name__)}, not {_a(expected)}", f"write {key} as {_a(expected)}")


def _a(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


def _with_dot(number: float) -> str:
    """A float as YAML reads it back as a float: 1e-4 -> 1.0e-4."""
    mantissa, exponent = f"{number:e}".split("e")
    mantissa = mantissa.rstrip("0")
    return f"{mantissa}0e{int(exponent)}" if mantissa.endswith(".") else f"{mantissa}e{int(exponent)}"


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class _UniqueKeys(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice instead of keeping the last value silently."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise UserError(
                    "config", key, f"is given twice (line {key_node.start_mark.line + 1})", "keep one of them"
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)
