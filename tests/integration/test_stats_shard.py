"""Statistics split across processor replicas (issue 16): every key's window is computed
by exactly one replica of a Kafka-like assignment, the union is what one replica computes
alone, and a rebalance hands a dead replica's keys to the others. Real chDB, the real
timer's compute(); replicas are StatsRunners with the shards a consumer group would give.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from llmloop.bus import open_bus
from llmloop_processor import synthetic
from llmloop_processor.settings import ProcessorSettings
from llmloop_processor.shard import Shard, assign_like_kafka, key_partition
from llmloop_processor.stats import StatsRunner
from llmloop_processor.writer import StoreWriter

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
INTERVAL = 600.0
PARTITIONS = 6
KEYS = synthetic.keys(12)


@pytest.fixture
def window(store):
    start = NOW - timedelta(seconds=INTERVAL)
    day = timedelta(days=1)
    synthetic.write(store, KEYS, 25, start - day, NOW - day, seed=1)  # the first N: reference
    synthetic.write(store, KEYS, 25, start, NOW, seed=2)
    return store, start, NOW


def runner(store, tmp_path, shard: Shard | None, workers: int = 1) -> StatsRunner:
    s = ProcessorSettings(
        data_dir=tmp_path,
        processor_stats_interval_s=INTERVAL,
        processor_stats_window_s=INTERVAL,
        processor_permutations=50,
        processor_reference_size=25,
        processor_min_samples=20,
        processor_feedback_settle_s=0,
        processor_profiles=False,
        processor_stats_workers=workers,
    )
    return StatsRunner(store, open_bus("memory://"), s, ownership=lambda: shard)


def by_id(metrics) -> dict:
    return {m.event_id: (m.name, m.value, m.p_value, m.sample_size) for m in metrics}


def key_of(m) -> tuple[str, str, str]:
    return (m.labels["project"], m.labels["model"], m.labels["prompt_version"])


def test_the_keys_spread_over_every_partition():
    assert {key_partition(k, PARTITIONS) for k in KEYS} == set(range(PARTITIONS))


@pytest.mark.parametrize("replicas", [2, 3])
def test_replicas_split_the_keys_and_together_compute_what_one_computes(window, tmp_path, replicas):
    store, start, end = window
    alone = runner(store, tmp_path, None)
    everything = by_id(alone.compute(start, end))
    assert alone.last_keys == len(KEYS)
    assert any(name == "drift_embedding_mmd" for name, *_ in everything.values())
    seen: dict = {}
    keys_computed = []
    for shard in assign_like_kafka(PARTITIONS, replicas):
        part = runner(store, tmp_path, shard)
        metrics = part.compute(start, end)
        assert {key_of(m) for m in metrics} == {k for k in KEYS if shard.owns(k)}
        assert not set(by_id(metrics)) & set(seen)  # no metric computed twice
        seen |= by_id(metrics)
        keys_computed.append(part.last_keys)
    assert seen == everything  # same ids, same values: deterministic per window
    assert sum(keys_computed) == len(KEYS) and max(keys_computed) < len(KEYS)


def test_after_a_rebalance_the_survivors_compute_the_dead_replicas_keys(window, tmp_path):
    store, start, end = window
    everything = by_id(runner(store, tmp_path, None).compute(start, end))
    before = assign_like_kafka(PARTITIONS, 3)
    after = assign_like_kafka(PARTITIONS, 2)  # replica 3 died; the group reassigned
    dead_keys = {k for k in KEYS if before[2].owns(k)}
    assert dead_keys
    survivors: dict = {}
    for shard in after:
        survivors |= by_id(runner(store, tmp_path, shard).compute(start, end))
    assert survivors == everything


def test_a_window_stored_by_its_last_owner_is_not_computed_again(window, tmp_path):
    """A replica handed a partition after the window closed (a rebalance, a restart) leaves
    out the keys whose window its last owner computed and stored: on the rows stored since
    it would publish other numbers under the same metric ids. The keys of an owner that
    died before computing the window are computed by the new owner."""
    store, start, end = window
    everything = by_id(runner(store, tmp_path, None).compute(start, end))
    before = assign_like_kafka(PARTITIONS, 2)
    stored = before[0].owns
    first = runner(store, tmp_path, before[0]).compute(start, end)
    StoreWriter(store).write(first)  # replica 2 died before computing the window
    survivor = runner(store, tmp_path, None)  # now owns every partition
    rest = survivor.compute(start, end)
    assert {key_of(m) for m in rest} == {k for k in KEYS if not stored(k)}
    assert survivor.last_stored == sum(stored(k) for k in KEYS) > 0
    assert by_id(first) | by_id(rest) == everything
    StoreWriter(store).write(rest)
    restarted = runner(store, tmp_path, None)
    assert restarted.compute(start, end) == [] and restarted.last_stored == len(KEYS)


def test_keys_in_parallel_give_the_serial_result_in_the_same_order(window, tmp_path):
    store, start, end = window
    serial = runner(store, tmp_path, None, workers=1).compute(start, end)
    parallel = runner(store, tmp_path, None, workers=3).compute(start, end)
    assert [m.event_id for m in parallel] == [m.event_id for m in serial]
    assert by_id(parallel) == by_id(serial)


def test_a_replica_without_partitions_computes_nothing(window, tmp_path):
    store, start, end = window
    idle = runner(store, tmp_path, Shard(frozenset(), PARTITIONS))
    assert idle.compute(start, end) == [] and idle.last_keys == 0
