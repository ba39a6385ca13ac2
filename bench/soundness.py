"""False alarms and detection of the shipped alert rules, end to end, on simulated streams.

Statistics -> rules -> alert state, as they ship: ``stats.window_metrics`` (what the
processor's timer runs) on windows of templated support / coding / cooking traffic
with real MiniLM embeddings and VADER sentiment, then the shipped
``default_rules.yaml`` through the alert state machine (``llmloop_alerting.replay``).
Nothing is downloaded: the corpus is generated (``llmloop.testing.corpus``) and
its embeddings are cached under bench/results/.

    .venv/bin/python bench/soundness.py [--trials 50] [--quick]

Prints one table: per scenario, the rule it is about, how many streams (trials)
and windows it ran, the share of evaluations that breached, the pages, and the
detection rate with its 95% Wilson interval. Goals (issue 12):

* no shift (also with near-duplicate pairs and sessions): breaches <= alpha + 2%;
* a 24-hour stream at default settings: at most one page;
* a 30% topic shift, 200 completions per window: fires within 3 windows in >= 90%;
* a 10% shift, 1,000 per window: fires within 3 windows in >= 80%;
* one locale at 35% negative feedback against four at 20%, 100 each: fires in
  >= 90% (within 12 windows) and never resolves (no flapping) over 24 windows;
* no bias alert on length or sentiment without a real difference.

``--ablate`` adds the near-duplicate stream with collapsing turned off, to show
what it protects against. ``--power`` prints, for each shipped rate-bias rule,
the segment size (per window, five segments) at which one window detects a
given true gap with 90% probability (the README quotes it).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion k / n."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class Line:
    scenario: str
    rule: str
    trials: int
    windows: int
    evaluations: int = 0
    breaches: int = 0
    pages: int = 0
    detected: int | None = None
    resolves: int | None = None
    goal: str = ""

    def row(self) -> str:
        rate = self.breaches / self.evaluations if self.evaluations else float("nan")
        detect = ""
        if self.detected is not None:
            lo, hi = wilson(self.detected, self.trials)
            share = self.detected / self.trials
            detect = f"{share:6.1%} [{lo:.2f}, {hi:.2f}]"
        resolves = "" if self.resolves is None else str(self.resolves)
        return (
            f"| {self.scenario} | {self.rule} | {self.trials} | {self.windows} | "
            f"{self.evaluations} | {rate:.2%} | {self.pages} | {detect} | {resolves} | "
            f"{self.goal} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=50, help="streams per detection scenario")
    parser.add_argument("--null-trials", type=int, default=10, help="no-shift streams")
    parser.add_argument("--hours", type=float, default=24.0, help="length of the long stream")
    parser.add_argument("--pool", type=int, default=1500, help="questions per topic")
    parser.add_argument("--quick", action="store_true", help="a tenth of the trials, 2 hours")
    parser.add_argument("--ablate", action="store_true", help="also: collapsing turned off")
    parser.add_argument("--power", action="store_true", help="only the bias power table")
    parser.add_argument(
        "--backend",
        choices=("onnx-int8", "torch"),
        default="onnx-int8",
        help="embedding backend (default: the processor's default)",
    )
    args = parser.parse_args()
    if args.power:
        return power_table()
    if args.quick:
        args.trials, args.null_trials, args.hours = 10, 2, 2.0

    from llmloop_alerting.replay import Replay
    from llmloop_alerting.rules import load_rules
    from llmloop_processor import simulate as sim
    from llmloop_processor.stats import Tests

    rules = load_rules()
    alpha = {r.name: r.p_value_below for r in rules.rules}
    began = time.monotonic()
    from llmloop_processor.embed import Embedder

    cache = RESULTS / f"soundness-embeddings-{args.backend}.npz"
    pools = sim.Pools(size=args.pool, cache=cache, encode=Embedder(backend=args.backend).encode)
    pools.warm()
    print(
        f"corpus: {args.pool} questions per topic, embedded ({args.backend}) in "
        f"{time.monotonic() - began:.0f} s"
    )
    base = sim.Traffic()
    noisy = sim.Traffic(sessions=True, retries=0.3)
    bias_names = [r.name for r in rules.rules if r.metric == "bias_segment_gap"]
    lines: list[Line] = []

    def streams(before, after, trials, wb, wa, per=200, tests=None, seed0=0):
        for trial in range(trials):
            yield Replay(rules).run(
                sim.stream(
                    pools,
                    before,
                    after,
                    windows_before=wb,
                    windows_after=wa,
                    per_window=per,
                    seed=seed0 + trial,
                    tests=tests,
                )
            )

    def null_lines(name, traffic, trials, windows, per=200, tests=None, seed0=0):
        outcomes = list(streams(traffic, traffic, trials, 0, windows, per, tests, seed0))
        for rule in ["embedding-drift", *bias_names]:
            line = Line(name, rule, trials, windows, goal=f"<= {alpha[rule] + 0.02:.0%}")
            for o in outcomes:
                line.evaluations += o.evaluations.get(rule, 0)
                line.breaches += o.breaches.get(rule, 0)
                line.pages += len(o.fired.get(rule, []))
            lines.append(line)
        return outcomes

    null_lines("no shift, 200/window", base, args.null_trials, 24, seed0=1000)
    null_lines("no shift, near-duplicate pairs + sessions", noisy, args.null_trials, 24, seed0=2000)
    if args.ablate:
        null_lines(
            "same, collapsing off",
            noisy,
            args.null_trials,
            24,
            tests=Tests(collapse=False),
            seed0=2000,
        )
    day = int(args.hours * 12)
    (long_run,) = streams(noisy, noisy, 1, 0, day, seed0=3000)
    lines.append(
        Line(
            f"{args.hours:g} h at default settings (sessions, retries)",
            "all rules",
            1,
            day,
            sum(long_run.evaluations.values()),
            sum(long_run.breaches.values()),
            long_run.pages(),
            goal="<= 1 page",
        )
    )

    def detection(name, after, per, within, goal, seed0):
        line = Line(name, "embedding-drift", args.trials, 2 + within, goal=goal)
        line.detected = 0
        for o in streams(base, after, args.trials, 2, within, per, seed0=seed0):
            first = o.first_fire("embedding-drift")
            line.detected += first is not None and 0 <= first < within
            line.pages += len(o.fired.get("embedding-drift", []))
            line.evaluations += o.evaluations.get("embedding-drift", 0)
            line.breaches += o.breaches.get("embedding-drift", 0)
        lines.append(line)

    detection("30% topic shift, 200/window", sim.Traffic(shift=0.3), 200, 3, ">= 90% in 3", 4000)
    detection("10% topic shift, 1,000/window", sim.Traffic(shift=0.1), 1000, 3, ">= 80% in 3", 5000)

    unfair = sim.Traffic(negative={"de-DE": 0.35})
    line = Line(
        "de-DE 35% vs 4 x 20% negative, 100 each",
        "bias-negative-feedback",
        args.trials,
        24,
        goal=">= 90%, 0 resolves",
    )
    line.detected, line.resolves = 0, 0
    for o in streams(base, unfair, args.trials, 0, 24, per=500, seed0=6000):
        first = o.first_fire("bias-negative-feedback")
        line.detected += first is not None and first < 12
        line.resolves += len(o.resolved.get("bias-negative-feedback", []))
        line.pages += len(o.fired.get("bias-negative-feedback", []))
        line.evaluations += o.evaluations.get("bias-negative-feedback", 0)
        line.breaches += o.breaches.get("bias-negative-feedback", 0)
    lines.append(line)

    print(
        "\n| scenario | rule | trials | windows/trial | evaluations | breached | pages | "
        "detected [95% CI] | resolves | goal |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    for line in lines:
        print(line.row())
    print(f"\n{time.monotonic() - began:.0f} s in all")
    return 0


def power_table(sims: int = 2_000) -> int:
    """Per-window detection probability of the rate-bias rules, by segment size."""
    import numpy as np

    from llmloop_alerting.rules import load_rules
    from llmloop_processor.bias import two_proportions
    from llmloop_processor.metric_sink import holm

    rules = {
        r.match.get("outcome"): r for r in load_rules().rules if r.metric == "bias_segment_gap"
    }
    cases = {"negative_feedback": (0.20, 0.15), "toxicity": (0.01, 0.04), "refusal": (0.05, 0.10)}
    print("| rule | base rate | true gap | segment size for 90% per window | power at 100 |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for outcome, (base, gap) in cases.items():
        rule = rules[outcome]

        def power(n: int, rule=rule, base=base, gap=gap) -> float:
            # The segment-vs-rest tests of compare_rates, Holm over the five segments.
            hits = 0
            for _ in range(sims):
                counts = rng.binomial(n, np.r_[base + gap, [base] * 4])
                ps, effects = [], []
                for i in range(5):
                    rest = counts.sum() - counts[i]
                    ps.append(two_proportions(counts[i], n, rest, 4 * n))
                    effects.append(counts[i] / n - rest / (4 * n))
                p = holm(ps)[0]
                hits += effects[0] > rule.threshold and p < rule.p_value_below
            return hits / sims

        needed = next(
            (n for n in (50, 100, 150, 200, 300, 400, 600, 800, 1200) if power(n) >= 0.9), None
        )
        print(
            f"| {rule.name} | {base:.0%} | +{gap:.0%} | {needed or '> 1,200'} | {power(100):.0%} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
