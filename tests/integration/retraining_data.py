"""Feedback traffic with a learnable preference, for the retraining tests.

Chosen answers speak one vocabulary (helpful words), rejected ones another
(dismissive words), over varied prompts; a held-out pair recombines the words,
so a model that learned the preference generalises to it and one that did not
scores near chance.
"""

from __future__ import annotations

import random

from llmloop.events import (
    CompletionLogged,
    CorrectionFeedback,
    Event,
    PreferenceFeedback,
    ThumbsFeedback,
)

GOOD = ["glad", "to", "help", "here", "is", "a", "clear", "answer", "with", "steps"]
BAD = ["go", "away", "not", "my", "problem", "figure", "it", "out", "yourself"]
TOPICS = [
    "weather",
    "python",
    "cooking",
    "travel",
    "music",
    "history",
    "math",
    "sports",
    "garden",
    "cars",
    "tax",
    "dns",
]


def feedback_traffic(n: int, model: str = "tiny-chat", seed: int = 0) -> list[Event]:
    """About ``n`` pairs' worth of completions and feedback of every kind."""
    rng = random.Random(seed)
    events: list[Event] = []
    for i in range(n):
        prompt = f"question {i}: tell me about {rng.choice(TOPICS)} {rng.choice(TOPICS)}"
        good = " ".join(rng.sample(GOOD, 5))
        bad = " ".join(rng.sample(BAD, 5))
        kind = i % 3
        if kind == 0:  # two answers, the user picked one
            a = CompletionLogged(model=model, prompt=prompt, completion=good, project_id="demo")
            b = CompletionLogged(model=model, prompt=prompt, completion=bad, project_id="demo")
            events += [
                a,
                b,
                PreferenceFeedback(chosen_id=a.event_id, rejected_id=b.event_id, project_id="demo"),
            ]
        elif kind == 1:  # the user rewrote a bad answer
            c = CompletionLogged(model=model, prompt=prompt, completion=bad, project_id="demo")
            events += [
                c,
                CorrectionFeedback(completion_id=c.event_id, correction=good, project_id="demo"),
            ]
        else:  # thumbs on two answers to the same prompt
            a = CompletionLogged(model=model, prompt=prompt, completion=good, project_id="demo")
            b = CompletionLogged(model=model, prompt=prompt, completion=bad, project_id="demo")
            events += [
                a,
                b,
                ThumbsFeedback(completion_id=b.event_id, value=-1, project_id="demo"),
                ThumbsFeedback(completion_id=a.event_id, value=1, project_id="demo"),
            ]
    return events
