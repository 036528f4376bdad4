"""The convert and warmup steps on real SavedModels (TensorFlow in process, no server)."""

from __future__ import annotations

import numpy as np
import pytest

from components.convert import ModelError, _aliases, prepare, reference_predictions
from components.warmup import warm
from localvertex.modelserver.servable import Servable
from localvertex.modelserver.warmup import read_warmup_records
from pipelines.options import RuntimeOptions
from tests.models import TESTDATA, tagged_sum

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
    with pytest.raises(ModelError, match="'serve,tpu'"):
        prepare(str(plain), tmp_path / "out", "preconverted", "", "")


def test_string_inputs_without_samples_are_refused(plain, tmp_path):
    target = prepare(str(plain), tmp_path / "out", "auto_partition", "", "")
    with pytest.raises(ModelError, match="sample_instances_uri"):
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
