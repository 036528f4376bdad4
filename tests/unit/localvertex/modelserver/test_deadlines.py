"""The REST timeout's bookkeeping: requests past their deadline are cancelled, answered ones are left alone."""

from __future__ import annotations

import asyncio

from localvertex.modelserver.app import Deadlines


def test_only_the_futures_still_running_past_their_deadline_are_cancelled():
    async def scenario():
        loop = asyncio.get_running_loop()
        deadlines = Deadlines(0.04)
        answered, slow, later = loop.create_future(), loop.create_future(), loop.create_future()
        deadlines.watch(answered, loop.time() + 0.04)
        deadlines.watch(slow, loop.time() + 0.04)
        answered.set_result("done")
        deadlines.watch(later, loop.time() + 10)
        await asyncio.sleep(0.2)
        return answered, slow, later, deadlines

    answered, slow, later, deadlines = asyncio.run(scenario())
    assert answered.result() == "done"
    assert slow.cancelled()
    assert not later.done()
    assert [future for _, future in deadlines._pending] == [later]


def test_the_sweep_stops_when_nothing_is_pending():
    async def scenario():
        loop = asyncio.get_running_loop()
        deadlines = Deadlines(0.02)
        future = loop.create_future()
        deadlines.watch(future, loop.time() + 0.02)
        future.set_result(1)
        await asyncio.sleep(0.1)
        return deadlines

    deadlines = asyncio.run(scenario())
    assert not deadlines._pending and not deadlines._sweeping
