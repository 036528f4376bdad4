"""Which requests run on the event loop instead of a worker thread.

Handing a run to a worker thread and its answer back takes two thread wake-ups, about 100 us of latency and CPU
on a quiet machine: more than a small model's whole run (the bench's MLP runs in about 26 us). So a signature
learns, from the runs it times, the largest request (in rows) it runs in under INLINE_SECONDS, and requests no
larger run on the event loop, where a run that short blocks nothing for long. A run that turns out long after all
(values, not rows, decide its length) lowers that size; after STRIKES such runs on the loop the signature always
hands its runs to a worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable

INLINE_SECONDS = 0.0003  # a run this short costs the event loop less than handing it to a thread
LONG_SECONDS = 0.003  # a run this long was not a scheduling hiccup: its size is not short
STRIKES = 3


class Pace:
    """What one signature's runs take; `inline(rows)` says whether a request of `rows` rows runs on the loop."""

    def __init__(self) -> None:
        self.rows = 0  # the largest request seen to run in under INLINE_SECONDS
        self.strikes = 0  # long runs that happened on the event loop

    def inline(self, rows: int | None) -> bool:
        return rows is not None and 0 < rows <= self.rows

    def run(self, run: Callable, feeds: dict, rows: int | None, on_loop: bool = False) -> dict:
        """`run(feeds)`, timed; what it took teaches this pace."""
        started = time.perf_counter()
        try:
            return run(feeds)
        finally:
            self.learn(rows or 0, time.perf_counter() - started, on_loop)

    def learn(self, rows: int, seconds: float, on_loop: bool = False) -> None:
        if seconds < INLINE_SECONDS:
            if rows > self.rows and self.strikes < STRIKES:
                self.rows = rows
        elif seconds >= LONG_SECONDS and rows <= self.rows:
            self.rows = rows - 1
            self.strikes += on_loop
            if self.strikes >= STRIKES:
                self.rows = 0
