"""The store writer: events to their tables, in batches, each event_id once.

Idempotence has two layers. The writer drops ids it already stored (a look-up
bounded to the batch's time range and the week before it, served by a
bloom-filter index) before it
inserts, so counts are exact without ``FINAL``; that is race-free because one
consumer owns a partition at a time. Behind it, every table is a
``ReplacingMergeTree`` keyed on ``event_id``, which folds any duplicate that a
rebalance race could still let through.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from llmloop.events import AnyEvent, CompletionLogged, stamped_at_ingest
from llmloop.store import Store
from llmloop_processor.contents import COMPLETION_CONTENTS, ContentJoin
from llmloop_processor.rows import SPECS as _ROW_SPECS
from llmloop_processor.rows import TableSpec, model_version_rows, uuid_chars

log = logging.getLogger(__name__)

SPECS = {**_ROW_SPECS, "completion_content": COMPLETION_CONTENTS}

# A client that leaves `timestamp` out gets "now" at ingest, so a retry of the
# same event_id carries a later time than the copy already stored: look that far back.
RETRY_WINDOW = timedelta(days=7)
# Two instrumentations of one call send two spans of one response, started within the
# call: their copies are looked for this far either side (not the RETRY_WINDOW: the look
# reads every row of its span, issue 18).
SAME_RESPONSE_WINDOW = timedelta(minutes=10)
# A batch's times this close together are looked up as one range, up to MAX_RUNS ranges.
RUN_GAP = timedelta(minutes=1)
MAX_RUNS = 16
DT = "DateTime64(3, 'UTC')"


def stored_copy(
    events: Sequence[Any], column: str = "ts", attribute: str = "timestamp"
) -> tuple[str, dict[str, Any]]:
    """Where a stored copy of one of ``events`` can be: a condition on ``event_id`` and
    ``column``, and its parameters.

    A redelivered event carries the time of the copy stored, so each event is looked
    for at its own time: the primary key then reads the granules of those times only,
    however long the history (a look over the whole ``RETRY_WINDOW`` for every event
    grew with every minute of traffic, issue 18). Times at most ``RUN_GAP`` apart are
    one range: a live batch is one or a few, where a list of its thousands of times
    cost more to parse than the look-up (bench/processor.py). Only an event whose time
    ingest stamped (``stamped_at_ingest``) is looked for over the ``RETRY_WINDOW``.
    """
    times = [getattr(e, attribute) for e in events]
    # The ids as one string, split by the engine: parsing thousands of them as an
    # Array(UUID) parameter cost twice the look-up.
    listed = uuid_chars([e.event_id for e in events], width=37).tobytes()[:-1].decode()
    params: dict[str, Any] = {"ids": listed}
    # As stored: DateTime64(3), the sub-millisecond part dropped; sorted, each once, and
    # cut into runs where consecutive times are more than RUN_GAP apart (numpy: per
    # event in Python, this was half the look-up's cost, issue 14).
    us = pa.array(times, pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy()
    ms = np.unique(us // 1000)
    cuts = np.flatnonzero(np.diff(ms) > RUN_GAP // timedelta(milliseconds=1))
    if len(cuts) < MAX_RUNS:
        starts, ends = ms[np.r_[0, cuts + 1]], ms[np.r_[cuts, len(ms) - 1]]
        ranges = [f"{column} BETWEEN {{lo{i}:{DT}}} AND {{hi{i}:{DT}}}" for i in range(len(starts))]
        where = "(" + " OR ".join(ranges) + ")"
        for i, (lo, hi) in enumerate(zip(starts, ends, strict=True)):
            params |= {f"lo{i}": _at(lo), f"hi{i}": _at(hi)}
    else:  # scattered history: each time
        params["times"] = [_at(t) for t in ms]
        where = f"{column} IN {{times:Array({DT})}}"
    stamped = [t for e, t in zip(events, times, strict=True) if stamped_at_ingest(e)]
    if stamped:
        params |= {"lo": min(stamped) - RETRY_WINDOW, "hi": max(stamped)}
        where = f"({where} OR {column} BETWEEN {{lo:{DT}}} AND {{hi:{DT}}})"
    ids = "(SELECT toUUID(arrayJoin(splitByChar(',', {ids:String}))))"
    return f"{where} AND event_id IN {ids}", params


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _at(ms: np.integer[Any]) -> datetime:
    """A time in milliseconds since the epoch as an aware datetime (exact)."""
    return _EPOCH + timedelta(milliseconds=int(ms))


@dataclass
class WriteResult:
    inserted: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0


class StoreWriter:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.join = ContentJoin(store)

    def write(self, events: Sequence[AnyEvent]) -> WriteResult:
        # Keyed by (project, event id): an id another project reused is not a duplicate.
        by_type: dict[str, dict[tuple[Any, Any], AnyEvent]] = {}
        result = WriteResult()
        # Content is written before completions (the join finds it in the table or
        # the batch either way); completions before the rest, as before.
        order = {"completion_content": 0, "completion": 1, "feedback": 2}
        for event in sorted(events, key=lambda e: order.get(e.type, 3)):
            same_type = by_type.setdefault(event.type, {})
            key = (event.project_id or "", event.event_id)
            if key in same_type:
                result.duplicates += 1
            else:
                same_type[key] = event
        contents = list(by_type.get("completion_content", {}).values())
        inserted_completions: set[tuple[str, Any]] = set()
        for event_type, unique in by_type.items():
            spec = SPECS[event_type]
            stored = self._stored_ids(spec, list(unique.values()))
            new = [e for key, e in unique.items() if key not in stored]
            result.duplicates += len(unique) - len(new)
            if event_type == "completion":
                new = self._new_responses(new, result)  # type: ignore[arg-type]
                new = self.join.fill(new, contents)  # type: ignore[arg-type]
                inserted_completions = {(e.project_id or "", e.event_id) for e in new}
            if event_type == "feedback":  # after the completions: the batch's are stored
                new = self.join.link_feedback(new)  # type: ignore[arg-type]
            if not new:
                continue
            result.inserted[spec.table] = self.store.insert(
                spec.table, spec.to_arrow(new), unique_keys=spec.keyed_by_event
            )
            if event_type == "completion_content":
                late = self.join.complete_stored(new, inserted_completions)  # type: ignore[arg-type]
                if late:
                    log.info("completed %d stored completions with content from logs", late)
            if event_type == "retrain":
                versions = model_version_rows(new)  # type: ignore[arg-type]
                if versions.num_rows:
                    result.inserted["model_versions"] = self.store.insert(
                        "model_versions", versions
                    )
        return result

    def _new_responses(
        self, events: list[CompletionLogged], result: WriteResult
    ) -> list[CompletionLogged]:
        """Drops second copies of one provider response (two instrumentations on one client).

        Per project, on ``response_id``: the first copy stored wins; in a batch, the first.
        """
        with_id = [e for e in events if e.response_id]
        if not with_id:
            return events
        times = [e.timestamp for e in with_id]
        found = self.store.query(
            "SELECT DISTINCT project_id, response_id FROM completions WHERE ts "
            "BETWEEN {lo:DateTime64(3, 'UTC')} AND {hi:DateTime64(3, 'UTC')} "
            "AND response_id IN {ids:Array(String)}",
            {
                "lo": min(times) - SAME_RESPONSE_WINDOW,
                "hi": max(times) + SAME_RESPONSE_WINDOW,
                "ids": sorted({e.response_id for e in with_id if e.response_id}),
            },
        )
        seen = {(row[0], row[1]) for row in found.rows}
        out = []
        for e in events:
            key = (e.project_id or "", e.response_id)
            if e.response_id and key in seen:
                result.duplicates += 1
                continue
            if e.response_id:
                seen.add(key)
            out.append(e)
        return out

    def _stored_ids(self, spec: TableSpec, events: list[AnyEvent]) -> set[tuple[Any, Any]]:
        where, params = stored_copy(events, spec.time_column, spec.time_attribute)
        found = self.store.query(
            f"SELECT project_id, event_id FROM {spec.table} WHERE {where}", params
        )
        return {(row[0], row[1]) for row in found.rows}
