"""The convert and warmup steps on real SavedModels (TensorFlow in process, no server)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from kfp import dsl

from components.convert import _aliases, convert, prepare, reference_predictions
from components.warmup import warm, warmup
from tests.models import TESTDATA, tagged_sum
from vertex_serving.errors import UserError
from vertex_serving.options import RuntimeOptions
from vertex_serving.tfserving.servable import Servable
from vertex_serving.tfserving.warmup import read_warmup_records

pytestmark = pytest.mark.integration
ROWS = [{"a": [1.0, 2.0, 3.0], "tag": "x"}, {"a": [0.0, 0.0, 1.0], "tag": "y"}]


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    return tagged_sum(tmp_path_factory.mktemp("models") / "plain")


def test_manual_partitioning_re_saves_the_model_with_its_function_alias(plain, tmp_path):
    target = prepare(str(plain), tmp_path / "out", "manual_partition", "tpu_fn", "max_batch_size { value: 8 }\n")
    assert "tpu_fn" in _aliases(target)
    assert (target / "config" / "batching_parameters_config").read_text().startswith("max_batch_size")
    servable = Servable(target, 1, RuntimeOptions(tpu_function_aliases=("tpu_fn",)))  # the server's own check
    servable.close()
    found = reference_predictions(target, ROWS, ("serve",))
    assert [p["sum"] for p in found["predictions"]] == [14.0, 3.0] and found["signature"]["a"]["dtype"] == "DT_FLOAT"


def test_preconverted_needs_the_serve_tpu_tag_set(plain, tmp_path):
    with pytest.raises(UserError, match="'serve,tpu'"):
        prepare(str(plain), tmp_path / "out", "preconverted", "", "")


def test_string_inputs_without_samples_are_refused(plain, tmp_path):
    target = prepare(str(plain), tmp_path / "out", "auto_partition", "", "")
    with pytest.raises(UserError, match="sample_instances_uri"):
        reference_predictions(target, [], ("serve",))


def test_synthetic_samples_serve_a_numeric_model(tmp_path):
    target = prepare(str(TESTDATA / "saved_model_half_plus_two_cpu" / "00000123"), tmp_path / "out", "", "", "")
    found = reference_predictions(target, [], ("serve",))
    assert len(found["instances"]) == 8
    np.testing.assert_allclose(found["predictions"], 0.5 * np.array(found["instances"]) + 2, rtol=1e-6)


def test_warmup_writes_three_replays_per_batch_size_that_the_server_reads_back(plain, tmp_path):
    count = warm(plain, tmp_path / "warm", ROWS, [1, 4])
    records = read_warmup_records(tmp_path / "warm")
    sizes = [r.predict_log.request.inputs["a"].tensor_shape.dim[0].size for r in records]
    assert count == len(records) == 6 and sizes == [4, 4, 4, 1, 1, 1]


def test_a_folder_without_a_saved_model_names_model_dir(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError) as e:
        prepare(str(tmp_path / "empty"), tmp_path / "out", "", "", "")
    assert (e.value.parameter, e.value.value) == ("model_dir", str(tmp_path / "empty"))
    assert "no saved_model.pb" in str(e.value)
    with pytest.raises(UserError) as e:
        prepare(str(tmp_path / "none"), tmp_path / "out", "", "", "")
    assert e.value.parameter == "model_dir" and "cannot be read" in str(e.value)


def test_samples_that_do_not_fit_the_signature_name_sample_instances_uri(plain, tmp_path):
    target = prepare(str(plain), tmp_path / "out", "", "", "")
    with pytest.raises(UserError) as e:
        reference_predictions(target, [{"b": [1.0]}], ("serve",), str(plain), "samples.jsonl")
    assert (e.value.parameter, e.value.value) == ("sample_instances_uri", "samples.jsonl")


def test_samples_the_graph_refuses_name_sample_instances_uri(plain, tmp_path):
    # Fed as sent, as TF Serving feeds them: a shape the signature does not declare is refused by the run.
    target = prepare(str(plain), tmp_path / "out", "", "", "")
    with pytest.raises(UserError) as e:
        reference_predictions(target, [{"a": [1.0, 2.0], "tag": "x"}], ("serve",), str(plain), "samples.jsonl")
    assert e.value.parameter == "sample_instances_uri" and "Matrix size-incompatible" in str(e.value)


def test_the_convert_and_warmup_shells_write_their_artifacts(plain, tmp_path):
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    model, reference = dsl.Model(uri=str(tmp_path / "model")), dsl.Dataset(uri=str(tmp_path / "reference.json"))
    convert.python_func(
        model_dir=str(plain),
        tpu_mode="",
        tpu_function_alias="",
        sample_instances_uri=str(samples),
        batching_config="",
        model=model,
        reference=reference,
    )
    assert reference.metadata["instances"] == 2 and (tmp_path / "model" / "saved_model.pb").exists()
    warmed = dsl.Model(uri=str(tmp_path / "warmed"))
    warmup.python_func(model=model, reference=reference, batch_sizes=[1.0, 2.0], warmed_model=warmed)
    assert warmed.metadata["warmup_records"] == 6 and len(read_warmup_records(tmp_path / "warmed")) == 6


def test_too_many_batch_sizes_for_the_warmup_limit_name_allowed_batch_sizes(plain, tmp_path):
    with pytest.raises(UserError) as e:
        warm(plain, tmp_path / "warm", ROWS, list(range(1, 401)))
    assert e.value.parameter == "allowed_batch_sizes" and "1000" in str(e.value)
