"""The plain functions behind the pipeline steps that need no server."""

import numpy as np
import pytest

from components.convert import ModelError, check_signature, synthetic_instances
from components.upload import run_label
from components.validate import resolve
from localvertex.deployer import expand
from localvertex.modelserver.servable import Signature, TensorSpec
from pipelines.config import DeployConfig
from pipelines.run import pipeline_arguments


def spec(key, dtype, shape, name="DT_FLOAT"):
    return TensorSpec(key, f"{key}:0", np.dtype(dtype), name, shape)


def signature(**inputs):
    return Signature("serving_default", "tensorflow/serving/predict", inputs, {"y": spec("y", "float32", (-1,))})


def test_synthetic_instances_follow_the_signature():
    rows = synthetic_instances(signature(x=spec("x", "float32", (-1, 4))), rows=3)
    assert np.array(rows).shape == (3, 4)
    rows = synthetic_instances(
        signature(a=spec("a", "float32", (-1, 2)), n=spec("n", "int64", (-1,), "DT_INT64")), rows=2
    )
    assert set(rows[0]) == {"a", "n"} and isinstance(rows[0]["n"], int)


def test_string_inputs_need_user_samples():
    with pytest.raises(ModelError, match="sample_instances_uri"):
        synthetic_instances(signature(text=spec("text", object, (-1,), "DT_STRING")))


def test_unbatchable_signatures_are_refused():
    with pytest.raises(ModelError, match="first dimension must be unknown"):
        check_signature(signature(x=spec("x", "float32", (1, 4))))
    with pytest.raises(ModelError, match="JSON cannot carry"):
        check_signature(signature(x=spec("x", "complex64", (-1,), "DT_COMPLEX64")))


def test_run_labels_are_valid_vertex_label_values():
    assert run_label("Vertex-Serving-Deploy 2026/11/22 05:54") == "vertex-serving-deploy-2026-11-22-05-54"
    assert len(run_label("x" * 100)) == 63


def test_container_args_expand_vertex_variables():
    env = {"AIP_STORAGE_URI": "gs://b/m"}
    assert expand("--model=$(AIP_STORAGE_URI)", env) == "--model=gs://b/m"
    assert expand("$$(AIP_STORAGE_URI) $(UNKNOWN)", env) == "$(AIP_STORAGE_URI) $(UNKNOWN)"


def test_pipeline_list_parameters_arrive_as_doubles_and_are_read_back_as_ints():
    resolved = resolve(
        {"accelerator": "cpu", "container_version": "nightly", "allowed_batch_sizes": [1.0, 8.0], "use_tfrt": "false"}
    )
    assert resolved.warmup_batch_sizes == [1, 8] and resolved.container_args == ["--use_tfrt=false"]
    assert "allowed_batch_sizes: 8" in resolved.batching_config


def test_config_becomes_pipeline_arguments_with_the_local_defaults():
    values = pipeline_arguments(
        DeployConfig(use_tfrt=True, allowed_batch_sizes=(4, 8)), "http://127.0.0.1:1", "gs://stage"
    )
    assert values["use_tfrt"] == "true" and values["allowed_batch_sizes"] == [4, 8]
    assert (values["project"], values["staging_bucket"], values["api_endpoint"]) == (
        "local-project",
        "gs://stage",
        "http://127.0.0.1:1",
    )
