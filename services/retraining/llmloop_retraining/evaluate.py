"""The evaluation gate: held-out preference metrics of a trained policy, and a verdict.

The DPO job writes, for every held-out pair, the summed log-probability of the
chosen and the rejected response under the trained policy and under the base
(the reference). Everything here is plain numpy / scipy on those numbers, so the
gate runs in the service without torch and is unit-tested list in, verdict out.

Definitions (one pair i; c = chosen, r = rejected):

* preference accuracy of a model: the share of pairs where it gives the chosen
  response the higher log-probability, ``logp(c) > logp(r)``;
* DPO implicit reward ``r(y) = beta * (logp_policy(y) - logp_base(y))``; the
  reward margin is ``r(c) - r(r)``, and reward accuracy the share with a
  positive margin;
* win rate against the base: over the pairs where policy and base disagree on
  which response is better, the share that the policy gets right; a one-sided
  exact binomial test against 1/2 says whether that beats chance (a sign test:
  pairs both get right, or both wrong, say nothing about which is better).

Generation metrics (``generation.py``): ROUGE-L and BLEU of the answers the
base and the fine-tuned model generate for the held-out prompts and for every
registered benchmark, with paired-bootstrap intervals. ``not_worse_than_base``
names the ones the gate requires: a check fails when the fine-tuned model's
score is below the base's by more than the metric's margin (on the point
estimate; with ``not_worse_strict``, on the interval's lower bound, i.e. it must
*show* it is not worse with the interval's confidence).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from llmloop.events import GateResult


class GateConfig(BaseModel):
    """What a trained model must show on held-out pairs before anyone may promote it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_eval_pairs: int = Field(default=8, ge=1, description="Fewer held-out pairs: no verdict.")
    min_accuracy: float = Field(default=0.55, ge=0, le=1)
    min_accuracy_gain: float = Field(
        default=0.0, description="Accuracy must beat the base's by at least this much."
    )
    min_reward_margin: float = Field(default=0.0)
    max_p_value: float = Field(default=0.05, gt=0, le=1, description="Win-rate binomial test.")
    not_worse_than_base: tuple[str, ...] = Field(
        default=(),
        description="Generation metrics that must not be worse than the base's: rouge_l, bleu, "
        "bench.NAME.rouge_l, ... (shell patterns: bench.*.bleu).",
    )
    not_worse_margin: dict[str, float] = Field(
        default_factory=dict,
        description="Allowed drop per metric (pattern -> margin), in the metric's unit "
        "(ROUGE-L 0..1, BLEU 0..100); default 0.",
    )
    not_worse_strict: bool = Field(
        default=False,
        description="Judge on the lower bound of the difference's interval, not its estimate.",
    )


@dataclass(frozen=True)
class PairLogps:
    """Summed log-probabilities of each held-out pair's responses under one model."""

    chosen: Sequence[float]
    rejected: Sequence[float]


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float]
    gate: GateResult


def preference_accuracy(logps: PairLogps) -> float:
    """Share of pairs where the model prefers the chosen response (ties count half)."""
    c, r = np.asarray(logps.chosen, float), np.asarray(logps.rejected, float)
    if c.size == 0:
        return float("nan")
    return float(np.mean((c > r) + 0.5 * (c == r)))


def evaluate(
    policy: PairLogps,
    base: PairLogps,
    *,
    beta: float,
    config: GateConfig | None = None,
    generation: Mapping[str, float] | None = None,
    notes: Sequence[str] = (),
) -> Evaluation:
    """Metrics of the policy against its base on held-out pairs, and the gate's verdict.

    ``generation``: the generation metrics (``generation.score_generations``) to
    report and to gate on, when the job wrote answers; ``notes``: lines the verdict
    shows as ``info:`` (which benchmark versions were scored).
    """
    from scipy.stats import binomtest  # ~0.5 s to import: only when a job has finished

    config = config or GateConfig()
    pc, pr = np.asarray(policy.chosen, float), np.asarray(policy.rejected, float)
    bc, br = np.asarray(base.chosen, float), np.asarray(base.rejected, float)
    if not pc.shape == pr.shape == bc.shape == br.shape:
        raise ValueError("policy and base log-probabilities must cover the same pairs")
    n = int(pc.size)
    margins = beta * ((pc - bc) - (pr - br))
    policy_right, base_right = pc > pr, bc > br
    wins = int(np.sum(policy_right & ~base_right))
    losses = int(np.sum(~policy_right & base_right))
    decided = wins + losses
    p_value = float(binomtest(wins, decided, 0.5, alternative="greater").pvalue) if decided else 1.0
    metrics = {
        "eval_pairs": float(n),
        "preference_accuracy": preference_accuracy(PairLogps(pc, pr)) if n else 0.0,
        "base_preference_accuracy": preference_accuracy(PairLogps(bc, br)) if n else 0.0,
        "reward_accuracy": float(np.mean(margins > 0)) if n else 0.0,
        "reward_margin": float(np.mean(margins)) if n else 0.0,
        "win_rate": wins / decided if decided else 0.5,
        "wins": float(wins),
        "losses": float(losses),
        "win_p_value": p_value,
        **(generation or {}),
    }
    gate = verdict(metrics, config)
    if notes:
        gate = gate.model_copy(update={"reasons": [*gate.reasons, *(f"info: {n}" for n in notes)]})
    return Evaluation(metrics, gate)


def _base_key(name: str) -> str:
    """``rouge_l`` -> ``base_rouge_l``; ``bench.qa.bleu`` -> ``bench.qa.base_bleu``."""
    prefix, _, metric = name.rpartition(".")
    return f"{prefix}.base_{metric}" if prefix else f"base_{metric}"


def _margin(config: GateConfig, metric: str) -> float:
    return next(
        (
            m
            for pattern, m in config.not_worse_margin.items()
            if fnmatch.fnmatchcase(metric, pattern)
        ),
        0.0,
    )


def _generation_checks(metrics: dict[str, float], config: GateConfig) -> list[tuple[bool, str]]:
    """(ok, text) per required generation metric; a pattern that matches nothing fails."""
    checks: list[tuple[bool, str]] = []
    computed = sorted(k[: -len("_delta")] for k in metrics if k.endswith("_delta"))
    for pattern in config.not_worse_than_base:
        names = [m for m in computed if fnmatch.fnmatchcase(m, pattern)]
        if not names:
            checks.append((False, f"{pattern} not computed (no generated answers to score)"))
        for name in names:
            margin = _margin(config, name)
            delta, low, high = (metrics[f"{name}_delta{s}"] for s in ("", "_low", "_high"))
            judged = low if config.not_worse_strict else delta
            scale = ".2f" if name.endswith("bleu") else ".3f"
            checks.append(
                (
                    judged >= -margin,
                    f"{name} {metrics[name]:{scale}} vs base {metrics[_base_key(name)]:{scale}}, "
                    f"difference {delta:+{scale}} (95% CI {low:+{scale}} .. {high:+{scale}}; "
                    f"need {'lower bound' if config.not_worse_strict else 'difference'} "
                    f">= {(-margin or 0.0):{scale}})",
                )
            )
    return checks


def verdict(metrics: dict[str, float], config: GateConfig) -> GateResult:
    """Pass only if every check holds; the reasons name each check and its numbers."""
    failed: list[str] = []
    passed: list[str] = []

    def check(ok: bool, text: str) -> None:
        (passed if ok else failed).append(text)

    n = int(metrics["eval_pairs"])
    check(n >= config.min_eval_pairs, f"held-out pairs {n} (need >= {config.min_eval_pairs})")
    acc, base_acc = metrics["preference_accuracy"], metrics["base_preference_accuracy"]
    check(
        acc >= config.min_accuracy, f"preference accuracy {acc:.3f} (need >= {config.min_accuracy})"
    )
    check(
        acc - base_acc >= config.min_accuracy_gain,
        f"accuracy gain over base {acc - base_acc:+.3f} (need >= {config.min_accuracy_gain})",
    )
    margin = metrics["reward_margin"]
    check(
        margin > config.min_reward_margin,
        f"mean reward margin {margin:.4f} (need > {config.min_reward_margin})",
    )
    win, p = metrics["win_rate"], metrics["win_p_value"]
    check(
        win > 0.5 and p <= config.max_p_value,
        f"win rate vs base {win:.3f}, binomial p={p:.3g} (need > 0.5 with p <= "
        f"{config.max_p_value})",
    )
    for ok, text in _generation_checks(metrics, config):
        check(ok, text)
    info = [f"info: {text}" for text in _generation_info(metrics, config)]
    if failed:
        return GateResult(passed=False, reasons=[f"failed: {r}" for r in failed] + info)
    return GateResult(passed=True, reasons=[f"ok: {r}" for r in passed] + info)


def _generation_info(metrics: dict[str, float], config: GateConfig) -> list[str]:
    """The generation metrics the gate does not require, so the verdict still shows them."""
    out = []
    for key in sorted(k for k in metrics if k.endswith("_delta")):
        name = key[: -len("_delta")]
        if any(fnmatch.fnmatchcase(name, p) for p in config.not_worse_than_base):
            continue
        scale = ".2f" if name.endswith("bleu") else ".3f"
        out.append(
            f"{name} {metrics[name]:{scale}} vs base {metrics[_base_key(name)]:{scale}}, "
            f"difference {metrics[key]:+{scale}} (95% CI {metrics[key + '_low']:+{scale}} .. "
            f"{metrics[key + '_high']:+{scale}})"
        )
    return out
