"""Which processor replica computes which key's statistics (issue 16).

Every replica runs the statistics timer, but each (project, model, prompt_version)
belongs to one partition of the events topic, ``key_partition(key, partitions)``, a
stable hash that every replica computes alike; a replica computes the keys of the
partitions its Kafka consumer group assigned to it. So the consumer group spreads keys
over replicas, and a rebalance (a replica dies, one is added) moves them with the
partitions, with nothing to coordinate beyond what Kafka already does.

What a window still rests on: its metrics are a deterministic function of the stored
rows and the window (seeds per window), and their ids are uuid5s of name, labels and
window. A replica handed a partition after a window closed leaves out the keys whose
window the store already holds (``stats.stored_windows``): recomputed on the rows stored
since (a dead replica's events, redelivered), the same ids would carry other numbers.
A replica with no assignment (mid-rebalance) computes nothing that tick, and a window
its owner did not compute is computed by the next owner when it ticks, as long as that
is before the next window closes. Left: a new owner that ticks after the old one
published a window but before the sink stored it computes it again.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

Key = tuple[str, str, str]


def key_partition(key: Key, partitions: int) -> int:
    """The events-topic partition a statistics key belongs to (stable across processes:
    crc32, never Python's salted ``hash``)."""
    return zlib.crc32("\x1f".join(key).encode()) % partitions


@dataclass(frozen=True)
class Shard:
    """The partitions of the events topic this replica owns now, out of ``partitions``."""

    owned: frozenset[int]
    partitions: int

    def owns(self, key: Key) -> bool:
        return self.partitions > 0 and key_partition(key, self.partitions) in self.owned

    @property
    def label(self) -> str:
        return f"{len(self.owned)}/{self.partitions} partitions"


# No sharding: one replica (the embedded runtime, ``llmloop processor`` on its own).
Ownership = Callable[[], Shard | None]


def everything() -> Shard | None:
    return None


def owns(shard: Shard | None, key: Key) -> bool:
    return shard is None or shard.owns(key)


def assign_like_kafka(partitions: int, replicas: int) -> list[Shard]:
    """Partitions dealt to ``replicas`` consumers round-robin, as Kafka's assignors do for
    one topic (for the bench and tests; the real assignment comes from the group)."""
    return [Shard(frozenset(range(r, partitions, replicas)), partitions) for r in range(replicas)]


def from_assignment(topic: str, assigned: Iterable[tuple[str, int]], partitions: int) -> Shard:
    """The shard of a consumer's assignment (topic, partition) pairs."""
    return Shard(frozenset(p for t, p in assigned if t == topic), partitions)
