"""Restarting the retraining service between a completion and its feedback still yields the pair."""

from __future__ import annotations

import asyncio
import time

from llmloop import topics
from llmloop.bus import Record
from llmloop.events import CompletionLogged, ThumbsFeedback, encode_event
from llmloop_retraining.config import RetrainingSettings
from llmloop_retraining.join import PairJoin
from llmloop_retraining.service import Retrainer


async def run_until(bus, settings, condition, timeout: float = 60.0) -> None:
    """Run one service instance until ``condition()`` holds, then stop it cleanly."""
    service = Retrainer(bus, settings, max_wait_s=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    deadline = time.monotonic() + timeout
    try:
        while not condition():
            assert time.monotonic() < deadline, "condition not met in time"
            assert not task.done(), task
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await task


def stored(settings, query: str) -> int:
    join = PairJoin(settings.state_path)
    try:
        return int(join.db.execute(query).fetchone()[0])
    finally:
        join.close()


async def test_pair_survives_a_restart_between_completion_and_feedback(any_bus, tmp_path):
    settings = RetrainingSettings(data_dir=tmp_path)
    good = CompletionLogged(model="m", prompt="How do I undo a commit?", completion="git revert")
    bad = CompletionLogged(model="m", prompt="How do I undo a commit?", completion="rm -rf .git")

    def publish(*events):
        return any_bus.publish(topics.EVENTS, [Record(e.key(), encode_event(e)) for e in events])

    await publish(good, bad)
    await run_until(
        any_bus, settings, lambda: stored(settings, "SELECT COUNT(*) FROM completions") == 2
    )

    # The service is down while the feedback arrives; a new instance picks up from
    # the committed offsets with the join state it left on disk.
    await publish(
        ThumbsFeedback(completion_id=bad.event_id, value=-1),
        ThumbsFeedback(completion_id=good.event_id, value=1),
    )
    await run_until(any_bus, settings, lambda: stored(settings, "SELECT COUNT(*) FROM pairs") == 1)

    join = PairJoin(settings.state_path)
    [(_, pair)] = join.pairs("m")
    join.close()
    assert (pair.chosen, pair.rejected) == ("git revert", "rm -rf .git")
