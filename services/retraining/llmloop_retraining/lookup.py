"""The completions that feedback names, as the processor stored and enriched them.

Retraining keeps no copy of the completions it reads (most never get feedback) and
computes nothing the processor computed: for each feedback event it reads the one
or two completions the feedback names from the store, with the processor's
toxicity score of the answer and, when the processor embedded it (its sample),
the prompt's embedding. A completion counts as found once it is enriched, so every
pair is filtered on the processor's numbers; feedback whose completion is not
there yet waits in the join and is looked up again (``PairJoin.waiting_for``).
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from llmloop.events import AnyEvent, FeedbackGiven, PreferenceFeedback
from llmloop.store import Store
from llmloop_retraining import pairs as P

ENRICHMENTS = "completion_enrichments"  # the processor's tables (schemas/clickhouse)
EMBEDDINGS = "completion_embeddings"


def referenced(feedback: FeedbackGiven) -> list[str]:
    """The completion ids a feedback event needs to become a pair."""
    if isinstance(feedback, PreferenceFeedback):
        return [str(feedback.chosen_id), str(feedback.rejected_id)]
    return [str(feedback.completion_id)]


def stored_completions(store: Store, ids: Sequence[str]) -> dict[str, P.Completion]:
    """The completions among ``ids`` that the processor has stored and enriched."""
    if not ids:
        return {}
    rows = store.query(
        "SELECT toString(c.event_id), c.project_id, c.model, c.prompt_format, c.prompt, "
        "c.completion, c.ts, e.toxicity, m.vector "
        "FROM completions AS c "
        "INNER JOIN (SELECT event_id, any(completion_toxicity) AS toxicity "
        f"  FROM {ENRICHMENTS} WHERE event_id IN {{ids:Array(UUID)}} GROUP BY event_id) AS e "
        "  ON e.event_id = c.event_id "
        "LEFT JOIN (SELECT event_id, any(prompt_embedding) AS vector "
        f"  FROM {EMBEDDINGS} WHERE event_id IN {{ids:Array(UUID)}} GROUP BY event_id) AS m "
        "  ON m.event_id = c.event_id "
        "WHERE c.event_id IN {ids:Array(UUID)}",
        {"ids": sorted(set(ids))},
    ).rows
    found: dict[str, P.Completion] = {}
    for id_, project, model, fmt, prompt, text, ts, toxicity, vector in rows:
        parsed: P.Prompt = orjson.loads(prompt) if fmt == "chat" else prompt
        found[id_] = P.Completion(
            id_, project, model, parsed, text, ts, toxicity=float(toxicity),
            prompt_vector=P.unit_vector(vector) if vector else None,
        )  # fmt: skip
    return found


def feedback_and_named(
    events: Sequence[AnyEvent], store: Store
) -> tuple[list[FeedbackGiven], dict[str, P.Completion]]:
    """A batch's feedback, and the completions it names that the store holds, by id."""
    feedback = [e for e in events if isinstance(e, FeedbackGiven)]
    return feedback, stored_completions(store, sorted({i for f in feedback for i in referenced(f)}))
