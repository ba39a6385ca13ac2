"""Windows of enriched completions, read from the store as numpy arrays.

A window is (project, model, prompt_version) x [start, end). Reads go through
ClickHouse's ArrowStream output, so 10k embeddings arrive as one Int8 buffer,
not 3.8 million Python ints. Samples are capped and chosen by a hash of the
event id: a re-run of the same window reads the same sample.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc

from llmloop.contracts.feedback import NEGATIVE, NEGATIVE_KINDS
from llmloop.store import Store
from llmloop_processor.embed import DIM, dequantize

SCALARS = (
    "prompt_chars",
    "completion_chars",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "prompt_sentiment",
    "completion_sentiment",
    "prompt_toxicity",
    "completion_toxicity",
)
DT = "DateTime64(3, 'UTC')"

_KEY = """project_id = {project:String} AND model = {model:String}
      AND ({all_versions:Bool} OR prompt_version = {prompt_version:String}) AND {where}"""
# The embedding sample first (issue 18): it is a hash-chosen subset, so the cap keeps
# every embedded row it can instead of a few by chance.
_ORDER = "embedding_state IN ('sampled', 'embedded') DESC, {order}"
# The sample's ids, chosen on three narrow columns: sorting every column of every row
# of a window (or of a key's whole history, for the first-N reference) held hundreds of
# MB for a moment at 2,000 completions/s (issue 18).
_CHOSEN = f"""
    SELECT event_id FROM completion_enrichments WHERE {_KEY}
    ORDER BY {_ORDER} LIMIT 1 BY event_id LIMIT {{cap:UInt32}}
"""
# Then every column of those rows only (the ids are a parameter: chosen once, not once
# per subquery that needs them).
_ENRICHED = f"""
    SELECT * FROM completion_enrichments WHERE {_KEY} AND event_id IN {{ids:Array(UUID)}}
    ORDER BY {_ORDER} LIMIT 1 BY event_id
"""
_SELECT = f"""
SELECT e.event_id AS event_id, e.ts AS ts, {", ".join("e." + c + " AS " + c for c in SCALARS)},
       e.toxic AS toxic, e.refusal AS refusal, e.attributes AS attributes,
       e.demographics AS demographics,
       e.embedded OR length(v.prompt_embedding) = {DIM} AS embedded,
       if(e.embedded, e.prompt_embedding, v.prompt_embedding) AS prompt_embedding,
       if(e.embedded, e.completion_embedding, v.completion_embedding) AS completion_embedding,
       f.negative AS negative_feedback,
       c.prompt_hash AS prompt_hash, c.completion_hash AS completion_hash, c.grp AS grp
FROM ({_ENRICHED}) AS e
LEFT JOIN (
    -- Vectors written after the scalar row by the embedding stage (issue 18).
    SELECT event_id, prompt_embedding, completion_embedding FROM completion_embeddings
    WHERE project_id = {{project:String}} AND model = {{model:String}}
      AND event_id IN {{ids:Array(UUID)}}
    LIMIT 1 BY event_id
) AS v ON v.event_id = e.event_id
LEFT JOIN (
    SELECT completion_id, {NEGATIVE} AS negative
    FROM feedback
    WHERE project_id = {{project:String}} AND kind IN ({NEGATIVE_KINDS})
    GROUP BY completion_id
) AS f ON f.completion_id = e.event_id
LEFT JOIN (
    -- What makes rows not exchangeable (see exchangeable.py): same text, same session.
    SELECT event_id, cityHash64(prompt) AS prompt_hash, cityHash64(completion) AS completion_hash,
           multiIf(session_id != '', concat('s:', session_id),
                   user_id != '', concat('u:', user_id), '') AS grp
    FROM completions
    WHERE project_id = {{project:String}} AND model = {{model:String}}
      AND event_id IN {{ids:Array(UUID)}}
    LIMIT 1 BY event_id
) AS c ON c.event_id = e.event_id
SETTINGS join_use_nulls = 1
"""


@dataclass(frozen=True)
class Window:
    """The enriched completions of one window (a capped, deterministic sample)."""

    scalars: dict[str, np.ndarray]
    toxic: np.ndarray
    refusal: np.ndarray
    negative_feedback: np.ndarray  # 1 / 0, NaN where a completion got no feedback
    attributes: list[dict[str, str]]
    demographics: list[list[str]]
    prompt_embeddings: np.ndarray  # (k, 384) float32, only the embedded rows
    completion_embeddings: np.ndarray
    ts_max: datetime | None = None  # the newest completion in the sample
    # Per row: text hashes (0 when unknown) and the session (or user) the row belongs
    # to ('' when the app sent neither), for collapsing rows that are not exchangeable.
    prompt_hash: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    completion_hash: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    group: list[str] = field(default_factory=list)
    embedded: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    @property
    def size(self) -> int:
        return len(self.toxic)

    def text_hashes(self, which: str) -> np.ndarray:
        """The ``prompt`` or ``completion`` hash of each embedded row."""
        hashes = self.prompt_hash if which == "prompt" else self.completion_hash
        return hashes[self.embedded]

    def embedded_groups(self) -> list[str]:
        return [g for g, e in zip(self.group, self.embedded, strict=True) if e]

    def embeddings(self, which: str) -> np.ndarray:
        return self.prompt_embeddings if which == "prompt" else self.completion_embeddings


def read_arrow(store: Store, sql: str, params: dict[str, Any]) -> pa.Table:
    raw = store.query_raw(sql, "ArrowStream", params)
    if not raw:
        return pa.table({})
    return pa.ipc.open_stream(io.BytesIO(raw)).read_all()


def _embeddings(column: pa.ChunkedArray, mask: np.ndarray) -> np.ndarray:
    if not mask.any():
        return np.zeros((0, DIM), dtype=np.float32)
    kept = column.filter(pa.array(mask)).combine_chunks()
    flat = kept.flatten().to_numpy(zero_copy_only=False)
    return dequantize(flat.reshape(len(kept), -1))


def _window(table: pa.Table) -> Window:
    if table.num_rows == 0:
        empty = np.zeros(0)
        return Window(
            {c: empty for c in SCALARS},
            empty,
            empty,
            empty,
            [],
            [],
            np.zeros((0, DIM), np.float32),
            np.zeros((0, DIM), np.float32),
        )
    embedded = table["embedded"].to_numpy(zero_copy_only=False).astype(bool)
    # A row marked embedded always has both vectors; the length check guards old rows.
    lengths = np.asarray(
        pa.compute.list_value_length(table["prompt_embedding"]).to_numpy(zero_copy_only=False)
    )
    embedded &= lengths == DIM
    negative = table["negative_feedback"].to_numpy(zero_copy_only=False)
    return Window(
        scalars={
            c: np.asarray(table[c].to_numpy(zero_copy_only=False), dtype=float) for c in SCALARS
        },
        toxic=table["toxic"].to_numpy(zero_copy_only=False).astype(float),
        refusal=table["refusal"].to_numpy(zero_copy_only=False).astype(float),
        negative_feedback=np.asarray([np.nan if v is None else v for v in negative], dtype=float),
        attributes=[dict(a) for a in table["attributes"].to_pylist()],
        demographics=table["demographics"].to_pylist(),
        prompt_embeddings=_embeddings(table["prompt_embedding"], embedded),
        completion_embeddings=_embeddings(table["completion_embedding"], embedded),
        ts_max=pa.compute.max(table["ts"]).as_py(),
        prompt_hash=_hashes(table["prompt_hash"]),
        completion_hash=_hashes(table["completion_hash"]),
        group=[g or "" for g in table["grp"].to_pylist()],
        embedded=embedded,
    )


def _hashes(column: pa.ChunkedArray) -> np.ndarray:
    return np.asarray([h or 0 for h in column.to_pylist()], dtype=np.uint64)


def keys(
    store: Store, start: datetime, end: datetime, min_samples: int
) -> list[tuple[str, str, str]]:
    """(project, model, prompt_version) with at least ``min_samples`` completions in the window."""
    result = store.query(
        "SELECT project_id, model, prompt_version FROM completion_enrichments "
        f"WHERE ts >= {{start:{DT}}} AND ts < {{end:{DT}}} "
        # uniq, not uniqExact: a gate, not a figure; an exact set of every id of a
        # busy window held ~60 MB for a moment (issue 18).
        "GROUP BY project_id, model, prompt_version HAVING uniq(event_id) >= {n:UInt32} "
        "ORDER BY project_id, model, prompt_version",
        {"start": start, "end": end, "n": min_samples},
    )
    return [tuple(row) for row in result.rows]  # type: ignore[misc]


def _key_params(key: tuple[str, str, str | None]) -> dict[str, Any]:
    """Query parameters of a key; prompt_version None means every version of the model."""
    project, model, version = key
    return {
        "project": project,
        "model": model,
        "prompt_version": version or "",
        "all_versions": version is None,
    }


_IN_SPAN = f"ts >= {{start:{DT}}} AND ts < {{end:{DT}}}"


def _sample(store: Store, where: str, order: str, params: dict[str, Any]) -> Window:
    """The capped sample ``where`` selects, in ``order`` (embedded rows first): its ids,
    then its rows."""
    chosen = _CHOSEN.replace("{where}", where).replace("{order}", order)
    ids = [row[0] for row in store.query(chosen, params).rows]
    if not ids:
        return _window(pa.table({}))
    sql = _SELECT.replace("{where}", where).replace("{order}", order)
    return _window(read_arrow(store, sql, {**params, "ids": ids}))


def current(
    store: Store, key: tuple[str, str, str | None], start: datetime, end: datetime, cap: int
) -> Window:
    """A sample of at most ``cap`` completions of the window [start, end)."""
    params = {**_key_params(key), "start": start, "end": end, "cap": cap}
    return _sample(store, _IN_SPAN, "cityHash64(event_id)", params)


def baseline(store: Store, key: tuple[str, str, str | None]) -> tuple[datetime, datetime] | None:
    """The pinned reference window of a key (its own, else the model's), if any."""
    project, model, prompt_version = key
    result = store.query(
        "SELECT window_start, window_end FROM drift_baselines FINAL "
        "WHERE project_id = {project:String} AND model = {model:String} "
        "AND prompt_version IN ({prompt_version:String}, '') "
        "ORDER BY prompt_version = '' LIMIT 1",
        {"project": project, "model": model, "prompt_version": prompt_version or ""},
    )
    return None if not result.rows else (result.rows[0][0], result.rows[0][1])


def reference(
    store: Store,
    key: tuple[str, str, str | None],
    size: int,
    cap: int,
    *,
    rolling: tuple[datetime, datetime] | None = None,
    min_rows: int = 2,
) -> tuple[Window, str]:
    """The reference sample and what it is: ``pinned`` (a baseline set with ``llmloop
    baseline set``), ``rolling`` (the given earlier span, when it holds ``min_rows``),
    else ``first_n`` (the key's first ``size`` completions)."""
    params = _key_params(key)
    pinned = baseline(store, key)
    if pinned is not None:
        span = {**params, "start": pinned[0], "end": pinned[1], "cap": cap}
        return _sample(store, _IN_SPAN, "cityHash64(event_id)", span), "pinned"
    if rolling is not None:
        span = {**params, "start": rolling[0], "end": rolling[1], "cap": cap}
        window = _sample(store, _IN_SPAN, "cityHash64(event_id)", span)
        if window.size >= min_rows:
            return window, "rolling"
    return _sample(store, "1", "ts, event_id", {**params, "cap": min(size, cap)}), "first_n"
