"""Typed options of the optimized TensorFlow runtime, rendered as the container args Vertex AI documents.

The forms are exactly those of Vertex AI's "Optimized TensorFlow runtime" and "Deploy a model to Cloud TPU VMs"
pages (`--allow_precompilation=true`, `--saved_model_tags='serve,tpu'`, `--converter_options_string='...'`):
the serving container receives them verbatim, with no shell to strip the quotes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from google.protobuf import text_format

from vertex_serving.errors import UserError
from vertex_serving.protos import ConverterOptions

TPU_MODES = ("auto_partition", "manual_partition", "preconverted")
PRECONVERTED_TAGS = ("serve", "tpu")
BOOL_FLAGS = ("allow_precompilation", "allow_compression", "use_tfrt", "disable_optimizer")
_ALIAS = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")


@dataclass(frozen=True)
class RuntimeOptions:
    """What the optimized runtime is told at start-up. `use_tfrt=None` leaves the image's default."""

    allow_precompilation: bool = False
    allow_compression: bool = False
    use_tfrt: bool | None = None
    disable_optimizer: bool = False
    saved_model_tags: tuple[str, ...] = ()
    tpu_function_aliases: tuple[str, ...] = field(default=())

    def container_args(self) -> list[str]:
        args = []
        if self.saved_model_tags:
            args.append(f"--saved_model_tags='{','.join(self.saved_model_tags)}'")
        for name in ("disable_optimizer", "allow_precompilation", "allow_compression"):
            if getattr(self, name):
                args.append(f"--{name}=true")
        if self.use_tfrt is not None:
            args.append(f"--use_tfrt={str(self.use_tfrt).lower()}")
        if self.tpu_function_aliases:
            args.append(f"--converter_options_string='{render_converter_options(self.tpu_function_aliases)}'")
        return args

    def any_optimized_flag(self) -> list[str]:
        """Names of the set options that only the optimized runtime understands."""
        names = [n for n in BOOL_FLAGS if getattr(self, n) not in (False, None)]
        if self.saved_model_tags:
            names.append("saved_model_tags")
        if self.tpu_function_aliases:
            names.append("tpu_function_alias")
        return names


def options_for_tpu_mode(tpu_mode: str, tpu_function_alias: str = "", **flags) -> RuntimeOptions:
    """The three ways Vertex AI accepts a TensorFlow model on Cloud TPU, as runtime options.

    preconverted: the Cloud TPU Inference Converter already ran (`serve,tpu` tags, optimizer off);
    manual_partition: the runtime converts the function exported under `tpu_function_alias`;
    auto_partition: the runtime partitions the model itself, with no extra args.
    """
    if tpu_mode not in TPU_MODES:
        raise UserError("tpu_mode", tpu_mode, "is not a TPU mode", f"use one of {', '.join(TPU_MODES)}")
    if tpu_mode == "preconverted":
        return RuntimeOptions(**{**flags, "saved_model_tags": PRECONVERTED_TAGS, "disable_optimizer": True})
    if tpu_mode == "manual_partition":
        check_alias(tpu_function_alias)
        return RuntimeOptions(**flags, tpu_function_aliases=(tpu_function_alias,))
    return RuntimeOptions(**flags)


def check_alias(alias: str) -> None:
    if not alias:
        raise UserError(
            "tpu_function_alias",
            alias,
            "is empty but tpu_mode='manual_partition' needs it",
            "give the alias the model was exported with (tf.saved_model.SaveOptions(function_aliases={NAME: fn}))",
        )
    if not _ALIAS.fullmatch(alias):
        raise UserError(
            "tpu_function_alias", alias, "is not a plain function name", "use letters, digits, '_', '.' or '-'"
        )


def render_converter_options(aliases: tuple[str, ...]) -> str:
    message = ConverterOptions()
    for alias in aliases:
        message.tpu_functions.add(function_alias=alias)
    return text_format.MessageToString(message, as_one_line=True)


def parse_converter_options(text: str) -> tuple[str, ...]:
    """The TPU function aliases of a `converter_options_string`; anything but `tpu_functions` is refused."""
    try:
        message = text_format.Parse(_unquote(text), ConverterOptions())
    except text_format.ParseError as e:
        raise UserError(
            "converter_options_string",
            text,
            f"is not accepted by Vertex AI ({e})",
            'only tpu_functions { function_alias: "NAME" } is supported',
        ) from None
    return tuple(f.function_alias for f in message.tpu_functions)


def parse_container_args(args: list[str]) -> tuple[RuntimeOptions, list[str]]:
    """Reads the optimized runtime's flags back from container args; returns the options and the other args."""
    values: dict[str, object] = {}
    rest = []
    for arg in args:
        name, sep, raw = arg.removeprefix("--").partition("=")
        if not arg.startswith("--") or not sep:
            rest.append(arg)
        elif name in BOOL_FLAGS:
            values[name] = _parse_bool(name, raw)
        elif name == "saved_model_tags":
            values[name] = tuple(t.strip() for t in _unquote(raw).split(",") if t.strip())
        elif name == "converter_options_string":
            values["tpu_function_aliases"] = parse_converter_options(raw)
        else:
            rest.append(arg)
    return RuntimeOptions(**values), rest


def _parse_bool(name: str, raw: str) -> bool:
    value = _unquote(raw).lower()
    if value not in ("true", "false"):
        raise UserError(name, raw, "is not a boolean flag value", f"write --{name}=true or --{name}=false")
    return value == "true"


def _unquote(text: str) -> str:
    """Container args reach the server without a shell, so the documented single quotes arrive literally."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text
