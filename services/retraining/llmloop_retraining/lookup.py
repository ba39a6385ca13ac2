"""The completions that feedback names, found in the batch or in the store.

Retraining keeps no copy of the completions it reads (most never get feedback):
for each feedback event it needs the one or two completions the feedback names,
which either came in the same batch or were stored by the processor (the one
writer). Feedback whose completions are in neither waits in the join, and is
looked up again later (``PairJoin.waiting_for``).
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from llmloop.events import AnyEvent, CompletionLogged, FeedbackGiven, PreferenceFeedback
from llmloop.store import Store
from llmloop_retraining import pairs as P


def referenced(feedback: FeedbackGiven) -> list[str]:
    """The completion ids a feedback event needs to become a pair."""
    if isinstance(feedback, PreferenceFeedback):
        return [str(feedback.chosen_id), str(feedback.rejected_id)]
    return [str(feedback.completion_id)]


def stored_completions(store: Store, ids: Sequence[str]) -> dict[str, P.Completion]:
    """The completions among ``ids`` that the processor has stored."""
    if not ids:
        return {}
    rows = store.query(
        "SELECT toString(event_id), project_id, model, prompt_format, prompt, completion, ts "
        "FROM completions WHERE event_id IN {ids:Array(UUID)}",
        {"ids": sorted(set(ids))},
    ).rows
    found: dict[str, P.Completion] = {}
    for id_, project, model, fmt, prompt, text, ts in rows:
        parsed: P.Prompt = orjson.loads(prompt) if fmt == "chat" else prompt
        found[id_] = P.Completion(id_, project, model, parsed, text, ts)
    return found


def feedback_and_named(
    events: Sequence[AnyEvent], store: Store
) -> tuple[list[FeedbackGiven], dict[str, P.Completion]]:
    """A batch's feedback, and the completions it names that the batch or the store holds
    (by id). Completions nobody's feedback names are dropped here."""
    feedback = [e for e in events if isinstance(e, FeedbackGiven)]
    needed = {i for f in feedback for i in referenced(f)}
    known = {
        str(e.event_id): P.Completion.from_event(e)
        for e in events
        if isinstance(e, CompletionLogged) and str(e.event_id) in needed
    }
    known.update(stored_completions(store, sorted(needed - known.keys())))
    return feedback, known
