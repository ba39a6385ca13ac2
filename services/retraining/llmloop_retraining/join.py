"""The stateful join of feedback to completions, kept in a SQLite file that survives restarts.

Completions and their feedback share a key (the completion id), hence a
partition; the join remembers each completion until feedback about it arrives,
parks feedback that came before its completion, and emits pairs. Every batch
is applied in one transaction, together with the ids of the events it saw, and
the consumer commits its offsets only after that: a crash redelivers the batch,
and the seen ids make the redelivery harmless. A restart therefore resumes with
exactly the state the last committed batch left.

Near-duplicate prompts for thumbs pairs: with ``near_duplicates`` on, a thumbs-up
also pairs with a thumbs-down of the same model whose prompt embedding has
cosine >= the threshold. The embeddings are the processor's (the completions it
sampled for embedding carry one, ``lookup.py``); a completion it did not embed
pairs on prompts equal after normalisation only, as every completion does with
the option off.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from llmloop.events import (
    AnyEvent,
    CompletionLogged,
    CorrectionFeedback,
    FeedbackGiven,
    PreferenceFeedback,
    ThumbsFeedback,
)
from llmloop.localdb import open_db
from llmloop_retraining import pairs as P
from llmloop_retraining.filters import drop_reasons

_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (event_id TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS completions (
    id TEXT PRIMARY KEY, project_id TEXT, model TEXT, prompt TEXT, prompt_key TEXT,
    completion TEXT, ts TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending (
    event_id TEXT PRIMARY KEY, waiting_for TEXT, payload BLOB) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pending_waiting ON pending (waiting_for);
CREATE TABLE IF NOT EXISTS thumbs (
    event_id TEXT PRIMARY KEY, completion_id TEXT, project_id TEXT, model TEXT,
    prompt_key TEXT, value INTEGER, embedding BLOB, seq INTEGER);
CREATE INDEX IF NOT EXISTS thumbs_key ON thumbs (project_id, model, prompt_key, value);
CREATE TABLE IF NOT EXISTS pairs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, pair_id TEXT UNIQUE, project_id TEXT, model TEXT,
    source TEXT, data BLOB);
CREATE TABLE IF NOT EXISTS drops (
    model TEXT, reason TEXT, n INTEGER, PRIMARY KEY (model, reason)) WITHOUT ROWID;
"""
# The processor's toxicity of each remembered answer (issue 14: retraining scores nothing
# the processor scored).
_TOXICITY = "ALTER TABLE completions ADD COLUMN toxicity REAL;"


@dataclass
class BatchResult:
    """What one batch added: new pairs, and drops by reason."""

    pairs: list[P.Pair] = field(default_factory=list)
    drops: Counter[str] = field(default_factory=Counter)
    skipped: int = 0  # events seen before (redelivery)


class PairJoin:
    """Feedback joined to completions, pairs built, filtered and deduplicated; durable."""

    def __init__(
        self,
        path: Path,
        *,
        near_duplicates: bool = False,
        near_duplicate_cosine: float = 0.92,
        max_thumbs_partners: int = 3,
        toxicity_threshold: float = 0.8,
        near_duplicate_window: int = 5_000,
    ) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = open_db(path, [_SCHEMA, _TOXICITY], what="the retraining join", owner="join")
        self.near_duplicates = near_duplicates
        self.cosine = near_duplicate_cosine
        self.max_partners = max_thumbs_partners
        self.toxicity_threshold = toxicity_threshold
        self.window = near_duplicate_window
        self._batch: dict[str, P.Completion] = {}  # completions of the batch being applied
        self._waiting: set[str] = set()  # completion ids with parked feedback, this batch
        self._turn = ""  # waiting_for goes on after this id

    def close(self) -> None:
        self.db.close()

    # --- the batch -----------------------------------------------------------------

    def apply(
        self, events: Iterable[AnyEvent], completions: Sequence[P.Completion] = ()
    ) -> BatchResult:
        """Apply a batch in one transaction; returns the pairs it added.

        ``completions`` come without their events (replicated retraining: the ones a
        feedback refers to, read from the store by the replica that saw the feedback);
        they join like completion events at the head of the batch, never deduplicated
        by id (a repeat replaces the same row).

        Every completion is remembered, most never get feedback: so the batch reads
        which of its events were seen and which completions have parked feedback in
        one query each, and writes its completions and seen ids in one statement
        each, instead of four statements per completion.
        """
        result = BatchResult()
        candidates: list[P.Pair] = []
        relevant = [e for e in events if isinstance(e, CompletionLogged | FeedbackGiven)]
        # Per project: another project reusing an id must not hide this event.
        keys = [f"{e.project_id or ''}/{e.event_id}" for e in relevant]
        self.db.execute("BEGIN IMMEDIATE")
        try:
            seen = self._present("seen", "event_id", keys)
            completion_ids = [str(e.event_id) for e in relevant if isinstance(e, CompletionLogged)]
            completion_ids += [c.id for c in completions]
            self._waiting = self._present("pending", "waiting_for", completion_ids)
            self._batch = {}
            for c in completions:
                self._batch[c.id] = c
                if c.id in self._waiting:
                    for payload in self._pending_for(c.id):
                        self._feedback(_parse_feedback(payload), candidates, result.drops)
            new: list[tuple[str]] = []
            for event, key in zip(relevant, keys, strict=True):
                if key in seen:
                    result.skipped += 1
                    continue
                seen.add(key)
                new.append((key,))
                if isinstance(event, CompletionLogged):
                    c = P.Completion.from_event(event)
                    self._batch[c.id] = c
                    if c.id in self._waiting:
                        for payload in self._pending_for(c.id):
                            self._feedback(_parse_feedback(payload), candidates, result.drops)
                else:
                    self._feedback(event, candidates, result.drops)
            self.db.executemany("INSERT OR IGNORE INTO seen VALUES (?)", new)
            self._store_completions(list(self._batch.values()))
            self._keep(candidates, result)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        finally:
            self._batch, self._waiting = {}, set()
        return result

    def _present(self, table: str, column: str, values: Sequence[str]) -> set[str]:
        """Which of ``values`` are in ``table.column``, in chunks under SQLite's limit."""
        found: set[str] = set()
        for i in range(0, len(values), 900):
            chunk = values[i : i + 900]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                f"SELECT {column} FROM {table} WHERE {column} IN ({marks})", chunk
            ).fetchall()
            found.update(r[0] for r in rows)
        return found

    def _keep(self, candidates: list[P.Pair], result: BatchResult) -> None:
        for pair, reason in zip(
            candidates, drop_reasons(candidates, self.toxicity_threshold), strict=True
        ):
            if reason is None:
                inserted = self.db.execute(
                    "INSERT OR IGNORE INTO pairs (pair_id, project_id, model, source, data) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (
                        pair.pair_id,
                        pair.project_id,
                        pair.model,
                        pair.source,
                        orjson.dumps(pair.to_dict()),
                    ),
                ).rowcount
                reason = None if inserted else "duplicate"
                if inserted:
                    result.pairs.append(pair)
            if reason is not None:
                result.drops[reason] += 1
                self.db.execute(
                    "INSERT INTO drops VALUES (?, ?, 1) "
                    "ON CONFLICT (model, reason) DO UPDATE SET n = n + 1",
                    (pair.model, reason),
                )

    # --- completions and feedback ------------------------------------------------------

    def _store_completions(self, completions: Sequence[P.Completion]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO completions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    c.id,
                    c.project_id,
                    c.model,
                    orjson.dumps(c.prompt).decode(),
                    c.prompt_key,
                    c.completion,
                    c.timestamp.isoformat(),
                    c.toxicity,
                )
                for c in completions
            ],
        )

    def completion(self, completion_id: str, project_id: str | None) -> P.Completion | None:
        """The completion, if ``project_id`` logged it: feedback never reaches across projects."""
        batch = self._batch.get(completion_id)  # logged earlier in the batch being applied
        if batch is not None:
            return batch if batch.project_id == (project_id or "") else None
        row = self.db.execute(
            "SELECT id, project_id, model, prompt, completion, ts, toxicity FROM completions "
            "WHERE id = ? AND project_id = ?",
            (completion_id, project_id or ""),
        ).fetchone()
        if row is None:
            return None
        return P.Completion(
            row[0], row[1], row[2], orjson.loads(row[3]), row[4], datetime.fromisoformat(row[5]),
            toxicity=row[6],
        )  # fmt: skip

    def _pending_for(self, completion_id: str) -> list[bytes]:
        rows = self.db.execute(
            "SELECT event_id, payload FROM pending WHERE waiting_for = ?", (completion_id,)
        ).fetchall()
        self.db.execute("DELETE FROM pending WHERE waiting_for = ?", (completion_id,))
        return [r[1] for r in rows]

    def _park(self, event: FeedbackGiven, waiting_for: str) -> None:
        self._waiting.add(waiting_for)
        self.db.execute(
            "INSERT OR REPLACE INTO pending VALUES (?, ?, ?)",
            (str(event.event_id), waiting_for, event.model_dump_json().encode()),
        )

    def _feedback(self, event: FeedbackGiven, out: list[P.Pair], drops: Counter[str]) -> None:
        eid, at, project = str(event.event_id), event.timestamp, event.project_id
        if isinstance(event, PreferenceFeedback):
            chosen = self.completion(str(event.chosen_id), project)
            rejected = self.completion(str(event.rejected_id), project)
            if chosen is None or rejected is None:
                missing = event.chosen_id if chosen is None else event.rejected_id
                self._park(event, str(missing))
                return
            self._collect(P.from_preference(chosen, rejected, eid, at), out, drops, chosen.model)
        elif isinstance(event, CorrectionFeedback):
            original = self.completion(str(event.completion_id), project)
            if original is None:
                self._park(event, str(event.completion_id))
                return
            self._collect(
                P.from_correction(original, event.correction, eid, at), out, drops, original.model
            )
        elif isinstance(event, ThumbsFeedback):
            rated = self.completion(str(event.completion_id), project)
            if rated is None:
                self._park(event, str(event.completion_id))
                return
            self._thumbs(event, rated, out, drops)

    def _thumbs(
        self, event: ThumbsFeedback, rated: P.Completion, out: list[P.Pair], drops: Counter[str]
    ) -> None:
        vector = rated.prompt_vector if self.near_duplicates else None
        self.db.execute(
            "INSERT OR IGNORE INTO thumbs VALUES (?, ?, ?, ?, ?, ?, ?, "
            "(SELECT COALESCE(MAX(seq), 0) + 1 FROM thumbs))",
            (
                str(event.event_id),
                rated.id,
                rated.project_id,
                rated.model,
                rated.prompt_key,
                event.value,
                None if vector is None else vector.tobytes(),
            ),
        )
        partners = self._partners(rated, -event.value, vector)
        for other_id, other_event in partners[: self.max_partners]:
            other = self.completion(other_id, rated.project_id)
            if other is None:
                continue
            up, down = (rated, other) if event.value == 1 else (other, rated)
            ids = (str(event.event_id), other_event)
            self._collect(P.from_thumbs(up, down, ids, event.timestamp), out, drops, rated.model)

    def _partners(
        self, rated: P.Completion, value: int, vector: np.ndarray | None
    ) -> list[tuple[str, str]]:
        """Opposite thumbs, same model: same prompt first, then near-duplicates by cosine."""
        exact = self.db.execute(
            "SELECT completion_id, event_id FROM thumbs WHERE project_id = ? AND model = ? "
            "AND prompt_key = ? AND value = ? AND completion_id != ? ORDER BY seq DESC LIMIT ?",
            (rated.project_id, rated.model, rated.prompt_key, value, rated.id, self.max_partners),
        ).fetchall()
        found = [(r[0], r[1]) for r in exact]
        if vector is None or len(found) >= self.max_partners:
            return found
        rows = self.db.execute(
            "SELECT completion_id, event_id, embedding FROM thumbs WHERE project_id = ? "
            "AND model = ? AND prompt_key != ? AND value = ? AND embedding IS NOT NULL "
            "ORDER BY seq DESC LIMIT ?",
            (rated.project_id, rated.model, rated.prompt_key, value, self.window),
        ).fetchall()
        if rows:
            matrix = np.frombuffer(b"".join(r[2] for r in rows), np.float32).reshape(len(rows), -1)
            scores = matrix @ vector
            order = np.argsort(-scores)
            found += [(rows[i][0], rows[i][1]) for i in order if scores[i] >= self.cosine]
        return found

    def _collect(
        self, made: P.Pair | str, out: list[P.Pair], drops: Counter[str], model: str
    ) -> None:
        if isinstance(made, str):
            drops[made] += 1
            self.db.execute(
                "INSERT INTO drops VALUES (?, ?, 1) "
                "ON CONFLICT (model, reason) DO UPDATE SET n = n + 1",
                (model, made),
            )
        else:
            out.append(made)

    # --- reads ---------------------------------------------------------------------------

    def pairs(self, model: str, *, after_seq: int = 0) -> list[tuple[int, P.Pair]]:
        rows = self.db.execute(
            "SELECT seq, data FROM pairs WHERE model = ? AND seq > ? ORDER BY seq",
            (model, after_seq),
        ).fetchall()
        return [(r[0], P.Pair.from_dict(orjson.loads(r[1]))) for r in rows]

    def count(self, model: str, *, after_seq: int = 0) -> int:
        """How many pairs ``model`` has (after ``after_seq``), without loading them."""
        row = self.db.execute(
            "SELECT COUNT(*) FROM pairs WHERE model = ? AND seq > ?", (model, after_seq)
        ).fetchone()
        return int(row[0])

    def last_seq(self, model: str) -> int:
        row = self.db.execute("SELECT MAX(seq) FROM pairs WHERE model = ?", (model,)).fetchone()
        return int(row[0] or 0)

    def models(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT model FROM pairs ORDER BY model")]

    def waiting_for(self, limit: int = 1000) -> list[str]:
        """The next ``limit`` completion ids that parked feedback waits for, in turns.

        Each call goes on after the last id the one before returned, and starts over
        past the end: every waiting id comes up within ``waiting / limit + 1`` calls.
        (From the start each time, a thousand feedback naming completions that never
        come, a typo'd id, another project's, would hide all later feedback for good.)
        """
        rows = self.db.execute(
            "SELECT DISTINCT waiting_for FROM pending WHERE waiting_for > ? "
            "ORDER BY waiting_for LIMIT ?",
            (self._turn, limit),
        ).fetchall()
        ids = [r[0] for r in rows]
        self._turn = ids[-1] if len(ids) == limit else ""
        return ids

    def drops(self, model: str | None = None) -> dict[str, int]:
        sql, args = "SELECT reason, SUM(n) FROM drops", ()
        if model is not None:
            sql, args = sql + " WHERE model = ?", (model,)
        return {r[0]: int(r[1]) for r in self.db.execute(sql + " GROUP BY reason", args)}


def _parse_feedback(payload: bytes) -> FeedbackGiven:
    from llmloop.events import parse_event

    event: Any = parse_event(payload)
    return event  # type: ignore[no-any-return]
