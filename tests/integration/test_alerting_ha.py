"""Alerting highly available (issue 16): replicas as processes on the Kafka-protocol broker.

Two replicas split the metrics partitions; one is killed (SIGKILL) mid-stream and
another is added back. Every transition of every alert is still notified, each with
one idempotency key however often it was sent, and no two replicas ever held (or
evaluated) one partition at the same time.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict

import pytest
from replicas import Replica, evaluations, holds, overlaps, owners

from llmloop.bus import open_bus
from llmloop.signing import IDEMPOTENCY_HEADER
from llmloop.testing.metrics import metric_event, publish_metrics
from llmloop.testing.webhooks import WebhookReceiver

pytestmark = pytest.mark.slow

# Metric names on different partitions of a 6-partition topic (events are keyed by name).
THRESHOLDS = {
    "refusal_rate": 0.5,  # partition 0
    "toxicity_rate": 0.5,  # 1
    "feedback_thumbs_up_rate": 0.5,  # 2
    "latency_p95_ms": 5000.0,  # 3
    "feedback_mean_score": 0.5,  # 5
}
MODELS = [f"m{i}" for i in range(4)]
ROUNDS = 10  # each round flips every alert: firing, resolved, firing...

RULES = """
receivers:
{receivers}
rules:
{rules}
"""
# A receiver (a path) per rule: the test holds one rule's first notification in flight.
RECEIVER = '  - {{name: "{name}", url: "{url}/{name}", timeout: 10s}}'
RULE = "  - {{name: {name}, metric: {name}, threshold: {t}, renotify: 0s, receivers: [{name}]}}"


def rules_yaml(url: str) -> str:
    receivers = "\n".join(RECEIVER.format(name=n, url=url) for n in THRESHOLDS)
    rules = "\n".join(RULE.format(name=n, t=t) for n, t in THRESHOLDS.items())
    return RULES.format(receivers=receivers, url=url, rules=rules)


def partition_of(name: str, partitions: int = 6) -> int:
    """Where the bus puts a metric keyed by ``name`` (the producer's default partitioner)."""
    from aiokafka.partitioner import DefaultPartitioner

    every = list(range(partitions))
    return int(DefaultPartitioner()(name.encode(), every, every))


def round_events(r: int) -> list:
    high = r % 2 == 0
    return [
        metric_event(name, t * (3 if high else 0.2), labels={"model": m})
        for name, t in THRESHOLDS.items()
        for m in MODELS
    ]


async def wait_until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.1)


def distinct_keys(hook) -> dict[str, list]:
    by_key: dict[str, list] = defaultdict(list)
    for r in hook.delivered():
        by_key[r.headers[IDEMPOTENCY_HEADER]].append(r)
    return by_key


def transitions(hook) -> dict[str, Counter[str]]:
    """Per fingerprint: how many notifications (distinct keys) of each status arrived."""
    out: dict[str, Counter[str]] = defaultdict(Counter)
    for sent in distinct_keys(hook).values():
        body = sent[0].json()
        out[body["alerts"][0]["fingerprint"]][body["status"]] += 1
    return out


async def test_two_replicas_one_killed_every_transition_notified_once(broker, tmp_path):
    url = broker.url()
    bus = open_bus(url)
    await bus.start()
    replicas: list[Replica] = []
    # Slow answers: notifications are in flight when the replica dies (sent again after).
    async with WebhookReceiver(delay_s=0.3, hang_s=3) as hook:
        (tmp_path / "rules.yaml").write_text(rules_yaml(hook.url("/hook")))

        def replica(name: str) -> Replica:
            data = tmp_path / name
            data.mkdir()
            env = {
                "LLMLOOP_ALERTING_REPLICATED": "true",
                "LLMLOOP_ALERTING_SECRET": "s",
                "LLMLOOP_ALERTING_TICK_S": "0.2",
                "LLMLOOP_ALERTING_BACKOFF_BASE_S": "0.05",
            }
            args = ["alerting", "--data-dir", str(data), "--broker", url]
            r = Replica(name, [*args, "--rules", str(tmp_path / "rules.yaml")], env, tmp_path)
            replicas.append(r.start())
            return r

        try:
            a = replica("a")
            replica("b")
            # Both hold partitions before the stream starts (the group settles).
            await wait_until(
                lambda: set(owners(replicas).values()) == {"a", "b"} and len(owners(replicas)) == 6,
                60,
                "the two replicas never split the partitions",
            )
            expected = len(THRESHOLDS) * len(MODELS)
            held = owners(replicas)
            victim = a
            # One of the victim's rules gets no answer to its first notification: the
            # replica is killed with it in flight.
            stuck = next(n for n in THRESHOLDS if held[partition_of(n)] == "a")
            hook.script(f"/hook/{stuck}", ["timeout"])
            for r in range(4):
                await publish_metrics(bus, *round_events(r))
                await asyncio.sleep(0.3)
            await wait_until(
                lambda: any(r.answered is None for r in hook.requests), 30, "nothing in flight"
            )
            hung = next(r for r in hook.requests if r.answered is None)
            victim.kill()  # mid-stream: rounds 1-3 may still be in its outbox
            killed_at = victim.killed_at
            for r in range(4, 7):
                await publish_metrics(bus, *round_events(r))
                await asyncio.sleep(0.3)
            replica("c")  # one added back
            for r in range(7, ROUNDS):
                await publish_metrics(bus, *round_events(r))
                await asyncio.sleep(0.3)
            await wait_until(
                lambda: (
                    len(transitions(hook)) == expected
                    and all(sum(c.values()) >= ROUNDS for c in transitions(hook).values())
                ),
                90,
                "not every transition was notified",
            )
            await asyncio.sleep(1.5)  # room for a duplicate or an extra transition to show
        finally:
            for r in replicas:
                r.stop()
            await bus.close()

    by_key = distinct_keys(hook)
    # One transition, one key: every resend of a key is the same notification.
    for key, sent in by_key.items():
        assert len({r.body for r in sent}) == 1, f"key {key} carried different notifications"
    # Every alert went through every transition, each notified under exactly one key.
    # (Neither arrival order nor startsAt tells transitions apart: a backlog evaluated in
    # one batch fires and resolves several times at one instant.)
    counts = transitions(hook)
    assert len(counts) == expected
    assert all(c == {"firing": ROUNDS // 2, "resolved": ROUNDS // 2} for c in counts.values()), (
        counts
    )
    # Never two holders (nor two evaluators) of one partition at once.
    assert overlaps(holds(replicas)) == []
    assert overlaps(evaluations(replicas)) == []
    # The victim's partitions were taken over, by replicas that recovered their state.
    taken = [h for h in holds(replicas) if h.replica != victim.name and h.start > (killed_at or 0)]
    assert taken, "nobody took the killed replica's partitions over"
    failover_s = min(h.start for h in taken) - (killed_at or 0)
    print(f"first take-over {failover_s:.2f} s after the kill")
    assert failover_s < 15
    # The notification in flight at the kill was delivered later, under its key.
    hung_key = hung.headers[IDEMPOTENCY_HEADER]
    assert hung_key in by_key and by_key[hung_key][0].body == hung.body
    assert all(r.at > (killed_at or 0) for r in by_key[hung_key])
    resent = sum(len(s) - 1 for s in by_key.values())
    print(f"{len(by_key)} notifications, {resent} sent again after the kill (same key)")
