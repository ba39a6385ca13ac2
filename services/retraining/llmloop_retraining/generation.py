"""Generation metrics of the gate: ROUGE-L and BLEU of base and fine-tuned answers, with CIs.

The DPO job answers held-out prompts (and every registered benchmark's prompts)
greedily, with a bounded length, once with the base model and once with the
fine-tuned one, and writes the texts to ``eval_generations.json``. This module
scores them in the service, with no torch:

* ROUGE-L: Google's ``rouge-score`` (the reference implementation of the
  ROUGE paper's LCS F-measure, Porter-stemmed), per answer, the best over its
  references, averaged;
* BLEU: ``sacrebleu``'s corpus BLEU (13a tokenisation, exponential smoothing),
  the number papers report; its n-gram statistics are taken per answer once and
  summed per resample, which is how sacrebleu's own paired bootstrap works;
* confidence intervals: a paired bootstrap (``resamples`` draws of the
  examples, the same draw for base and fine-tuned), percentile intervals for each
  model and for the difference, so "worse than base" is judged on the pairs of
  answers to the same prompts.

References: for held-out preference pairs, the chosen answer (for a correction
pair that *is* the user's correction); for a benchmark, its reference answers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

METRICS = ("rouge_l", "bleu")
ORDER = 4


def _refs(references: Sequence[str | Sequence[str]]) -> list[list[str]]:
    return [[r] if isinstance(r, str) else [str(x) for x in r] for r in references]


def rouge_l(hypotheses: Sequence[str], references: Sequence[str | Sequence[str]]) -> np.ndarray:
    """ROUGE-L F-measure of each answer against the best of its references (0..1)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return np.array(
        [
            max(scorer.score(ref, hyp)["rougeL"].fmeasure for ref in refs) if refs else 0.0
            for hyp, refs in zip(hypotheses, _refs(references), strict=True)
        ],
        dtype=float,
    )


def bleu_stats(hypotheses: Sequence[str], references: Sequence[str | Sequence[str]]) -> np.ndarray:
    """Per answer: hypothesis length, reference length, n-gram matches and totals (n = 1..4)."""
    from sacrebleu.metrics import BLEU

    bleu = BLEU()
    rows = []
    for hyp, refs in zip(hypotheses, _refs(references), strict=True):
        # sacrebleu wants reference *streams*: stream k holds every answer's k-th reference.
        s = bleu.corpus_score([hyp], [[r] for r in refs])
        rows.append([s.sys_len, s.ref_len, *s.counts, *s.totals])
    return np.array(rows, dtype=float).reshape(-1, 2 + 2 * ORDER)


def bleu_from_stats(stats: np.ndarray) -> float:
    """Corpus BLEU (0..100) from summed statistics, as ``sacrebleu`` computes it."""
    from sacrebleu.metrics import BLEU

    total = stats.sum(axis=0)
    score = BLEU.compute_bleu(
        correct=[int(x) for x in total[2 : 2 + ORDER]],
        total=[int(x) for x in total[2 + ORDER :]],
        sys_len=int(total[0]),
        ref_len=int(total[1]),
        smooth_method="exp",
    )
    return float(score.score)


def _percentiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def score_generations(
    references: Sequence[str | Sequence[str]],
    base: Sequence[str],
    policy: Sequence[str],
    *,
    prefix: str = "",
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """ROUGE-L and BLEU of base and fine-tuned answers, with paired-bootstrap intervals.

    Keys (after ``prefix``): ``rouge_l`` / ``bleu`` (fine-tuned), ``base_rouge_l`` /
    ``base_bleu``, ``rouge_l_delta`` / ``bleu_delta`` (fine-tuned minus base), each
    with ``_low`` and ``_high`` bounds, and ``generated`` (how many prompts).
    """
    n = len(references)
    if not n == len(base) == len(policy):
        raise ValueError("references, base and fine-tuned answers must cover the same prompts")
    out: dict[str, float] = {f"{prefix}generated": float(n)}
    if n == 0:
        return out
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n))
    r_base, r_policy = rouge_l(base, references), rouge_l(policy, references)
    b_base, b_policy = bleu_stats(base, references), bleu_stats(policy, references)
    per_metric = {
        "rouge_l": (
            float(r_policy.mean()),
            float(r_base.mean()),
            r_policy[draws].mean(axis=1),
            r_base[draws].mean(axis=1),
        ),
        "bleu": (
            bleu_from_stats(b_policy),
            bleu_from_stats(b_base),
            np.array([bleu_from_stats(b_policy[d]) for d in draws]),
            np.array([bleu_from_stats(b_base[d]) for d in draws]),
        ),
    }
    for name, (value, base_value, boot, boot_base) in per_metric.items():
        for key, point, dist in (
            (name, value, boot),
            (f"base_{name}", base_value, boot_base),
            (f"{name}_delta", value - base_value, boot - boot_base),
        ):
            low, high = _percentiles(dist, confidence)
            out[f"{prefix}{key}"] = point
            out[f"{prefix}{key}_low"] = low
            out[f"{prefix}{key}_high"] = high
    return out
