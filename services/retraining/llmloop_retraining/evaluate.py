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
"""

from __future__ import annotations

from collections.abc import Sequence
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
    policy: PairLogps, base: PairLogps, *, beta: float, config: GateConfig | None = None
) -> Evaluation:
    """Metrics of the policy against its base on held-out pairs, and the gate's verdict."""
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
    }
    return Evaluation(metrics, verdict(metrics, config))


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
    if failed:
        return GateResult(passed=False, reasons=[f"failed: {r}" for r in failed])
    return GateResult(passed=True, reasons=[f"ok: {r}" for r in passed])
