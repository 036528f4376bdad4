"""Server-side batching: padded to allowed sizes, answers equal to unbatched ones, a bounded queue."""

import threading

import numpy as np
import pytest

from localvertex.modelserver.batcher import Batcher
from vertex_serving.batching import Batching
from vertex_serving.tfserving.errors import ServingError


def model(feeds):
    """Row-wise, so every row's answer depends only on that row, as with a real model."""
    x = feeds["x"]
    return {"y": x * 2 + x.sum(axis=1, keepdims=True), "rows": np.full(len(x), len(x))}


class Recorder:
    def __init__(self):
        self.batches = []

    def __call__(self, rows, padded):
        self.batches.append((rows, padded))


def test_concurrent_requests_are_batched_padded_and_answered_like_unbatched():
    recorder = Recorder()
    batcher = Batcher(
        model, Batching(max_batch_size=8, allowed_batch_sizes=(2, 4, 8), batch_timeout_micros=20_000), 1, recorder
    )
    inputs = [np.random.default_rng(i).normal(size=(1 + i % 3, 4)).astype(np.float32) for i in range(24)]
    results = [None] * len(inputs)

    def client(i):
        results[i] = batcher.submit({"x": inputs[i]}, len(inputs[i])).result(timeout=10)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batcher.close()
    for x, got in zip(inputs, results, strict=True):
        assert np.array_equal(got["y"], model({"x": x})["y"])
    assert all(padded in (2, 4, 8) and rows <= padded for rows, padded in recorder.batches)
    assert max(rows for rows, _ in recorder.batches) > 3  # requests really were merged
    assert sum(rows for rows, _ in recorder.batches) == sum(len(x) for x in inputs)


def test_a_lone_request_runs_at_once_padded_to_the_smallest_allowed_size():
    recorder = Recorder()
    batcher = Batcher(model, Batching(max_batch_size=8, allowed_batch_sizes=(4, 8)), 1, recorder)
    out = batcher.submit({"x": np.ones((1, 2), np.float32)}, 1).result(timeout=5)
    batcher.close()
    assert out["y"].shape == (1, 2) and out["rows"].tolist() == [4] and recorder.batches == [(1, 4)]


def test_a_request_larger_than_the_maximum_is_refused():
    batcher = Batcher(model, Batching(max_batch_size=4), 1)
    with pytest.raises(ServingError) as e:
        batcher.submit({"x": np.ones((5, 2), np.float32)}, 5)
    batcher.close()
    assert e.value.code == "INVALID_ARGUMENT" and "maximum batch size 4" in e.value.message


def test_a_full_queue_refuses_with_resource_exhausted():
    release = threading.Event()

    def slow(feeds):
        release.wait(10)
        return model(feeds)

    batcher = Batcher(slow, Batching(max_batch_size=2, max_enqueued_batches=1), 1)
    first = batcher.submit({"x": np.ones((2, 2), np.float32)}, 2)  # taken by the worker, which blocks
    queued, refused = [], None
    for _ in range(5):
        try:
            queued.append(batcher.submit({"x": np.ones((1, 2), np.float32)}, 1))
        except ServingError as e:
            refused = e
            break
    release.set()
    assert refused is not None and refused.code == "RESOURCE_EXHAUSTED" and refused.http_status == 429
    assert first.result(timeout=5)["y"].shape == (2, 2) and all(f.result(timeout=5) for f in queued)
    batcher.close()


def test_requests_of_different_inner_shapes_are_never_merged():
    recorder = Recorder()
    batcher = Batcher(model, Batching(max_batch_size=8, batch_timeout_micros=50_000), 1, recorder)
    a = batcher.submit({"x": np.ones((1, 2), np.float32)}, 1)
    b = batcher.submit({"x": np.ones((1, 3), np.float32)}, 1)
    assert a.result(timeout=5)["y"].shape == (1, 2) and b.result(timeout=5)["y"].shape == (1, 3)
    batcher.close()
    assert sorted(recorder.batches) == [(1, 1), (1, 1)]


def test_a_failing_batch_fails_its_requests_only():
    calls = []

    def flaky(feeds):
        calls.append(len(feeds["x"]))
        if len(calls) == 1:
            raise ServingError("INVALID_ARGUMENT", "bad batch")
        return model(feeds)

    batcher = Batcher(flaky, Batching(max_batch_size=4), 1)
    with pytest.raises(ServingError):
        batcher.submit({"x": np.ones((1, 2), np.float32)}, 1).result(timeout=5)
    assert batcher.submit({"x": np.ones((1, 2), np.float32)}, 1).result(timeout=5)["y"].shape == (1, 2)
    batcher.close()
