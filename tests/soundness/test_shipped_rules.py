"""The shipped alert rules, end to end, on simulated streams with fixed seeds.

Statistics (``stats.window_metrics``, as the processor's timer runs it) on windows
of templated traffic with real MiniLM embeddings, then ``default_rules.yaml``
through the alert state machine (``llmloop_alerting.replay``). ``bench/soundness.py``
runs the same scenarios with more repetitions and prints the table the README
quotes; these runs are smaller, and each bound says why it is safe to assert.
"""

from __future__ import annotations

import pytest

from llmloop_alerting.replay import Outcome, Replay
from llmloop_processor import simulate as sim
from llmloop_processor.stats import Tests

pytestmark = pytest.mark.slow

BIAS_RULES = (
    "bias-negative-feedback",
    "bias-toxicity",
    "bias-refusal",
    "bias-sentiment",
    "bias-length",
)


@pytest.fixture(scope="module")
def pools(embedder) -> sim.Pools:
    """300 questions per topic; texts are embedded as streams first use them."""
    return sim.Pools(size=300, seed=1, encode=embedder.encode)


def streams(pools, before, after, trials, wb, wa, per=200, seed0=0, tests=None) -> list[Outcome]:
    return [
        Replay().run(
            sim.stream(
                pools,
                before,
                after,
                windows_before=wb,
                windows_after=wa,
                per_window=per,
                seed=seed0 + t,
                tests=tests,
            )
        )
        for t in range(trials)
    ]


def total(outcomes: list[Outcome], what: str, rule: str) -> int:
    """Summed over streams: a count, or the number of fire / resolve events."""
    values = [getattr(o, what).get(rule, 0) for o in outcomes]
    return sum(len(v) if isinstance(v, list) else v for v in values)


def test_no_shift_with_duplicates_and_sessions_stays_quiet(pools):
    """48 windows of retried (near-duplicate) questions in sessions, no shift.

    The drift rule's per-window level is 1% (adjusted p < 0.01); at that level more
    than 5 breaches in 96 decisions has probability < 0.1%, so <= 5 is a safe bound
    for alpha + 2% (the bench measures 0% on 480). No rule pages: a page needs 2
    breaching windows of 3. Without collapsing duplicates the same streams breach
    in over 20% of windows: the property depends on the collapsing, and the test
    can fail.
    """
    noisy = sim.Traffic(sessions=True, retries=0.3)
    outcomes = streams(pools, noisy, noisy, 4, 0, 12, seed0=100)
    decided = total(outcomes, "evaluations", "embedding-drift")
    assert decided == 4 * 12 * 2  # every window, both fields
    assert total(outcomes, "breaches", "embedding-drift") <= 5
    assert sum(o.pages() for o in outcomes) == 0
    for rule in BIAS_RULES:  # no real difference in any outcome: no bias alert either
        assert total(outcomes, "breaches", rule) <= 0.03 * total(outcomes, "evaluations", rule)

    raw = streams(pools, noisy, noisy, 4, 0, 12, seed0=100, tests=Tests(collapse=False))
    assert total(raw, "breaches", "embedding-drift") > 0.2 * decided


def test_a_30_percent_topic_shift_fires_within_three_windows(pools):
    """8 streams, 200 completions per window: fires in windows 0-2 after the shift in
    >= 7 of 8 (the bench measures 100% of 50; at a true 90% rate, 6 or fewer of 8
    has probability 19%, at the measured rate ~0). Fires once per stream."""
    base, shifted = sim.Traffic(), sim.Traffic(shift=0.3)
    outcomes = streams(pools, base, shifted, 8, 2, 4, seed0=200)
    early = [o.first_fire("embedding-drift") for o in outcomes]
    assert sum(f is not None and 0 <= f < 3 for f in early) >= 7, early
    assert all(len(o.fired.get("embedding-drift", [])) <= 1 for o in outcomes)


def test_one_segment_with_more_negative_feedback_fires_and_does_not_flap(pools):
    """de-DE at 35% negative feedback, four locales at 20%, 100 each per window, for an
    hour: fires in >= 5 of 6 streams (bench: 100% of 50) and never resolves."""
    unfair = sim.Traffic(negative={"de-DE": 0.35})
    outcomes = streams(pools, sim.Traffic(), unfair, 6, 0, 12, per=500, seed0=300)
    fired = [o.fired.get("bias-negative-feedback", []) for o in outcomes]
    assert sum(len(f) == 1 for f in fired) >= 5, fired
    assert total(outcomes, "resolved", "bias-negative-feedback") == 0
    # The other outcomes did not change: no alert on them.
    for rule in BIAS_RULES[1:]:
        assert not any(o.fired.get(rule) for o in outcomes), rule
