"""Where a request runs: on the event loop when its signature runs that many rows in well under a thread hand-off."""

from __future__ import annotations

import pytest

from localvertex.modelserver.pace import INLINE_SECONDS, LONG_SECONDS, STRIKES, Pace

SHORT, MIDDLING, LONG = INLINE_SECONDS / 2, (INLINE_SECONDS + LONG_SECONDS) / 2, LONG_SECONDS * 2


def test_nothing_runs_on_the_loop_before_a_short_run_is_seen():
    pace = Pace()
    assert not pace.inline(1)
    pace.learn(8, SHORT)
    assert [pace.inline(rows) for rows in (None, 0, 1, 8, 9)] == [False, False, True, True, False]


def test_a_long_run_lowers_the_size_and_a_middling_one_teaches_nothing():
    pace = Pace()
    pace.learn(32, SHORT)
    pace.learn(32, MIDDLING)  # a scheduling hiccup, or a size near the limit: no verdict either way
    assert pace.rows == 32
    pace.learn(16, LONG)
    assert pace.rows == 15 and pace.strikes == 0  # it ran on a worker thread: no strike
    pace.learn(40, SHORT)
    assert pace.rows == 40


def test_long_runs_on_the_loop_end_running_there_for_good():
    pace = Pace()
    for _ in range(STRIKES):
        pace.learn(4, SHORT)
        pace.learn(4, LONG, on_loop=True)
    assert pace.strikes == STRIKES and pace.rows == 0
    pace.learn(4, SHORT)
    assert not pace.inline(1)


def test_run_times_the_call_and_learns_from_it_even_when_it_fails():
    pace = Pace()
    assert pace.run(lambda feeds: {"y": feeds["x"]}, {"x": 1}, 2) == {"y": 1}
    assert pace.rows == 2

    def fails(feeds):
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        pace.run(fails, {}, 3)
    assert pace.rows == 3
