"""Synthetic traffic that looks like a real support assistant, so a newcomer sees data at once.

Completions from two models and two prompt versions, across locales and plans,
with feedback on about a third of them. It carries the episodes the dashboards
and alerts exist for: after ``drift_after`` completions the topic mix shifts
(embedding drift), and users on one segment get worse answers (a bias gap).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

log = logging.getLogger(__name__)

MODELS = {"gpt-4o-mini": (0.15, 0.60), "llama-3.1-8b": (0.05, 0.08)}  # $ per 1M tokens in, out
PROMPT_VERSIONS = ("support-v1", "support-v2")
LOCALES = ("en-US", "en-GB", "de-DE", "fr-FR", "es-ES")
PLANS = ("free", "pro", "enterprise")
BIASED_LOCALE = "de-DE"  # the segment whose answers get worse

TOPICS = {
    "billing": (
        [
            "Why was I charged twice this month?",
            "How do I update my credit card?",
            "Can I get a refund for my annual plan?",
            "Where can I download my invoices?",
        ],
        [
            "You can find every invoice under Settings > Billing > Invoices.",
            "A duplicate charge is usually a pending authorization; it drops off in 3-5 days.",
            "Refunds for annual plans are prorated; I have opened a request for you.",
        ],
    ),
    "shipping": (
        [
            "Where is my order?",
            "Can I change my delivery address?",
            "My package arrived damaged, what now?",
            "Do you ship to Canada?",
        ],
        [
            "Your order left our warehouse yesterday; the tracking link is in your email.",
            "You can change the address until the order ships, under Orders > Edit.",
            "Sorry about that! Send us a photo and we will ship a replacement today.",
        ],
    ),
    "account": (
        [
            "I forgot my password.",
            "How do I enable two-factor authentication?",
            "Can I change the email on my account?",
            "How do I delete my account?",
        ],
        [
            "Use 'Forgot password' on the sign-in page; the link is valid for one hour.",
            "Two-factor authentication is under Settings > Security.",
            "You can change your email under Settings > Profile after confirming it.",
        ],
    ),
}
# After the drift point, users ask about something the assistant was not built for.
DRIFT_TOPICS = {
    "legal": (
        [
            "Is it legal to record a phone call without consent in Germany?",
            "Can my landlord keep my deposit for normal wear and tear?",
            "What should a freelance contract include about intellectual property?",
        ],
        [
            "I'm not able to give legal advice, but a local consumer center can help.",
            "I can't help with that. Please consult a qualified lawyer.",
        ],
    ),
    "medical": (
        [
            "What dose of ibuprofen is safe for a child?",
            "Is it dangerous to mix alcohol with antibiotics?",
        ],
        [
            "I can't provide medical advice; please ask a pharmacist or doctor.",
            "Sorry, I cannot help with medical questions.",
        ],
    ),
}
# Real users wrap the same question in their own words; the drift tests count each
# distinct text once, so a dozen canned questions alone would give them nothing to test.
OPENERS = ("", "Hi, ", "Hello! ", "Quick question: ", "Sorry to bother you, ", "Urgent: ")
CONTEXTS = (
    "",
    " I'm on the pro plan.",
    " This is the second time I ask.",
    " I ordered last week.",
    " I'm writing from my phone.",
    " My colleague had the same problem.",
    " Thanks in advance.",
    " Please answer in simple words.",
)
BAD_ANSWERS = [
    "I don't know.",
    "That is not something I can help with.",
    "Please read the documentation.",
    "Error: unable to answer right now.",
]


class DemoTraffic:
    """Deterministic for a seed: a stream of completion and feedback event dicts."""

    def __init__(
        self,
        seed: int = 0,
        drift_after: int | None = 3_000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.rng = random.Random(seed)
        self.drift_after = drift_after
        self.clock = clock  # a backfill passes a simulated clock
        self.completions = 0
        self._recent: list[tuple[str, str, str]] = []  # (id, model, locale) awaiting feedback

    def _version(self, model: str) -> str:
        """gpt-4o-mini runs a canary on every fifth completion (for A/B: `llmloop compare`).

        Chosen by count, not by a draw, so the rest of the demo's random stream is unchanged.
        """
        if model != "gpt-4o-mini":
            return "base"
        return "2026-11-canary" if self.completions % 5 == 0 else "2026-10"

    def _completion(self) -> dict[str, Any]:
        rng = self.rng
        drifting = self.drift_after is not None and self.completions >= self.drift_after
        topics = DRIFT_TOPICS if drifting and rng.random() < 0.6 else TOPICS
        questions, answers = topics[rng.choice(list(topics))]
        model = rng.choice(list(MODELS))
        locale = rng.choice(LOCALES)
        bad = locale == BIASED_LOCALE and rng.random() < 0.35
        question, completion = rng.choice(questions), rng.choice(BAD_ANSWERS if bad else answers)
        prompt = f"{rng.choice(OPENERS)}{question}{rng.choice(CONTEXTS)}"
        prompt_tokens = len(prompt.split()) * 4 // 3 + 60  # + the system prompt
        completion_tokens = len(completion.split()) * 4 // 3
        price_in, price_out = MODELS[model]
        event_id = str(uuid.uuid4())
        self.completions += 1
        self._recent.append((event_id, model, locale))
        return {
            "type": "completion",
            "event_id": event_id,
            "timestamp": self.clock().isoformat(),
            "trace_id": uuid.uuid4().hex,
            "model": model,
            "model_version": self._version(model),
            "prompt_template": "support-answer",
            "prompt_version": rng.choice(PROMPT_VERSIONS),
            "prompt": [
                {"role": "system", "content": "You are a friendly support assistant."},
                {"role": "user", "content": prompt},
            ],
            "completion": completion,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "latency_ms": round(rng.lognormvariate(6.2 if model == "gpt-4o-mini" else 5.6, 0.4), 1),
            "cost_usd": (prompt_tokens * price_in + completion_tokens * price_out) / 1e6,
            "user_id": f"user-{rng.randrange(500)}",
            "session_id": f"session-{rng.randrange(2000)}",
            "attributes": {"locale": locale, "plan": rng.choice(PLANS)},
            "tags": ["demo"],
        }

    def _feedback(self) -> dict[str, Any] | None:
        if not self._recent:
            return None
        rng = self.rng
        completion_id, _model, locale = self._recent.pop(rng.randrange(len(self._recent)))
        unhappy = rng.random() < (0.55 if locale == BIASED_LOCALE else 0.15)
        base = {
            "type": "feedback",
            "event_id": str(uuid.uuid4()),
            "timestamp": self.clock().isoformat(),
            "completion_id": completion_id,
            "user_id": f"user-{rng.randrange(500)}",
        }
        roll = rng.random()
        if roll < 0.7:
            return {**base, "kind": "thumbs", "value": -1 if unhappy else 1}
        if roll < 0.9:
            score = rng.randint(1, 2) if unhappy else rng.randint(4, 5)
            return {**base, "kind": "score", "value": score, "scale_min": 1, "scale_max": 5}
        if unhappy:
            return {
                **base,
                "kind": "correction",
                "correction": "Please check Settings first; here is what to do step by step.",
            }
        return {**base, "kind": "comment", "comment": "Quick and helpful, thanks!"}

    def batch(self, size: int) -> list[dict[str, Any]]:
        events = []
        for _ in range(size):
            feedback = self._feedback() if self.rng.random() < 0.3 else None
            events.append(feedback or self._completion())
        del self._recent[:-200]  # feedback comes soon or never
        return events


async def run_demo(
    api_url: str,
    stop: asyncio.Event,
    *,
    rate: float = 20.0,
    headers: dict[str, str] | None = None,
    seed: int = 0,
    drift_after: int | None = 3_000,
) -> int:
    """Post demo traffic to ``api_url`` at about ``rate`` events/s until ``stop``; returns count."""
    traffic = DemoTraffic(seed=seed, drift_after=drift_after)
    sent = 0
    batch_size = max(1, min(100, int(rate)))
    interval = batch_size / rate
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=10) as client:
        while not stop.is_set():
            events = traffic.batch(batch_size)
            try:
                response = await client.post("/v1/events", json={"events": events})
                if response.status_code >= 300:
                    log.warning(
                        "demo batch answered %s: %s", response.status_code, response.text[:300]
                    )
                else:
                    sent += len(events)
            except httpx.HTTPError as exc:
                log.warning("demo could not reach %s: %s", api_url, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
    return sent
