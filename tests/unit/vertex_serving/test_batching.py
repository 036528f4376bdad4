"""Server-side batching as TF Serving's BatchingParameters text proto, with TF Serving's rules."""

import pytest

from vertex_serving.batching import Batching


def test_batching_renders_tf_serving_text_proto_and_reads_it_back():
    batching = Batching(max_batch_size=32, allowed_batch_sizes=(8, 16, 32), batch_timeout_micros=2000)
    text = batching.to_text()
    assert "max_batch_size {\n  value: 32\n}" in text and "allowed_batch_sizes: 8" in text
    assert Batching.from_text(text) == batching


def test_batching_text_defaults_follow_tf_serving():
    assert Batching.from_text("") == Batching(max_batch_size=1000, max_enqueued_batches=10)


@pytest.mark.parametrize(
    ("batching", "parameter"),
    [
        (Batching(max_batch_size=0), "max_batch_size"),
        (Batching(max_batch_size=32, allowed_batch_sizes=(8, 4, 32)), "allowed_batch_sizes"),
        (Batching(max_batch_size=32, allowed_batch_sizes=(8, 16)), "allowed_batch_sizes"),
        (Batching(max_batch_size=8, batch_timeout_micros=-1), "batch_timeout_micros"),
    ],
)
def test_batching_rules_of_tf_serving(batching, parameter):
    assert [p.parameter for p in batching.problems()] == [parameter]
