"""Content that arrived apart from its completion (OTLP log records), joined to it.

Why here and not in ingest: ingest is stateless and runs as several replicas,
and the span and the log records of one call come in separate exports, often
to different replicas. Both halves are keyed by the completion's id, so they
land on one partition, in order, and reach this one writer; it joins them
whichever came first:

* content first (the SDKs' default: logs are exported every second, spans
  every five): it is stored in ``completion_contents``, and the completion,
  when it comes, is written with the content merged in;
* completion first: the stored row is completed in place (an ``ALTER TABLE
  ... UPDATE``, only of rows whose prompt and answer are still empty, so span
  content always wins and a replay changes nothing).

Content is merged only into what the span left empty.

Judge feedback (``gen_ai.evaluation.result``) names the span it judged, and
maybe the response id. When that span's completion is not stored (it was the
second instrumentation's copy, dropped as a duplicate, or the verdict named no
span), the feedback is pointed at the stored completion of that response.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import orjson

from llmloop.events import ChatMessage, CompletionContentLogged, CompletionLogged, FeedbackGiven
from llmloop.store import Store
from llmloop_processor.rows import COMMON, Column, S, TableSpec, messages_json, text, uuid_text

log = logging.getLogger(__name__)

# How far apart a span and its log records may be stamped: the span is stamped at
# its start, the records when they were emitted, retries may come days later.
JOIN_WINDOW = timedelta(days=7)
RESPONSE_ID = "gen_ai.response.id"  # the feedback metadata entry ingest fills


COMPLETION_CONTENTS = TableSpec(
    "completion_contents",
    "ts",
    "timestamp",
    (
        *COMMON,
        uuid_text("completion_id"),
        text("trace_id"),
        text("span_id"),
        text("model"),
        Column("prompt", S, lambda e: messages_json(e.prompt)),
        Column("choices", S, lambda e: messages_json(e.choices)),
    ),
)


def _empty(e: CompletionLogged) -> bool:
    return not e.prompt and not e.completion and not e.choices


def merge(e: CompletionLogged, contents: Sequence[CompletionContentLogged]) -> CompletionLogged:
    """``e`` with what its span left empty filled from ``contents`` (in time order)."""
    ordered = sorted(contents, key=lambda c: c.timestamp)
    prompt = [m for c in ordered for m in c.prompt]
    choices = [m for c in ordered for m in c.choices]
    update: dict[str, Any] = {}
    if not e.prompt and prompt:
        update["prompt"] = _prompt(prompt)
    if not e.completion and not e.choices and choices:
        update["completion"] = choices[0].content
        if len(choices) > 1 or choices[0].parts or choices[0].finish_reason:
            update["choices"] = choices
        if not e.finish_reasons and any(c.finish_reason for c in choices):
            update["finish_reasons"] = [c.finish_reason for c in choices if c.finish_reason]
    model = next((c.model for c in ordered if c.model), None)
    if e.model == "unknown" and model:
        update["model"] = model
    return e.model_copy(update=update) if update else e


def _prompt(messages: list[ChatMessage]) -> str | list[ChatMessage]:
    lone = len(messages) == 1 and messages[0].role == "user" and not messages[0].parts
    return messages[0].content if lone else messages


class ContentJoin:
    """The two sides of the join, run by the writer before and after its inserts."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.completed_late = 0

    def fill(
        self,
        completions: list[CompletionLogged],
        batch_contents: Sequence[CompletionContentLogged],
    ) -> list[CompletionLogged]:
        """Completions about to be inserted, with the content waiting for them merged in."""
        waiting = [e for e in completions if e.span_id and _empty(e)]
        if not waiting:
            return completions
        found: dict[tuple[str, Any], list[CompletionContentLogged]] = defaultdict(list)
        for c in batch_contents:
            found[(c.project_id or "", c.completion_id)].append(c)
        for c in self._stored(waiting):
            key = (c.project_id or "", c.completion_id)
            if all(c.event_id != seen.event_id for seen in found[key]):
                found[key].append(c)
        return [
            merge(e, found[(e.project_id or "", e.event_id)])
            if (e.project_id or "", e.event_id) in found
            else e
            for e in completions
        ]

    def _stored(self, waiting: list[CompletionLogged]) -> list[CompletionContentLogged]:
        times = [e.timestamp for e in waiting]
        rows = self.store.query(
            "SELECT event_id, project_id, ts, completion_id, model, prompt, choices "
            "FROM completion_contents WHERE ts BETWEEN {lo:DateTime64(3, 'UTC')} "
            "AND {hi:DateTime64(3, 'UTC')} AND completion_id IN {ids:Array(UUID)}",
            {
                "lo": min(times) - JOIN_WINDOW,
                "hi": max(times) + JOIN_WINDOW,
                "ids": [e.event_id for e in waiting],
            },
        ).rows
        return [
            CompletionContentLogged.model_validate(
                {
                    "event_id": r[0],
                    "project_id": r[1] or None,
                    "timestamp": r[2],
                    "completion_id": r[3],
                    "model": r[4] or None,
                    "prompt": orjson.loads(r[5] or "[]"),
                    "choices": orjson.loads(r[6] or "[]"),
                }
            )
            for r in rows
        ]

    def link_feedback(self, feedback: list[FeedbackGiven]) -> list[FeedbackGiven]:
        """Feedback naming a response whose named completion is not stored, re-pointed."""
        named = [f for f in feedback if isinstance(f.metadata.get(RESPONSE_ID), str)]
        if not named:
            return feedback
        window = {
            "lo": min(f.timestamp for f in named) - JOIN_WINDOW,
            "hi": max(f.timestamp for f in named) + JOIN_WINDOW,
        }
        stored = self.store.query(
            "SELECT project_id, event_id FROM completions WHERE ts BETWEEN "
            "{lo:DateTime64(3, 'UTC')} AND {hi:DateTime64(3, 'UTC')} "
            "AND event_id IN {ids:Array(UUID)}",
            {**window, "ids": [f.completion_id for f in named]},
        ).rows
        present = {(r[0], r[1]) for r in stored}
        lost = [f for f in named if (f.project_id or "", f.completion_id) not in present]
        if not lost:
            return feedback
        found = self.store.query(
            "SELECT project_id, response_id, min(event_id) FROM completions WHERE ts BETWEEN "
            "{lo:DateTime64(3, 'UTC')} AND {hi:DateTime64(3, 'UTC')} "
            "AND response_id IN {rids:Array(String)} GROUP BY project_id, response_id",
            {**window, "rids": sorted({f.metadata[RESPONSE_ID] for f in lost})},
        ).rows
        by_response = {(r[0], r[1]): r[2] for r in found}
        lost_ids = {f.event_id for f in lost}
        out = []
        for f in feedback:
            target = by_response.get((f.project_id or "", f.metadata.get(RESPONSE_ID)))
            relink = f.event_id in lost_ids and target is not None and target != f.completion_id
            out.append(f.model_copy(update={"completion_id": target}) if relink else f)
        return out

    def complete_stored(
        self, contents: Sequence[CompletionContentLogged], inserted_now: set[tuple[str, Any]]
    ) -> int:
        """Rows stored before their content came (not this batch's): completed in place."""
        late = [c for c in contents if (c.project_id or "", c.completion_id) not in inserted_now]
        if not late:
            return 0
        times = [c.timestamp for c in late]
        rows = self.store.query(
            "SELECT event_id, project_id, argMax(model, ingested_at) FROM completions "
            "WHERE ts BETWEEN {lo:DateTime64(3, 'UTC')} AND {hi:DateTime64(3, 'UTC')} "
            "AND event_id IN {ids:Array(UUID)} AND prompt = '' AND completion = '' "
            "AND choices = '' GROUP BY event_id, project_id",
            {
                "lo": min(times) - JOIN_WINDOW,
                "hi": max(times) + JOIN_WINDOW,
                "ids": [c.completion_id for c in late],
            },
        ).rows
        by_key: dict[tuple[str, Any], list[CompletionContentLogged]] = defaultdict(list)
        for c in late:
            by_key[(c.project_id or "", c.completion_id)].append(c)
        for event_id, project, model in rows:
            self._update(event_id, project, model, by_key[(project, event_id)])
        self.completed_late += len(rows)
        return len(rows)

    def _update(
        self, event_id: Any, project: str, model: str, contents: list[CompletionContentLogged]
    ) -> None:
        stub = CompletionLogged(
            event_id=event_id, project_id=project or None, model=model, prompt="", completion=""
        )
        e = merge(stub, contents)
        chat = not isinstance(e.prompt, str)
        self.store.command(
            "ALTER TABLE completions UPDATE prompt = {prompt:String}, "
            "prompt_format = {fmt:String}, completion = {completion:String}, "
            "choices = {choices:String}, finish_reasons = {reasons:Array(String)} "
            "WHERE event_id = {id:UUID} AND project_id = {project:String} AND prompt = '' "
            "AND completion = '' SETTINGS mutations_sync = 1",
            {
                "prompt": messages_json(e.prompt) if chat else e.prompt,  # type: ignore[arg-type]
                "fmt": "chat" if chat else "text",
                "completion": e.completion,
                "choices": messages_json(e.choices) if e.choices else "",
                "reasons": e.finish_reasons or [],
                "id": event_id,
                "project": project,
            },
        )
