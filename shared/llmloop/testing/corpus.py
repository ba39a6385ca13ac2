"""Synthetic prompts and answers on fixed topics, for benchmarks and the soundness tests.

Combinatorial templates give thousands of distinct, natural-looking prompts per
topic with no data download. Same seed, same texts. ``answer`` writes a reply in
the topic's register, and ``near_duplicate`` the kind of copy that retries and
impatient users produce (a changed letter case, punctuation, a "please").
"""

from __future__ import annotations

import random
from collections.abc import Callable

TOPICS: dict[str, tuple[list[str], list[str], list[str]]] = {
    "cooking": (
        [
            "How do I {v} {o} {q}?",
            "What is the best way to {v} {o} {q}?",
            "Can you give me a recipe to {v} {o} {q}?",
            "Any tips to {v} {o} {q}?",
            "I want to {v} {o} {q}, where do I start?",
        ],
        ["roast", "bake", "grill", "braise", "steam", "fry", "marinate", "season", "slow cook"],
        [
            "chicken thighs",
            "a sourdough loaf",
            "salmon fillets",
            "root vegetables",
            "a chocolate cake",
            "pork shoulder",
            "fresh pasta",
            "a vegetable curry",
            "tofu",
            "lamb chops",
            "banana bread",
            "mushroom risotto",
        ],
    ),
    "programming": (
        [
            "How do I {v} {o} {q}?",
            "What is the best way to {v} {o} {q}?",
            "Can you show me code to {v} {o} {q}?",
            "Why does my attempt to {v} {o} fail {q}?",
            "I need to {v} {o} {q}, how should I do it?",
        ],
        ["parse", "serialize", "sort", "cache", "validate", "index", "stream", "deduplicate"],
        [
            "a JSON file",
            "a Python list",
            "database rows",
            "HTTP responses",
            "log lines",
            "a pandas DataFrame",
            "Kafka messages",
            "a binary tree",
            "CSV records",
            "user sessions",
            "SQL query results",
            "a Rust vector",
        ],
    ),
    "support": (
        [
            "How do I {v} {o} {q}?",
            "I need to {v} {o} {q}, can you help?",
            "Why can't I {v} {o} {q}?",
            "What happens if I {v} {o} {q}?",
            "Is it possible to {v} {o} {q}?",
        ],
        ["update", "cancel", "change", "refund", "download", "dispute", "renew", "transfer"],
        [
            "my subscription",
            "an invoice",
            "my billing address",
            "a duplicate charge",
            "my payment method",
            "the annual plan",
            "a failed payment",
            "my account email",
            "a promo code",
            "my order",
            "the family plan",
            "a gift card",
        ],
    ),
    "gardening": (
        [
            "How do I {v} {o} {q}?",
            "When is the right time to {v} {o} {q}?",
            "What do I need to {v} {o} {q}?",
            "Any advice on how to {v} {o} {q}?",
            "My attempt to {v} {o} went badly, how do I do it {q}?",
        ],
        ["plant", "prune", "water", "repot", "fertilize", "propagate", "mulch", "harvest"],
        [
            "tomato seedlings",
            "a rose bush",
            "an apple tree",
            "succulents",
            "a lavender hedge",
            "strawberries",
            "a fig tree",
            "basil",
            "hydrangeas",
            "a lemon tree",
            "garlic bulbs",
            "a lawn",
        ],
    ),
}
ANSWERS: dict[str, list[str]] = {
    "cooking": [
        "Preheat the oven, season well and give it time: {o} needs patience more than skill.",
        "Start with good ingredients. For {o}, {v} gently and taste as you go.",
        "The key with {o} is heat control: {v} it at medium heat and let it rest afterwards.",
        "Here is a simple recipe: prepare {o}, {v} it for about forty minutes, then serve.",
    ],
    "programming": [
        "Use the standard library: to {v} {o}, write a small function and test it first.",
        "A common approach is to {v} {o} in batches, which keeps memory bounded.",
        "Here is an example that shows how to {v} {o}; check the error handling carefully.",
        "Profile before optimising. To {v} {o}, start with the simplest correct version.",
    ],
    "support": [
        "You can {v} {o} from the Billing page in your account settings.",
        "I'm sorry about the trouble. To {v} {o}, open Account, then Billing, then Manage.",
        "Our team can {v} {o} for you within two business days; I've opened a ticket.",
        "To {v} {o}, sign in, choose Payments and follow the steps; you'll get an email.",
    ],
    "gardening": [
        "Water in the morning and {v} {o} in early spring, before new growth starts.",
        "Give {o} full sun and well-drained soil; {v} it sparingly in the first weeks.",
        "The best time to {v} {o} is after the last frost. Mulch to keep moisture in.",
        "Use a sharp, clean tool to {v} {o}, and feed it with compost once a month.",
    ],
}
QUALIFIERS = [
    "quickly",
    "for a beginner",
    "without special equipment",
    "on a tight budget",
    "for a large group",
    "in under an hour",
    "the traditional way",
    "step by step",
    "with fewer mistakes",
    "for the first time",
    "at home",
    "more efficiently",
]


def prompts(topic: str, n: int, seed: int = 0) -> list[str]:
    """``n`` prompts about ``topic`` (one of ``TOPICS``), repeatable for a seed."""
    templates, verbs, objects = TOPICS[topic]
    rng = random.Random(f"{topic}:{seed}")
    return [
        rng.choice(templates).format(
            v=rng.choice(verbs), o=rng.choice(objects), q=rng.choice(QUALIFIERS)
        )
        for _ in range(n)
    ]


def question(topic: str, rng: random.Random, subject: str | None = None) -> tuple[str, str]:
    """One prompt about ``topic`` and its subject (a session keeps asking about one subject)."""
    templates, verbs, objects = TOPICS[topic]
    subject = subject or rng.choice(objects)
    verb = rng.choice(verbs)
    text = rng.choice(templates).format(v=verb, o=subject, q=rng.choice(QUALIFIERS))
    return text, subject


def answer(topic: str, prompt_subject: str, rng: random.Random) -> str:
    """An answer in the topic's register about the prompt's subject."""
    _, verbs, _ = TOPICS[topic]
    return rng.choice(ANSWERS[topic]).format(v=rng.choice(verbs), o=prompt_subject)


def near_duplicate(text: str, rng: random.Random) -> str:
    """The same request again, as a retry or an impatient user writes it."""
    edits = (
        lambda t: t.lower(),
        lambda t: t.rstrip("?.!") + "??",
        lambda t: "Please: " + t,
        lambda t: t + " Thanks!",
        lambda t: t.replace(" ", "  ", 1),
    )
    edit: Callable[[str], str] = rng.choice(edits)
    return edit(text)


# Sentences that long prompts and answers are assembled from (issue 18: real traffic
# is not one short question; prompts of 200-800 characters, answers of 200-1,500).
_CONTEXT = [
    "I have been trying this for a while and the results are not what I expected.",
    "For context, I work on a small team and we need something we can maintain.",
    "My previous attempt followed a popular guide, but it skipped the details.",
    "Please keep in mind that I only have about an hour on weekday evenings.",
    "We tried two approaches last month and neither held up under real use.",
    "I would like to understand why each step matters, not only what to do.",
    "The constraints are strict: no new tools, and it has to work offline.",
    "A colleague suggested a different order of steps and I am not sure why.",
    "Last time it took far longer than planned and the outcome was uneven.",
    "If there are common mistakes to avoid, please point them out as well.",
]
_ANSWER = [
    "Start by preparing everything you need, so that nothing interrupts the later steps.",
    "The most common mistake is rushing the first stage; give it the time it needs.",
    "Check the result halfway through and adjust before the problem compounds.",
    "Keep notes of what you change, because small differences add up quickly.",
    "If something goes wrong, go back one step rather than starting from scratch.",
    "A simpler setup is usually more robust than a clever one that few understand.",
    "Measure before and after each change, otherwise you cannot tell what helped.",
    "It is worth doing a small trial first to learn how long each step really takes.",
    "Once the basic version works, improve one aspect at a time and compare.",
    "Finally, clean up and write down the steps while they are fresh in your mind.",
    "Many people find that a checklist removes most of the avoidable errors.",
    "Do not skip the resting or waiting periods; they matter more than they seem.",
]


def _fill(rng: random.Random, opening: str, pool: list[str], lo: int, hi: int) -> str:
    target = rng.randint(lo, hi)
    text = opening
    while len(text) < target:
        text += " " + rng.choice(pool)
    return text[:hi]


def long_completions(topic: str, n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` (prompt, answer) pairs of realistic lengths: prompts of 200-800 characters,
    answers of 200-1,500, repeatable for a seed. The questions are ``prompts``' own."""
    rng = random.Random(f"long:{topic}:{seed}")
    return [
        (
            _fill(rng, question, _CONTEXT, 200, 800),
            _fill(rng, f"Here is how to approach it: {question.lower()}", _ANSWER, 200, 1_500),
        )
        for question in prompts(topic, n, seed)
    ]
