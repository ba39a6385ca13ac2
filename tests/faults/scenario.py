"""SDK traffic with a scripted drift episode, a bias gap and preference feedback.

A support bot answers billing questions for a while (the reference, stamped ten
minutes ago); then its users start asking about something else entirely (the
drift, stamped now), each question answered twice with the user picking the
helpful answer (preference pairs for DPO), and de-DE users thumbing their
answers down while en-US users thumb them up (a bias gap on ``locale``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from llmloop.testing.corpus import question

MODEL = "support-bot"
BILLING_ANSWERS = [
    "You can find every invoice under Settings > Billing > Invoices.",
    "A duplicate charge is usually a pending authorization; it drops off in 3-5 days.",
    "Refunds for annual plans are prorated; I have opened a request for you.",
]
GOOD = ["glad", "to", "help", "here", "is", "a", "clear", "answer", "with", "steps"]
BAD = ["go", "away", "not", "my", "problem", "figure", "it", "out", "yourself"]


@dataclass
class Sent:
    """What the scenario logged, by kind."""

    completions: list[str] = field(default_factory=list)
    feedback: list[str] = field(default_factory=list)
    pairs: int = 0


def reference(client: Any, n: int = 120, seed: int = 0) -> Sent:
    rng = random.Random(seed)
    sent = Sent()
    start = datetime.now(UTC) - timedelta(minutes=10)
    for i in range(n):
        sent.completions.append(
            client.log_completion(
                model=MODEL,
                # Distinct questions: the drift test counts each text (and near-copy) once.
                prompt=question("support", rng)[0],
                completion=rng.choice(BILLING_ANSWERS),
                attributes={"locale": "en-US" if i % 2 else "de-DE"},
                timestamp=start + timedelta(milliseconds=50 * i),
            )
        )
    return sent


def drift(client: Any, n: int = 60, seed: int = 1) -> Sent:
    """``n`` garden questions, two answers each and the user's choice; thumbs by locale."""
    rng = random.Random(seed)
    sent = Sent()
    for i in range(n):
        locale = "en-US" if i % 2 else "de-DE"
        prompt = question("gardening", rng)[0]
        good = client.log_completion(
            model=MODEL,
            prompt=prompt,
            completion=" ".join(rng.sample(GOOD, 6)),
            attributes={"locale": locale},
        )
        bad = client.log_completion(
            model=MODEL,
            prompt=prompt,
            completion=" ".join(rng.sample(BAD, 6)),
            attributes={"locale": locale},
        )
        sent.completions += [good, bad]
        sent.feedback.append(client.feedback(None, "preference", chosen_id=good, rejected_id=bad))
        sent.feedback.append(client.feedback(good, "thumbs", locale == "en-US"))
        sent.pairs += 1
    return sent


def rules(receiver_url: str) -> dict[str, Any]:
    """The shipped rules, sending to one signed webhook, acting at once."""
    from llmloop_alerting.rules import default_rules_path

    shipped = yaml.safe_load(default_rules_path().read_text())
    shipped["receivers"] = [{"name": "hook", "type": "webhook", "url": receiver_url}]
    for rule in shipped["rules"]:
        # Act on the first breaching window: a test has one drift window, not three.
        rule.update({"for": "0s", "confirm": 1, "windows": "all", "receivers": ["hook"]})
        rule.pop("confirm_of", None)
    return shipped


# Retrain when embedding drift fires on the model, and only then; a tiny stand-in model.
POLICY = {
    "default": {
        "min_new_pairs": 100_000,
        "max_interval": None,
        "alert_rules": ["embedding-drift"],
        "min_total_pairs": 16,
        "base_model": "tiny:0",
        "train": {"max_steps": 12, "batch_size": 8, "learning_rate": 5e-4, "seed": 0},
    }
}
