"""Server-side batching as TF Serving does it: concurrent requests merged, padded to an allowed batch size.

A batch closes when it is full or when its oldest request has waited `batch_timeout_micros`; padding rows are
copies of the first row and are dropped from the outputs, so batched answers equal unbatched ones. The queue is
bounded by `max_enqueued_batches`: past it a request is refused with RESOURCE_EXHAUSTED instead of waiting.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from vertex_serving.batching import Batching
from vertex_serving.tfserving.errors import ServingError

Feeds = dict[str, np.ndarray]


@dataclass
class _Task:
    feeds: Feeds
    size: int
    future: Future | asyncio.Future
    loop: asyncio.AbstractEventLoop | None = None
    enqueued: float = field(default_factory=time.monotonic)

    @property
    def shape(self) -> tuple:
        """Requests batch together only when every input agrees beyond the batch dimension."""
        return tuple((k, a.shape[1:], a.dtype) for k, a in self.feeds.items())


class Batcher:
    """Batches the calls of one signature; `run` takes and returns full-batch arrays keyed by name."""

    def __init__(
        self,
        run: Callable[[Feeds], Feeds],
        batching: Batching,
        threads: int,
        on_batch: Callable[[int, int], None] = lambda size, padded: None,
    ) -> None:
        self._run, self._batching, self._on_batch = run, batching, on_batch
        self._queue: collections.deque[_Task] = collections.deque()
        self._queued_rows = 0
        self._cond = threading.Condition()
        self._closed = False
        self._timeout = batching.batch_timeout_micros / 1e6
        self._capacity = batching.max_enqueued_batches * batching.max_batch_size
        self._workers = [threading.Thread(target=self._work, daemon=True, name=f"batch-{i}") for i in range(threads)]
        for worker in self._workers:
            worker.start()

    def submit(self, feeds: Feeds, size: int, loop: asyncio.AbstractEventLoop | None = None) -> Future | asyncio.Future:
        """Queues one request; with `loop`, its asyncio future is resolved on that loop, once per batch."""
        limit = self._batching.max_batch_size
        if size > limit:
            raise ServingError(
                "INVALID_ARGUMENT",
                f"Task size {size} is larger than maximum batch size {limit}: send at most {limit} instances a request",
            )
        task = _Task(feeds, size, loop.create_future() if loop else Future(), loop)
        with self._cond:
            if self._closed:
                raise ServingError("UNAVAILABLE", "the model server is shutting down")
            if self._queued_rows + size > self._capacity:
                raise ServingError(
                    "RESOURCE_EXHAUSTED",
                    f"The batch scheduling queue is full ({self._batching.max_enqueued_batches} batches of "
                    f"{limit}): retry later, or raise max_enqueued_batches",
                )
            self._queue.append(task)
            self._queued_rows += size
            self._cond.notify()
        return task.future

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for worker in self._workers:
            worker.join(timeout=5)

    def _work(self) -> None:
        while True:
            tasks = self._next_batch()
            if tasks is None:
                return
            self._execute(tasks)

    def _next_batch(self) -> list[_Task] | None:
        limit = self._batching.max_batch_size
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            deadline = self._queue[0].enqueued + self._timeout
            while self._queued_rows < limit and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
                if not self._queue:
                    return []
            tasks, rows, shape = [], 0, self._queue[0].shape
            while self._queue and rows + self._queue[0].size <= limit and self._queue[0].shape == shape:
                task = self._queue.popleft()
                tasks.append(task)
                rows += task.size
            self._queued_rows -= rows
            if self._queue:
                self._cond.notify()  # another worker can start on what is left
            return tasks

    def _execute(self, tasks: list[_Task]) -> None:
        if not tasks:
            return
        rows = sum(t.size for t in tasks)
        padded = self.padded_size(rows)
        try:
            outputs = self._run(merge([t.feeds for t in tasks], padded))
            self._on_batch(rows, padded)
            offsets = np.cumsum([0] + [t.size for t in tasks])
            results = [
                {k: split(k, v, o, t.size, padded) for k, v in outputs.items()}
                for t, o in zip(tasks, offsets, strict=False)
            ]
        except Exception as e:  # every waiting request must hear about the failure
            results = [e] * len(tasks)
        by_loop: dict = collections.defaultdict(list)
        for task, result in zip(tasks, results, strict=True):
            if task.loop is None:
                _resolve([(task.future, result)])
            else:
                by_loop[task.loop].append((task.future, result))
        for loop, pairs in by_loop.items():  # one wake-up of the event loop per batch, not per request
            loop.call_soon_threadsafe(_resolve, pairs)

    def padded_size(self, rows: int) -> int:
        allowed = self._batching.allowed_batch_sizes
        return allowed[bisect.bisect_left(allowed, rows)] if allowed else rows


def _resolve(pairs: list) -> None:
    for future, result in pairs:
        if future.done():  # the client went away
            continue
        if isinstance(result, Exception):
            future.set_exception(result)
        else:
            future.set_result(result)


def merge(parts: list[Feeds], padded: int) -> Feeds:
    """Concatenates the requests of a batch and pads with copies of the first row up to `padded` rows."""
    merged = {}
    for key in parts[0]:
        arrays = [p[key] for p in parts]
        rows = sum(a.shape[0] for a in arrays)
        if rows < padded:
            arrays.append(np.repeat(arrays[0][:1], padded - rows, axis=0))
        try:
            merged[key] = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
        except ValueError as e:
            raise ServingError("INVALID_ARGUMENT", f"Input '{key}' cannot be batched with others: {e}") from None
    return merged


def split(key: str, value: np.ndarray, offset: int, size: int, padded: int) -> np.ndarray:
    if value.ndim == 0 or value.shape[0] != padded:
        raise ServingError(
            "FAILED_PRECONDITION",
            f"Batched output tensor '{key}' has shape {list(value.shape)}, not a batch of {padded}: "
            "turn batching off for this model",
        )
    return value[offset : offset + size]
