"""Synthetic prompts on fixed topics, for benchmarks and the statistical soundness tests.

Combinatorial templates give thousands of distinct, natural-looking prompts per
topic with no data download. Same seed, same texts.
"""

from __future__ import annotations

import random

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
