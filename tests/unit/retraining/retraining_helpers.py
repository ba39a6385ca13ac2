"""Events for the retraining tests, built like an app would send them."""

from __future__ import annotations

import uuid

from llmloop.events import (
    CompletionLogged,
    CorrectionFeedback,
    PreferenceFeedback,
    ThumbsFeedback,
)


def completion(prompt: str, text: str, model: str = "m1", project: str = "p1") -> CompletionLogged:
    return CompletionLogged(prompt=prompt, completion=text, model=model, project_id=project)


def thumbs(c: CompletionLogged, value: int) -> ThumbsFeedback:
    return ThumbsFeedback(completion_id=c.event_id, value=value, project_id=c.project_id)


def correction(c: CompletionLogged, text: str) -> CorrectionFeedback:
    return CorrectionFeedback(completion_id=c.event_id, correction=text, project_id=c.project_id)


def preference(chosen: CompletionLogged, rejected: CompletionLogged) -> PreferenceFeedback:
    return PreferenceFeedback(
        chosen_id=chosen.event_id, rejected_id=rejected.event_id, project_id=chosen.project_id
    )


def new_id() -> uuid.UUID:
    return uuid.uuid4()
