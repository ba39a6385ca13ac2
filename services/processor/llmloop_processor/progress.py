"""How far enrichment and embeddings have got, per key and window: what the statistics ask.

A window's statistics are only as good as the rows behind them. Scalar
enrichment covers every completion, so a window is *enriched* when every
completion the sink stored in it has its row in ``completion_enrichments``; its
*embedding sample* is complete when every completion chosen for embedding
there (``embedding_state = 'sampled'``) has its vectors in
``completion_embeddings``. ``window_progress`` answers both per key, with the
sample's size and rates, so a drift metric states the sample it was computed
on, and ``caught_up`` is the yes/no a statistics run asks before it computes a
window (rather than compute it on a partial backlog, silently).

The counts come from the store, so they hold across restarts and replicas. The
sink's own lag (events on the bus not stored yet) is not visible here: the
caller waits until the window closed a little while ago (the sink stores rows
within a couple of seconds), or checks the sink group's lag on ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from llmloop.store import Store

Key = tuple[str, str, str]  # (project_id, model, prompt_version)
_DT = "DateTime64(3, 'UTC')"
_WINDOW = f"ts >= {{start:{_DT}}} AND ts < {{end:{_DT}}}"


@dataclass(frozen=True)
class WindowProgress:
    """Enrichment and embedding progress of one key in one window."""

    key: Key
    completions: int  # stored by the sink
    enriched: int  # with their scalar row
    sampled: int  # chosen for embedding (legacy rows embedded in place count here too)
    embedded: int  # with their vectors
    min_rate: float | None  # the sample rates the window's completions were chosen at
    max_rate: float | None

    @property
    def enrichment_caught_up(self) -> bool:
        return self.enriched >= self.completions

    @property
    def embeddings_caught_up(self) -> bool:
        return self.embedded >= self.sampled

    @property
    def caught_up(self) -> bool:
        return self.enrichment_caught_up and self.embeddings_caught_up

    @property
    def enrichment_backlog(self) -> int:
        return max(0, self.completions - self.enriched)

    @property
    def embedding_backlog(self) -> int:
        return max(0, self.sampled - self.embedded)


def _by_key(rows: Iterable[list[Any]]) -> dict[Key, list[Any]]:
    return {(r[0], r[1], r[2]): list(r[3:]) for r in rows}


def window_progress(
    store: Store, start: datetime, end: datetime, key: Key | None = None
) -> dict[Key, WindowProgress]:
    """Per key (or for ``key`` only): completions, enriched, sampled, embedded in [start, end)."""
    where = _WINDOW
    params: dict[str, Any] = {"start": start, "end": end}
    if key is not None:
        where += (
            " AND project_id = {project:String} AND model = {model:String} "
            "AND prompt_version = {prompt_version:String}"
        )
        params |= {"project": key[0], "model": key[1], "prompt_version": key[2]}
    group = "GROUP BY project_id, model, prompt_version"
    stored = _by_key(
        store.query(
            f"SELECT project_id, model, prompt_version, uniqExact(event_id) "
            f"FROM completions WHERE {where} {group}",
            params,
        ).rows
    )
    enriched = _by_key(
        store.query(
            "SELECT project_id, model, prompt_version, uniqExact(event_id), "
            "uniqExactIf(event_id, embedding_state IN ('sampled', 'embedded')), "
            "uniqExactIf(event_id, embedded), "
            "minIf(embedding_sample_rate, embedding_state != 'off'), "
            "maxIf(embedding_sample_rate, embedding_state != 'off'), "
            "countIf(embedding_state != 'off') "
            f"FROM completion_enrichments WHERE {where} {group}",
            params,
        ).rows
    )
    vectors = _by_key(
        store.query(
            f"SELECT project_id, model, prompt_version, uniqExact(event_id) "
            f"FROM completion_embeddings WHERE {where} {group}",
            params,
        ).rows
    )
    out = {}
    for k in sorted(set(stored) | set(enriched)):
        n_enriched, sampled, in_place, lo, hi, rated = enriched.get(k, [0, 0, 0, None, None, 0])
        out[k] = WindowProgress(
            key=k,
            completions=int(stored.get(k, [0])[0]),
            enriched=int(n_enriched),
            sampled=int(sampled),
            embedded=int(in_place) + int(vectors.get(k, [0])[0]),
            min_rate=float(lo) if rated else None,
            max_rate=float(hi) if rated else None,
        )
    return out


def caught_up(store: Store, start: datetime, end: datetime, key: Key | None = None) -> bool:
    """Whether every completion of [start, end) (of ``key``, or of every key) is enriched
    and every one sampled for embedding is embedded: the window can be computed."""
    return all(p.caught_up for p in window_progress(store, start, end, key).values())


def embedded_sample(store: Store, start: datetime, end: datetime) -> dict[Key, int]:
    """Embedded completions per key in [start, end): the sample drift metrics report."""
    return {k: p.embedded for k, p in window_progress(store, start, end).items()}
