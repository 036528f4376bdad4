"""The convert step's plain checks: signatures that can be served, samples that can be made up or read."""

import numpy as np
import pytest

from components.convert import check_signature, read_instances, synthetic_instances
from vertex_serving.errors import UserError
from vertex_serving.tfserving.servable import Signature, TensorSpec


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
    with pytest.raises(UserError) as e:
        synthetic_instances(signature(text=spec("text", object, (-1,), "DT_STRING")))
    assert e.value.parameter == "sample_instances_uri" and "'text' takes strings" in str(e.value)


def test_unbatchable_signatures_are_refused_naming_model_dir():
    with pytest.raises(UserError) as e:
        check_signature(signature(x=spec("x", "float32", (1, 4))), "gs://b/model")
    assert (e.value.parameter, e.value.value) == ("model_dir", "gs://b/model")
    assert "unknown (None) first dimension" in str(e.value)
    with pytest.raises(UserError, match="JSON cannot carry"):
        check_signature(signature(x=spec("x", "complex64", (-1,), "DT_COMPLEX64")), "m")


def test_missing_or_broken_samples_name_sample_instances_uri(tmp_path):
    with pytest.raises(UserError) as e:
        read_instances(str(tmp_path / "none.jsonl"))
    assert e.value.parameter == "sample_instances_uri" and "cannot be read" in str(e.value)
    (tmp_path / "bad.jsonl").write_text('{"x": [1]}\n{oops\n')
    with pytest.raises(UserError, match="is not JSON Lines .* on line 2"):
        read_instances(str(tmp_path / "bad.jsonl"))
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(UserError, match="holds no instances"):
        read_instances(str(tmp_path / "empty.jsonl"))
