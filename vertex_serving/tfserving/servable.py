"""A loaded SavedModel served the way TF Serving serves it: through a session, by signature, by tensor name.

TF Serving loads every SavedModel (TF1 and TF2) as a session bundle and runs signatures with Session::Run;
doing the same here serves TF1 models that `tf.saved_model.load` cannot, and keeps TF Serving's behaviour on
shapes and dtypes. The optimized runtime's flags map onto session options where they have a CPU meaning.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vertex_serving.options import RuntimeOptions
from vertex_serving.tfserving.errors import ServingError

log = logging.getLogger("modelserver")
DEFAULT_SIGNATURE = "serving_default"


@dataclass(frozen=True)
class TensorSpec:
    key: str  # the signature's name for it
    tensor: str  # the graph tensor, `name:0`
    dtype: np.dtype
    dtype_name: str  # DT_FLOAT ...
    shape: tuple[int, ...] | None  # -1 for unknown dims; None for unknown rank


@dataclass
class Signature:
    name: str
    method: str
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]
    defaults: dict[str, np.ndarray] = field(default_factory=dict)
    _callable: object = None

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Runs the signature on complete inputs (by signature key); errors come back as TF Serving's."""
        import tensorflow as tf

        try:
            results = self._callable(*(feeds[k] for k in self.inputs))
        except tf.errors.OpError as e:
            raise ServingError(
                _STATUS_BY_OP_ERROR.get(type(e).__name__, "INTERNAL"), e.message.split("\n")[0]
            ) from None
        return dict(zip(self.outputs, results, strict=True))


def session_config(options: RuntimeOptions):
    """Session options for the runtime flags that have a meaning on this CPU."""
    import tensorflow as tf

    # Ops run in the calling thread (negative inter-op threads), as a serving graph is a chain of ops: this saves
    # a thread hand-off per op. Kernels still use the intra-op pool.
    config = tf.compat.v1.ConfigProto(inter_op_parallelism_threads=-1)
    graph = config.graph_options
    if options.disable_optimizer:
        graph.rewrite_options.disable_meta_optimizer = True
        graph.optimizer_options.opt_level = tf.compat.v1.OptimizerOptions.L0
    if options.allow_precompilation:
        graph.optimizer_options.global_jit_level = tf.compat.v1.OptimizerOptions.ON_1
    if options.allow_compression:
        graph.rewrite_options.auto_mixed_precision_onednn_bfloat16 = 1  # RewriterConfig.ON
    return config


def cpu_has_bf16() -> bool:
    """Whether this CPU computes in bfloat16 (AVX512-BF16 or AMX): without it, allow_compression has no effect here."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def enable_xla_on_cpu() -> None:
    """XLA auto-clustering skips CPU kernels unless asked; must run before TensorFlow reads its flags."""
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if "--tf_xla_cpu_global_jit" not in flags:
        os.environ["TF_XLA_FLAGS"] = f"{flags} --tf_xla_cpu_global_jit".strip()


class Servable:
    """One version of one model, loaded and ready to run."""

    def __init__(self, model_dir: Path, version: int, options: RuntimeOptions) -> None:
        import tensorflow as tf
        from tensorflow.python.saved_model import loader_impl

        self.path, self.version, self.options = model_dir, version, options
        tags = list(options.saved_model_tags or ("serve",))
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph, config=session_config(options))
        try:
            with self.graph.as_default():
                self.meta_graph = loader_impl.SavedModelLoader(str(model_dir)).load(self.session, tags)
        except RuntimeError as e:
            available = _tag_sets(model_dir)
            raise ServingError(
                "NOT_FOUND",
                f"SavedModel at {model_dir} has no MetaGraph with tags {','.join(tags)}: it has {available}; "
                "set --saved_model_tags to one of them",
            ) from e
        self._check_function_aliases()
        self.signatures = {
            name: self._signature(name, sig)
            for name, sig in self.meta_graph.signature_def.items()
            if not name.startswith("__")
        }
        if not self.signatures:
            raise ServingError("FAILED_PRECONDITION", f"SavedModel at {model_dir} has no serving signatures")

    def signature(self, name: str | None) -> Signature:
        name = name or DEFAULT_SIGNATURE
        if name not in self.signatures:
            raise ServingError("INVALID_ARGUMENT", f'Serving signature name: "{name}" not found in signature def')
        return self.signatures[name]

    def close(self) -> None:
        self.session.close()

    def _signature(self, name: str, sig) -> Signature:
        from tensorflow.core.protobuf import config_pb2

        inputs = {k: _spec(k, v) for k, v in sorted(sig.inputs.items())}
        outputs = {k: _spec(k, v) for k, v in sorted(sig.outputs.items())}
        options = config_pb2.CallableOptions(
            feed=[s.tensor for s in inputs.values()], fetch=[s.tensor for s in outputs.values()]
        )
        # The callable feeds by tensor name with no client-side shape check, as Session::Run in TF Serving does.
        runner = self.session._make_callable_from_options(options)
        defaults = {k: _ndarray(v) for k, v in sig.defaults.items()} if hasattr(sig, "defaults") else {}
        return Signature(name, sig.method_name, inputs, outputs, defaults, runner)

    def _check_function_aliases(self) -> None:
        """Manual partitioning converts the functions named by alias; a missing alias fails the load, as on Vertex."""
        wanted = self.options.tpu_function_aliases
        if not wanted:
            return
        exported = set(self.meta_graph.meta_info_def.function_aliases.values())
        missing = [a for a in wanted if a not in exported]
        if missing:
            raise ServingError(
                "INVALID_ARGUMENT",
                f"converter_options_string names function alias {missing[0]!r}, but the SavedModel exports "
                f"{sorted(exported) or 'no aliases'}: export it with "
                "tf.saved_model.SaveOptions(function_aliases={NAME: fn})",
            )


def _spec(key: str, info) -> TensorSpec:
    import tensorflow as tf

    dtype = tf.dtypes.as_dtype(info.dtype)
    shape = None if info.tensor_shape.unknown_rank else tuple(d.size for d in info.tensor_shape.dim)
    numpy_dtype = np.dtype(object) if dtype == tf.string else dtype.as_numpy_dtype
    return TensorSpec(key, info.name, np.dtype(numpy_dtype), _dtype_name(info.dtype), shape)


def _dtype_name(enum_value: int) -> str:
    from tensorflow.core.framework import types_pb2

    return types_pb2.DataType.Name(enum_value)


def _ndarray(tensor_proto) -> np.ndarray:
    import tensorflow as tf

    return tf.make_ndarray(tensor_proto)


def _tag_sets(model_dir: Path) -> list[str]:
    from tensorflow.python.saved_model import loader_impl

    try:
        saved = loader_impl.parse_saved_model(str(model_dir))
    except OSError:
        return []
    return [",".join(m.meta_info_def.tags) for m in saved.meta_graphs]


_STATUS_BY_OP_ERROR = {
    "CancelledError": "CANCELLED",
    "UnauthenticatedError": "UNAUTHENTICATED",
    "PermissionDeniedError": "PERMISSION_DENIED",
    "AlreadyExistsError": "ALREADY_EXISTS",
    "AbortedError": "ABORTED",
    "InvalidArgumentError": "INVALID_ARGUMENT",
    "FailedPreconditionError": "FAILED_PRECONDITION",
    "OutOfRangeError": "OUT_OF_RANGE",
    "NotFoundError": "NOT_FOUND",
    "ResourceExhaustedError": "RESOURCE_EXHAUSTED",
    "UnimplementedError": "UNIMPLEMENTED",
    "UnavailableError": "UNAVAILABLE",
    "DeadlineExceededError": "DEADLINE_EXCEEDED",
}
