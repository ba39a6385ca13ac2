"""Simulated traffic through the shipped statistics, for soundness checks of the alerts.

``bench/soundness.py`` and the soundness tests feed these windows' metrics to
the shipped rules (``llmloop_alerting.replay``) to ask what an on-call engineer
asks of the alerts: do they stay quiet on noise, and do they fire, once, on a
real shift? Everything but the store is real: templated support, coding and
cooking prompts with answers (``corpus``), their MiniLM embeddings, VADER
sentiment and lengths of the answers, and ``stats.window_metrics``, the function
the processor's timer runs.

Traffic can shift part of its prompts to another topic, come in sessions of
related questions, repeat questions (retries, as near-duplicates) and give one
locale more negative feedback than the others.

The simulation steps through windows that do not overlap: the shipped rules on
tests evaluate only those (``Rule.non_overlapping``), so the overlapping windows
the timer also computes every interval change nothing but ``last_seen``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from llmloop.events import MetricComputed
from llmloop.testing import corpus
from llmloop_processor import windows
from llmloop_processor.embed import DIM, text_key
from llmloop_processor.settings import ProcessorSettings
from llmloop_processor.stats import Tests, window_metrics

MIX = {"support": 0.5, "programming": 0.3, "cooking": 0.2}
LOCALES = ("de-DE", "en-US", "es-ES", "fr-FR", "it-IT")
KEY = ("sim", "support-bot", "v1")
T0 = datetime(2026, 1, 5, tzinfo=UTC)


@dataclass(frozen=True)
class Traffic:
    """What the users of one key send, per window."""

    mix: dict[str, float] = field(default_factory=lambda: dict(MIX))
    shift: float = 0.0  # share of prompts moved to ``shift_to``
    shift_to: str = "gardening"
    sessions: bool = False  # 1-4 related questions per session, with a session id
    retries: float = 0.0  # share of questions asked again as a near-duplicate
    negative: dict[str, float] = field(default_factory=dict)  # locale -> rate (else 0.2)
    feedback: float = 1.0  # share of completions that get a thumbs


@dataclass(frozen=True)
class Row:
    prompt: str
    completion: str
    group: str
    locale: str
    negative: float  # 1 / 0, NaN without feedback


class Pools:
    """A fixed pool of questions per topic (by subject) and their answers, with embeddings.

    A pool keeps the number of distinct texts small enough to embed once (and
    cache on disk for the bench); rows draw from it, so exact repeats across
    windows happen as they do with templated prompts.
    """

    def __init__(
        self,
        size: int = 400,
        seed: int = 0,
        encode: Callable[[Sequence[str]], np.ndarray] | None = None,
        cache: Path | None = None,
    ) -> None:
        rng = random.Random(f"pools:{seed}")
        self.questions: dict[str, dict[str, list[str]]] = {}
        self.answers: dict[str, list[str]] = {}
        for topic in corpus.TOPICS:
            by_subject: dict[str, list[str]] = {}
            for _ in range(size):
                text, subject = corpus.question(topic, rng)
                by_subject.setdefault(subject, []).append(text)
            self.questions[topic] = by_subject
            self.answers[topic] = list(
                dict.fromkeys(corpus.answer(topic, s, rng) for s in by_subject for _ in range(3))
            )
        self._encode = encode
        self._cache = cache
        self._vectors: dict[str, np.ndarray] = {}
        self._sentiment: dict[str, float] = {}
        self._analyzer: Any = None
        if cache is not None and cache.exists():
            stored = np.load(cache, allow_pickle=False)
            self._vectors = dict(zip(stored["texts"].tolist(), stored["vectors"], strict=True))

    def embed(self, texts: Iterable[str]) -> None:
        """Embed (once) the texts not seen before."""
        todo = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if not todo:
            return
        if self._encode is None:
            from llmloop_processor.embed import Embedder

            self._encode = Embedder().encode
        for text, vector in zip(todo, self._encode(todo), strict=True):
            self._vectors[text] = np.asarray(vector, dtype=np.float32)

    def warm(self, retries: bool = True) -> None:
        """Embed every text of the pools (and each question's near-duplicates) up front,
        and keep them in the cache file, if any."""
        rng = random.Random("warm")
        texts = [a for answers in self.answers.values() for a in answers]
        for by_subject in self.questions.values():
            for questions in by_subject.values():
                texts += questions
                if retries:
                    texts += [corpus.near_duplicate(q, rng) for q in questions for _ in range(2)]
        self.embed(texts)
        if self._cache is not None:
            self._cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(
                self._cache,
                texts=np.array(list(self._vectors)),
                vectors=np.stack(list(self._vectors.values())),
            )

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        self.embed(texts)
        if not texts:
            return np.zeros((0, DIM), np.float32)
        return np.stack([self._vectors[t] for t in texts])

    def sentiment(self, texts: Sequence[str]) -> np.ndarray:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        todo = [t for t in dict.fromkeys(texts) if t not in self._sentiment]
        if todo:
            self._analyzer = self._analyzer or SentimentIntensityAnalyzer()
            for t in todo:
                self._sentiment[t] = float(self._analyzer.polarity_scores(t)["compound"])
        return np.array([self._sentiment[t] for t in texts], dtype=float)


def rows(pools: Pools, traffic: Traffic, n: int, rng: random.Random) -> list[Row]:
    """``n`` completions of one window."""
    topics = list(traffic.mix)
    weights = [w * (1 - traffic.shift) for w in traffic.mix.values()]
    if traffic.shift:
        topics.append(traffic.shift_to)
        weights.append(traffic.shift)
    out: list[Row] = []
    while len(out) < n:
        topic = rng.choices(topics, weights)[0]
        subject = rng.choice(list(pools.questions[topic]))
        locale = rng.choice(LOCALES)
        asks = rng.randint(1, 4) if traffic.sessions else 1
        group = f"s:{rng.getrandbits(64):x}" if traffic.sessions else ""
        rate = traffic.negative.get(locale, 0.2)
        for _ in range(asks):
            prompt = rng.choice(pools.questions[topic][subject])
            copies = [prompt]
            if rng.random() < traffic.retries:
                copies.append(corpus.near_duplicate(prompt, rng))
            for text in copies:
                answer = rng.choice(pools.answers[topic])
                rated = rng.random() < traffic.feedback
                negative = float(rng.random() < rate) if rated else float("nan")
                out.append(Row(text, answer, group, locale, negative))
    return out[:n]


def window(pools: Pools, batch: Sequence[Row], rng: np.random.Generator) -> windows.Window:
    """The ``Window`` the store would hand the statistics for these rows."""
    prompts = [r.prompt for r in batch]
    answers = [r.completion for r in batch]
    n = len(batch)
    chars = np.array([len(a) for a in answers], dtype=float)
    sentiment = pools.sentiment(answers)
    zeros = np.zeros(n)
    return windows.Window(
        scalars={
            "prompt_chars": np.array([len(p) for p in prompts], dtype=float),
            "completion_chars": chars,
            "prompt_tokens": np.array([len(p) // 4 for p in prompts], dtype=float),
            "completion_tokens": chars // 4,
            "latency_ms": rng.lognormal(6.5, 0.4, n),
            "prompt_sentiment": pools.sentiment(prompts),
            "completion_sentiment": sentiment,
            "prompt_toxicity": zeros,
            "completion_toxicity": zeros,
        },
        toxic=zeros,
        refusal=zeros,
        negative_feedback=np.array([r.negative for r in batch]),
        attributes=[{"locale": r.locale} for r in batch],
        demographics=[[] for _ in batch],
        prompt_embeddings=pools.vectors(prompts),
        completion_embeddings=pools.vectors(answers),
        prompt_hash=np.array([_hash(p) for p in prompts], dtype=np.uint64),
        completion_hash=np.array([_hash(a) for a in answers], dtype=np.uint64),
        group=[r.group for r in batch],
        embedded=np.ones(n, dtype=bool),
    )


def _hash(text: str) -> int:
    """A text hash standing in for the store's ``cityHash64(prompt)``."""
    return int.from_bytes(text_key(text)[:8], "big")


def stream(
    pools: Pools,
    before: Traffic,
    after: Traffic,
    *,
    windows_before: int,
    windows_after: int,
    per_window: int = 200,
    reference_size: int | None = None,
    window_s: float = 300.0,
    seed: int = 0,
    tests: Tests | None = None,
) -> Iterator[tuple[int, datetime, list[MetricComputed]]]:
    """A stream: the reference (the key's first ``reference_size`` completions, by
    default as many as the processor's default), then
    windows of ``before`` traffic, then of ``after``. Yields each window's index
    (counted from the first window of ``after``; negative before it), its end and
    its metrics, as the processor's timer computes them."""
    tests = tests or Tests()
    if reference_size is None:  # as the processor runs by default
        reference_size = ProcessorSettings.model_fields["processor_reference_size"].default
    rng = random.Random(f"stream:{seed}")
    np_rng = np.random.default_rng(seed)
    ref = window(pools, rows(pools, before, reference_size, rng), np_rng)
    plan = [(i - windows_before, before) for i in range(windows_before)]
    plan += [(i, after) for i in range(windows_after)]
    start = T0 + timedelta(seconds=window_s * 10)
    for index, traffic in plan:
        end = start + timedelta(seconds=window_s)
        cur = window(pools, rows(pools, traffic, per_window, rng), np_rng)
        yield (
            index,
            end,
            window_metrics(KEY, start, end, cur=cur, ref=ref, reference="first_n", tests=tests),
        )
        start = end
