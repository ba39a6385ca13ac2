"""Retraining on a store: it keeps no copy of the completions and filters on the
processor's enrichment (issue 14).

The processor's sink and enricher and the retraining service run on one bus and one
chDB store, as in ``llmloop up``. A pair forms only once the completions its
feedback names are stored and enriched, and the toxicity that drops one is the
processor's score.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from llmloop import topics
from llmloop.bus import Record, open_bus
from llmloop.events import (
    CompletionLogged,
    CorrectionFeedback,
    PreferenceFeedback,
    ThumbsFeedback,
    encode_event,
)
from llmloop_processor.enrichment import Enricher, EnrichmentService, EnrichmentWriter
from llmloop_processor.sink import Sink
from llmloop_retraining.config import RetrainingSettings
from llmloop_retraining.join import PairJoin
from llmloop_retraining.service import Retrainer


def join_rows(settings, table: str) -> int:
    join = PairJoin(settings.state_path)
    try:
        return int(join.db.execute(f"SELECT count() FROM {table}").fetchone()[0])
    finally:
        join.close()


async def until(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


async def test_pairs_wait_for_enrichment_and_use_the_processors_toxicity(tmp_path, store):
    bus = open_bus("memory://")
    await bus.start()
    settings = RetrainingSettings(data_dir=tmp_path)
    prompt = "How do I undo my last commit?"
    good = CompletionLogged(model="m", prompt=prompt, completion="git revert HEAD")
    bad = CompletionLogged(model="m", prompt=prompt, completion="rm -rf .git")
    abusive = CompletionLogged(
        model="m", prompt=prompt, completion="Shut up, you stupid fucking idiot."
    )
    others = [
        CompletionLogged(model="m", prompt=f"unrelated question {i}", completion=f"answer {i}")
        for i in range(200)
    ]
    feedback = [
        PreferenceFeedback(chosen_id=good.event_id, rejected_id=bad.event_id),
        ThumbsFeedback(completion_id=abusive.event_id, value=1),
        ThumbsFeedback(completion_id=bad.event_id, value=-1),
        CorrectionFeedback(completion_id=bad.event_id, correction="Use git revert instead."),
    ]
    # Feedback in the same batch as its completions: they are not stored yet.
    events = [good, bad, abusive, *others, *feedback]
    await bus.publish(topics.EVENTS, [Record(e.key(), encode_event(e), event=e) for e in events])

    stop = asyncio.Event()
    retrainer = Retrainer(bus, settings, store=store, max_wait_s=0.05)
    sink = Sink(bus, store, max_wait_s=0.05)
    tasks = [asyncio.create_task(retrainer.run(stop)), asyncio.create_task(sink.run(stop))]
    try:
        # Stored but not enriched: the feedback waits, no pair is made on a guess.
        await until(
            lambda: store.query("SELECT count() FROM completions").rows[0][0] == len(events) - 4,
            "the sink stored the completions",
        )
        await asyncio.sleep(3)  # more than one look-up again (every 2 s)
        assert join_rows(settings, "pairs") == 0
        assert join_rows(settings, "pending") == len(feedback)

        enricher = EnrichmentService(bus, EnrichmentWriter(store, Enricher(None)), max_wait_s=0.05)
        tasks.append(asyncio.create_task(enricher.run(stop)))
        await until(lambda: join_rows(settings, "pairs") == 2, "the pairs, once enriched")
        await until(lambda: join_rows(settings, "pending") == 0, "no feedback waiting")
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await bus.close()

    join = PairJoin(settings.state_path)
    try:
        pairs = {(p.chosen, p.rejected) for _, p in join.pairs("m")}
        assert pairs == {
            ("git revert HEAD", "rm -rf .git"),
            ("Use git revert instead.", "rm -rf .git"),
        }
        # The abusive answer, liked, would have been chosen over "rm -rf .git": the
        # processor scored it toxic and the pair was dropped on that score.
        assert join.drops("m") == {"toxic_chosen": 1}
        [[stored]] = store.query(
            "SELECT completion_toxicity FROM completion_enrichments WHERE event_id = {id:UUID}",
            {"id": str(abusive.event_id)},
        ).rows
        assert stored >= settings.retrain_toxicity_threshold
        # Only the completions that feedback named were copied, not the 203 others.
        assert join_rows(settings, "completions") == 3
    finally:
        join.close()


async def test_feedback_naming_completions_that_never_come_does_not_hide_later_feedback(
    tmp_path, store
):
    # 1,500 thumbs name completions that never arrive (ids that sort first); then a
    # correction arrives before its completion. The correction's completion is looked
    # up again in turn with them, not after them, and pairs once stored and enriched.
    bus = open_bus("memory://")
    await bus.start()
    settings = RetrainingSettings(data_dir=tmp_path)
    orphans = [ThumbsFeedback(completion_id=uuid.UUID(int=i + 1), value=1) for i in range(1500)]
    late = CompletionLogged(model="m", prompt="How do I undo a commit?", completion="rm -rf .git")
    fix = CorrectionFeedback(completion_id=late.event_id, correction="git revert HEAD")

    async def publish(events) -> None:
        await bus.publish(
            topics.EVENTS, [Record(e.key(), encode_event(e), event=e) for e in events]
        )

    stop = asyncio.Event()
    parts = [
        Retrainer(bus, settings, store=store, max_wait_s=0.05),
        Sink(bus, store, max_wait_s=0.05),
        EnrichmentService(bus, EnrichmentWriter(store, Enricher(None)), max_wait_s=0.05),
    ]
    tasks = [asyncio.create_task(p.run(stop)) for p in parts]
    try:
        await publish([*orphans, fix])
        await until(lambda: join_rows(settings, "pending") == 1501, "every feedback waits")
        await publish([late])
        await until(lambda: join_rows(settings, "pairs") == 1, "the late correction's pair")
        assert join_rows(settings, "pending") == 1500
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await bus.close()
