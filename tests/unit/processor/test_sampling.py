"""The adaptive embedding sample: need first, capacity bounds it, choices stable per event."""

from __future__ import annotations

import logging
import uuid

import pytest

from llmloop_processor.sampling import AdaptiveSampler, allocate, keep

IDS = [uuid.UUID(int=i * 0x9E3779B97F4A7C15_9E3779B97F4A7C15 % 2**128) for i in range(20_000)]
A, B = ("p", "big", "v1"), ("p", "small", "v1")


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_allocation_meets_every_need_then_spreads_the_rest() -> None:
    need = 200 / 300
    rates, reason = allocate({A: 1000.0, B: 0.5}, budget=20.0, need=need)
    assert rates[B] == 1.0  # fewer than its need: all of it
    assert rates[A] * 1000 + 0.5 == pytest.approx(20.0, rel=1e-6)
    assert "spare capacity" in reason
    rates, reason = allocate({A: 1000.0, B: 1000.0}, budget=0.5, need=need)
    assert rates[A] == rates[B] == pytest.approx(0.25 / 1000)  # short: same share of the need
    assert "capacity below need" in reason
    rates, _ = allocate({A: 5.0, B: 5.0}, budget=20.0, need=need)
    assert rates == {A: 1.0, B: 1.0}
    rates, _ = allocate({A: 1000.0}, budget=20.0, need=need, ceiling=lambda key: 0.001)
    assert rates[A] == 0.001  # an operator's ceiling holds


def test_a_lower_rate_keeps_a_subset_and_the_choice_is_stable() -> None:
    high = {i for i in IDS if keep(i, 0.2)}
    low = {i for i in IDS if keep(i, 0.05)}
    assert low < high and 0.04 < len(low) / len(IDS) < 0.06
    assert high == {i for i in IDS if keep(i, 0.2)}


def test_rate_follows_measured_throughput_and_backlog(caplog) -> None:
    clock = Clock()
    sampler = AdaptiveSampler(capacity_hint_per_s=20.0, headroom=1.0, replan_s=1.0, clock=clock)
    caplog.set_level(logging.INFO, "llmloop_processor.sampling")
    chosen = 0
    # 1,000 completions/s of one key, the embedder doing 20/s: the rate settles near 2%.
    for second in range(30):
        for i in range(1000):
            clock.t = second + i / 1000
            kept, _ = sampler.decide(IDS[(second * 1000 + i) % len(IDS)], A)
            chosen += kept
        sampler.embedded(min(sampler.pending, 20), 1.0)
    assert 0.005 < sampler.rate(A) < 0.03
    # Bounded: at most the initial burst (sampled before any throughput was measured),
    # draining, never growing with the traffic.
    assert sampler.pending < 400
    assert any("embedding sample rate of p/big/v1" in r.message for r in caplog.records)
    # The embedder slows to 2/s: the rate drops with it, and the log says why.
    caplog.clear()
    before = sampler.rate(A)
    for second in range(30, 90):
        for i in range(1000):
            clock.t = second + i / 1000
            sampler.decide(IDS[(second * 1000 + i) % len(IDS)], A)
        sampler.embedded(min(sampler.pending, 2), 1.0)
    assert sampler.rate(A) < before / 3
    assert sampler.capacity_per_s < 5
    assert any("capacity" in r.message for r in caplog.records)
