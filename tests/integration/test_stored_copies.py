"""The writers' look for a stored copy of each event (exactly once) reads the batch's own
times, not the history: over the whole retry window it grew with every minute of
traffic (issue 18). Only an event whose time ingest stamped is looked for further back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from llmloop.events import encode_event, mark_stamped_at_ingest, parse_event
from llmloop.store import open_store
from llmloop.store.migrate import migrate
from llmloop_processor.writer import MAX_RUNS, SPECS, StoreWriter, stored_copy

START = datetime(2026, 11, 2, 9, 0, 0, 123456, tzinfo=UTC)  # sub-millisecond part on purpose


def completion(at: datetime, **extra: object):
    return parse_event(
        orjson.dumps(
            {
                "type": "completion",
                "event_id": str(uuid.uuid4()),
                "timestamp": at.isoformat(),
                "model": "m",
                "prompt": "a question",
                "completion": "an answer",
                "project_id": "default",
                **extra,
            }
        )
    )


@pytest.fixture(params=["chdb", "clickhouse"])
def any_store(request, tmp_path):
    """The embedded store and the ``clickhouse://`` adapter (its parameters bind otherwise)."""
    url = (
        f"chdb:///{tmp_path}/chdb"
        if request.param == "chdb"
        else request.getfixturevalue("clickhouse_url")
    )
    store = open_store(url)
    migrate(store)
    yield store
    store.close()


def test_a_redelivered_batch_is_found_and_only_its_own_times_are_read(any_store):
    # Three batches a day apart, one part each.
    batches = [
        [completion(START + timedelta(days=d, milliseconds=i)) for i in range(50)] for d in range(3)
    ]
    writer = StoreWriter(any_store)
    for events in batches:
        assert writer.write(events).inserted == {"completions": 50}

    # Delivered again (the bytes, as a consumer that restarts reads them): all found.
    again = [parse_event(encode_event(e)) for e in batches[-1]]
    result = writer.write(again)
    assert (result.inserted, result.duplicates) == ({}, 50)
    assert any_store.query("SELECT count() FROM completions").scalar() == 150

    where, params = stored_copy(again)
    plan = any_store.query_raw(
        f"EXPLAIN indexes = 1 SELECT event_id FROM completions WHERE {where}", params=params
    ).decode()
    minmax = plan.split("Min-Max", 1)[1].split("Partition", 1)[0]
    # The look at a week of history would read all three parts.
    assert "Parts: 1/3" in minmax, plan


def test_a_retry_whose_time_ingest_stamped_is_found_days_later(any_store):
    writer = StoreWriter(any_store)
    first = mark_stamped_at_ingest(completion(START))
    assert writer.write([first]).inserted == {"completions": 1}

    # The client sent no timestamp, and retried two days later: ingest stamped a new one.
    body = orjson.loads(encode_event(first))
    retry = mark_stamped_at_ingest(
        parse_event(orjson.dumps({**body, "timestamp": (START + timedelta(days=2)).isoformat()}))
    )
    result = writer.write([retry])
    assert (result.inserted, result.duplicates) == ({}, 1)

    # A batch mixing both kinds: the stamped one found far back, the other at its time.
    fresh = completion(START + timedelta(days=3))
    result = writer.write([retry, fresh, parse_event(encode_event(first))])
    assert (result.inserted, result.duplicates) == ({"completions": 1}, 2)
    assert any_store.query("SELECT count() FROM completions").scalar() == 2


def test_times_close_together_are_one_range_and_scattered_ones_each_their_own(any_store):
    """A live batch's thousands of times are looked up as a few ranges (a list of them
    cost more to parse than the look-up); copies from far apart are each found."""
    writer = StoreWriter(any_store)
    live = [completion(START + timedelta(milliseconds=7 * i)) for i in range(2_000)]
    old = [completion(START - timedelta(days=1, minutes=5 * i)) for i in range(3)]
    scattered = [completion(START - timedelta(hours=2 * i + 3)) for i in range(MAX_RUNS + 4)]
    writer.write(live + old + scattered)

    mixed = [parse_event(encode_event(e)) for e in live + old]
    where, params = stored_copy(mixed)
    assert where.count("BETWEEN") == 4 and "times" not in params  # the live run + 3 old
    result = writer.write([*mixed, completion(START + timedelta(seconds=20))])
    assert (result.inserted, result.duplicates) == ({"completions": 1}, len(mixed))

    again = [parse_event(encode_event(e)) for e in scattered]
    where, params = stored_copy(again)
    assert len(params["times"]) == len(scattered)  # more runs than MAX_RUNS: by time
    assert (writer.write(again).inserted, writer.write(again).duplicates) == ({}, len(again))
    total = len(live) + len(old) + len(scattered) + 1
    assert any_store.query("SELECT count() FROM completions").scalar() == total


def test_only_tables_keyed_by_the_event_skip_the_fold_on_insert(tmp_path):
    # The writer inserts a deduplicated batch without the engine's fold on insert
    # (unique_keys) only where the table's key holds the project and the event id: no two
    # of the batch's rows share it. Elsewhere (a baseline pin per key) the engine folds.
    store = open_store(f"chdb:///{tmp_path}/chdb")
    migrate(store)
    keys = dict(
        store.query(
            "SELECT name, sorting_key FROM system.tables WHERE database = currentDatabase()"
        ).rows
    )
    store.close()
    for spec in SPECS.values():
        parts = {p.strip() for p in keys[spec.table].split(",")}
        assert spec.keyed_by_event == ({"project_id", "event_id"} <= parts), spec.table
    assert not SPECS["baseline"].keyed_by_event
