"""Retraining on replicas (issue 16): joiners by partition, one controller, failover.

Two replicas run as processes on the Kafka-protocol broker, with the store served
through the ClickHouse HTTP harness (the processor's writer puts the completions
there, as in production). The controller is SIGKILLed mid-stream and a replica is
added back: every feedback still becomes exactly the pair one single-process join
makes of the same traffic, and never did two replicas act as the controller at once.
A controller acts (decides, starts jobs) once it caught up with the join log; a replica
the group dropped while it rebuilt its state (its thread held the GIL past the 2 s
session timeout) can still believe it leads until it notices, but it has not caught up.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time

import pytest
from replicas import Replica
from retraining_data import feedback_traffic

from llmloop import topics
from llmloop.bus import Record, open_bus
from llmloop.events import CompletionLogged, encode_event
from llmloop.store import open_store
from llmloop.store.migrate import migrate
from llmloop_processor.enrichment import Enricher, EnrichmentWriter
from llmloop_processor.writer import StoreWriter
from llmloop_retraining.join import PairJoin

pytestmark = pytest.mark.slow

_LEADS = re.compile(r"controller caught up at=([\d.]+)")
_RELEASES = re.compile(r"controller released at=([\d.]+)")


def leadership(replicas: list[Replica]) -> list[tuple[str, float, float]]:
    """(replica, from, to) of every time a replica acted as the controller."""
    spans = []
    for r in replicas:
        text = r.text()
        starts = [float(t) for t in _LEADS.findall(text)]
        ends = [float(t) for t in _RELEASES.findall(text)]
        for i, start in enumerate(starts):
            later = [e for e in ends if e >= start]
            end = min(later) if later else (r.killed_at or time.time())
            if i + 1 < len(starts):
                end = min(end, starts[i + 1])
            spans.append((r.name, start, end))
    return spans


def pair_ids(path) -> list[str]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return [r[0] for r in db.execute("SELECT pair_id FROM pairs")]
    except sqlite3.OperationalError:  # being rebuilt
        return []
    finally:
        db.close()


async def wait_until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.2)


async def test_two_replicas_controller_killed_every_feedback_one_pair(
    broker, clickhouse_url, tmp_path
):
    store = open_store(clickhouse_url)
    migrate(store)
    traffic = feedback_traffic(60, seed=3)
    completions = [e for e in traffic if isinstance(e, CompletionLogged)]
    # Feedback that came before its completion: these arrive (and are stored) last.
    late = {e.event_id for e in completions[-8:]}
    stream = [e for e in traffic if e.event_id not in late]

    reference = PairJoin(tmp_path / "reference.db")  # one process, the whole stream
    reference.apply(traffic)
    want = sorted(p.pair_id for _, p in reference.pairs("tiny-chat"))
    reference.close()
    assert len(want) > 40

    url = broker.url()
    bus = open_bus(url)
    await bus.start()
    (tmp_path / "policy.yaml").write_text("default: {enabled: false}\n")
    replicas: list[Replica] = []

    def replica(name: str) -> Replica:
        env = {
            "LLMLOOP_RETRAIN_REPLICATED": "true",
            "LLMLOOP_RETRAIN_CHECK_INTERVAL_S": "0.5",
            "LLMLOOP_RETRAIN_POLICY_FILE": str(tmp_path / "policy.yaml"),
            "LLMLOOP_STORE_URL": clickhouse_url,  # the store the processor writes
        }
        args = ["retraining", "--data-dir", str(tmp_path / name), "--broker", url]
        r = Replica(name, args, env, tmp_path)
        replicas.append(r.start())
        return r

    def controller() -> Replica | None:
        live = [(s, n) for n, s, e in leadership(replicas) if e >= time.time() - 0.01]
        names = {n for _, n in live if next(r for r in replicas if r.name == n).alive}
        return next((r for r in replicas if r.name in names), None)

    def caught_up(r: Replica) -> bool:
        return r.text().count("controller caught up") >= r.text().count("controller at=") > 0

    async def publish(events) -> None:
        await bus.publish(topics.EVENTS, [Record(e.key(), encode_event(e)) for e in events])

    def processor_writes(events) -> None:
        """What the processor does with completions: stores them, then enriches them
        (retraining pairs a completion once it is enriched, issue 14)."""
        StoreWriter(store).write(events)
        EnrichmentWriter(store, Enricher(None)).write(events)

    try:
        processor_writes([e for e in completions if e.event_id not in late])
        replica("a")
        replica("b")
        await wait_until(lambda: controller() is not None, 60, "no controller")
        third = len(stream) // 3
        await publish(stream[:third])
        await wait_until(
            lambda: (
                (c := controller()) is not None
                and len(pair_ids(c.log_path.parent / c.name / "retraining" / "state.db")) > 0
            ),
            60,
            "no pair before the kill",
        )
        victim = controller()
        assert victim is not None
        victim.kill()  # the controller, and the joiner of its partitions
        await publish(stream[third : 2 * third])
        replica("c")  # one added back
        await publish(stream[2 * third :])
        await asyncio.sleep(2)
        processor_writes([e for e in completions if e.event_id in late])
        await publish([e for e in completions if e.event_id in late])

        def state_db():
            c = controller()
            return (
                None
                if c is None or not caught_up(c)
                else tmp_path / c.name / "retraining" / "state.db"
            )

        await wait_until(
            lambda: (db := state_db()) is not None and sorted(pair_ids(db)) == want,
            90,
            "the controller's pairs never matched the single-process join",
        )
        got = pair_ids(state_db())
    finally:
        for r in replicas:
            r.stop()
        await bus.close()
        store.close()

    assert len(got) == len(set(got)) == len(want)
    spans = leadership(replicas)
    for i, (a, s1, e1) in enumerate(spans):
        for b, s2, e2 in spans[i + 1 :]:
            assert a == b or not (s1 < e2 and s2 < e1), f"{a} and {b} both acted as the controller"
    takeovers = [s for n, s, _ in spans if n != victim.name and s > (victim.killed_at or 0)]
    assert takeovers, "nobody became the controller after the kill"
    print(f"controller failover {min(takeovers) - (victim.killed_at or 0):.2f} s after the kill")
