"""Scalar features per realistic completion: ours against the libraries' own, one run.

Each completion of the repo's corpus (prompts of 200-800 characters, answers of
200-1,500, made unique so no cache helps) gets sentiment, toxicity, refusal, PII
and demographic flags in the feature worker (issue 18). For each feature this
prints CPU microseconds per completion (prompt and answer), the median of
--runs, next to the baseline it replaced, measured in the same run:

* sentiment: ``vaderSentiment``'s ``polarity_scores`` (ours: ``sentiment.py``,
  equal scores);
* toxicity: ``profanity_check.predict_prob`` (ours: ``toxicity.py``, equal
  probabilities, no scikit-learn loaded);
* PII: every pattern on every text (ours: patterns skipped on texts that fail a
  necessary condition, equal results);
* demographics: one regex search per term group (ours: one pass over the words).

    .venv/bin/python bench/features.py [--n 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000, help="completions")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from profanity_check import predict_prob
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from llmloop import pii
    from llmloop.testing.corpus import long_completions
    from llmloop_processor import sentiment
    from llmloop_processor.bias import DEMOGRAPHIC_TERMS, demographic_groups
    from llmloop_processor.features import is_refusal, text_features, toxicity

    pairs = long_completions("cooking", args.n // 2, 1) + long_completions(
        "programming", args.n - args.n // 2, 2
    )
    prompts = [f"{p} (ref {i})" for i, (p, _) in enumerate(pairs)]
    answers = [f"{a} (Answer {i}.)" for i, (_, a) in enumerate(pairs)]
    texts = prompts + answers
    vader = SentimentIntensityAnalyzer()
    groups = [
        re.compile(r"\b(?:" + "|".join(words) + r")\b", re.IGNORECASE)
        for family in DEMOGRAPHIC_TERMS.values()
        for words in family.values()
    ]

    def ungated_pii(text: str) -> None:
        for kind, pattern, accept, *_ in pii._DETECTORS:
            text = pattern.sub(pii._replacer(kind, accept, Counter()), text)

    def us(work: Callable[[], object]) -> float:
        times = []
        for _ in range(args.runs):
            sentiment.clear_cache()
            started = time.process_time()
            work()
            times.append(time.process_time() - started)
        return statistics.median(times) / len(pairs) * 1e6

    text_features(prompts[:5], answers[:5])  # load the models
    predict_prob(["warm up"])
    rows = [
        ("sentiment", us(lambda: [sentiment.compound(t) for t in texts]),
         us(lambda: [vader.polarity_scores(t) for t in texts])),
        ("toxicity", us(lambda: toxicity(texts)), us(lambda: predict_prob(texts))),
        ("PII", us(lambda: [pii.kinds(t) for t in texts]),
         us(lambda: [ungated_pii(t) for t in texts])),
        ("demographics", us(lambda: [demographic_groups(p) for p in prompts]),
         us(lambda: [[g.search(p) for g in groups] for p in prompts])),
        ("refusal", us(lambda: [is_refusal(a) for a in answers]), None),
    ]  # fmt: skip
    chars = sum(map(len, texts)) / len(pairs)
    print(f"{len(pairs):,} completions, {chars:,.0f} characters each (prompt + answer), "
          f"median of {args.runs} runs, CPU microseconds per completion:")  # fmt: skip
    for name, ours, baseline in rows:
        versus = "" if baseline is None else f"   library {baseline:7.0f}   {baseline / ours:4.1f}x"
        print(f"  {name:<13} ours {ours:7.0f}{versus}")
    total = us(lambda: text_features(prompts, answers))
    print(f"  all features  {total:7.0f} us per completion = {1e6 / total:,.0f} completions/s "
          "per core (the feature worker's ceiling)")  # fmt: skip


if __name__ == "__main__":
    main()
