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
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from llmloop.events import AnyEvent
from llmloop.store import Store
from llmloop_processor.rows import SPECS, TableSpec, model_version_rows

log = logging.getLogger(__name__)

# A client that leaves `timestamp` out gets "now" at ingest, so a retry of the
# same event_id carries a later time than the copy already stored: look that far back.
RETRY_WINDOW = timedelta(days=7)


@dataclass
class WriteResult:
    inserted: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0


class StoreWriter:
    def __init__(self, store: Store) -> None:
        self.store = store

    def write(self, events: Sequence[AnyEvent]) -> WriteResult:
        # Keyed by (project, event id): an id another project reused is not a duplicate.
        by_type: dict[str, dict[tuple[Any, Any], AnyEvent]] = defaultdict(dict)
        result = WriteResult()
        for event in events:
            same_type = by_type[event.type]
            key = (event.project_id or "", event.event_id)
            if key in same_type:
                result.duplicates += 1
            else:
                same_type[key] = event
        for event_type, unique in by_type.items():
            spec = SPECS[event_type]
            stored = self._stored_ids(spec, list(unique.values()))
            new = [e for key, e in unique.items() if key not in stored]
            result.duplicates += len(unique) - len(new)
            if not new:
                continue
            result.inserted[spec.table] = self.store.insert(spec.table, spec.to_arrow(new))
            if event_type == "retrain":
                versions = model_version_rows(new)  # type: ignore[arg-type]
                if versions.num_rows:
                    result.inserted["model_versions"] = self.store.insert(
                        "model_versions", versions
                    )
        return result

    def _stored_ids(self, spec: TableSpec, events: list[AnyEvent]) -> set[tuple[Any, Any]]:
        times = [getattr(e, spec.time_attribute) for e in events]
        found = self.store.query(
            f"SELECT project_id, event_id FROM {spec.table} WHERE {spec.time_column} "
            "BETWEEN {lo:DateTime64(3, 'UTC')} AND {hi:DateTime64(3, 'UTC')} "
            "AND event_id IN {ids:Array(UUID)}",
            {
                "lo": min(times) - RETRY_WINDOW,
                "hi": max(times),
                "ids": [e.event_id for e in events],
            },
        )
        return {(row[0], row[1]) for row in found.rows}
