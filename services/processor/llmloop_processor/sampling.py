"""Which completions get embedded: a sample sized by what drift needs and what the CPU gives.

Scalar enrichment covers every completion; embeddings cost ~100x more, so they
run on a sample chosen per key (project, model, prompt version):

* **Need**: ``target_per_window`` embedded completions per key per window (the
  drift tests' stated power: 200 per 5 minutes by default), or every one of a
  key's completions when it has fewer.
* **Capacity**: the embedding stage's measured throughput (completions per busy
  second), times ``headroom``, less what it takes to drain the backlog within
  ``drain_s``. When capacity exceeds the keys' needs, the rest is spread as one
  common rate, so the sample grows with spare CPU; when it is below, every key
  gets the same share of its need, and the log says so.
* **Determinism**: an event is kept when the first 8 bytes of its ``event_id``,
  read as a number in [0, 1), fall below the key's rate. A redelivered event
  the enricher has not stored yet gets the same choice at the same rate, and a
  lower rate keeps a subset of what a higher one kept. Once the enricher stored
  a row its decision is final (the writers skip ids already stored), and the
  rate it was made at is on the row.

Rates are re-planned every ``replan_s`` from counts, never per event, and a
change by more than ``log_change`` (relative) is logged with its reason.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # (project_id, model, prompt_version)


class EmbeddingSampler(Protocol):
    """What the enricher and the embedding stage need of a sampler."""

    pending: int

    def decide(self, event_id: uuid.UUID, key: Key) -> tuple[bool, float]:
        """Whether to embed this completion, and the rate the choice was made at."""
        ...

    def embedded(self, completions: int, busy_s: float) -> None:
        """``completions`` embedded in ``busy_s`` seconds of model time."""
        ...

    def skipped(self, completions: int) -> None:
        """Sampled completions the stage found embedded already (a redelivery)."""
        ...


def position(event_id: uuid.UUID) -> float:
    """The event's place in [0, 1): kept when below the rate, stable across redelivery."""
    return int.from_bytes(event_id.bytes[:8], "big") / 2**64


def keep(event_id: uuid.UUID, rate: float) -> bool:
    return rate >= 1.0 or position(event_id) < rate


@dataclass
class _KeyState:
    arrivals: int = 0  # since the last plan
    rate_per_s: float | None = None  # smoothed arrival rate
    sample_rate: float = 1.0


@dataclass
class Plan:
    """One re-planning: the budget and why the rates are what they are."""

    capacity_per_s: float
    budget_per_s: float
    need_per_s: float
    backlog: int
    reason: str
    rates: dict[Key, float] = field(default_factory=dict)


class AdaptiveSampler:
    """Embedding sample rates per key, re-planned from arrivals, throughput and backlog.

    Thread-safe: the enricher calls ``decide`` from its writer thread, the
    embedding stage ``embedded`` from its own.
    """

    def __init__(
        self,
        *,
        target_per_window: int = 200,
        window_s: float = 300.0,
        capacity_hint_per_s: float = 20.0,
        headroom: float = 0.7,
        drain_s: float = 60.0,
        max_rates: Mapping[str, float] | None = None,
        default_max_rate: float = 1.0,
        replan_s: float = 5.0,
        smoothing: float = 0.3,
        log_change: float = 0.25,
        initial_burst: int = 400,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Args:
        target_per_window: embedded completions wanted per key and window.
        window_s: the statistics' window length (``processor_stats_window_s``).
        capacity_hint_per_s: completions per second assumed before any is measured.
        headroom: fraction of the measured throughput the sample may use; the rest
            absorbs bursts, so the backlog shrinks by itself.
        drain_s: a backlog is planned to be drained within this long.
        max_rates: ``"project/model"`` or ``"model"`` -> highest rate (a fixed
            ceiling set by the operator, e.g. for a model whose texts must not be
            embedded at all: 0).
        default_max_rate: the ceiling of every other key.
        replan_s: how often rates are re-planned.
        smoothing: weight of the newest interval in the smoothed rates (0-1].
        log_change: relative change of a key's rate that is worth a log line.
        initial_burst: until the stage's throughput is measured, everything is sampled
            while fewer than this many wait (a small history or test is embedded
            whole); beyond it the hint plans the rates.
        """
        if not 0.0 <= default_max_rate <= 1.0:
            raise ValueError(f"embedding sample rate {default_max_rate} is not in [0, 1]")
        self.target_per_window = target_per_window
        self.window_s = window_s
        self.headroom = headroom
        self.drain_s = drain_s
        self.max_rates = dict(max_rates or {})
        self.default_max_rate = default_max_rate
        self.replan_s = replan_s
        self.smoothing = smoothing
        self.log_change = log_change
        self.initial_burst = initial_burst
        self.clock = clock
        self._lock = threading.Lock()
        self._keys: dict[Key, _KeyState] = {}
        self._capacity = capacity_hint_per_s
        self._measured = False
        self._busy_s = 0.0
        self._done = 0
        self.pending = 0  # decided 'sampled', not embedded yet (this process's view)
        self._last_plan = clock()
        self._sampled_since_plan = 0
        self._budget = headroom * capacity_hint_per_s
        self.last: Plan | None = None

    # -- what the enricher asks -------------------------------------------------------
    def ceiling(self, key: Key) -> float:
        project, model, _ = key
        return self.max_rates.get(
            f"{project}/{model}", self.max_rates.get(model, self.default_max_rate)
        )

    def rate(self, key: Key) -> float:
        with self._lock:
            state = self._keys.get(key)
            return min(self.ceiling(key), 1.0 if state is None else state.sample_rate)

    def decide(self, event_id: uuid.UUID, key: Key) -> tuple[bool, float]:
        """Whether to embed this completion, and the rate the choice was made at."""
        with self._lock:
            state = self._keys.setdefault(key, _KeyState())
            state.arrivals += 1
            self._maybe_replan()
            rate = min(self.ceiling(key), state.sample_rate)
            chosen = keep(event_id, rate)
            if chosen:
                self.pending += 1
                self._sampled_since_plan += 1
            return chosen, rate

    # -- what the embedding stage reports --------------------------------------------
    def embedded(self, completions: int, busy_s: float) -> None:
        """``completions`` embedded in ``busy_s`` seconds of model time."""
        with self._lock:
            self.pending = max(0, self.pending - completions)
            self._done += completions
            self._busy_s += busy_s

    def skipped(self, completions: int) -> None:
        """Sampled completions the stage found already embedded (a redelivery)."""
        with self._lock:
            self.pending = max(0, self.pending - completions)

    @property
    def capacity_per_s(self) -> float:
        return self._capacity

    def rates(self) -> dict[Key, float]:
        """Every key's current rate (its ceiling applied)."""
        with self._lock:
            return {k: min(self.ceiling(k), s.sample_rate) for k, s in self._keys.items()}

    # -- planning ---------------------------------------------------------------------
    def replan(self) -> Plan:
        with self._lock:
            return self._replan(self.clock())

    def _maybe_replan(self) -> None:
        now = self.clock()
        # Early too, when more was sampled since the last plan than the budget allows
        # for a whole interval: a burst (or the first second of a new key, sampled at
        # 1.0) must not queue minutes of embedding work before the next plan.
        if not self._measured and self._done < 8 and self.pending < self.initial_burst:
            return  # nothing known yet, and little waiting: keep sampling everything
        over = self._sampled_since_plan > max(10.0, self._budget * self.replan_s)
        if now - self._last_plan >= self.replan_s or over:
            self._replan(now)

    def _replan(self, now: float) -> Plan:
        elapsed = max(now - self._last_plan, 1e-3)
        self._last_plan = now
        self._sampled_since_plan = 0
        a = self.smoothing
        # Throughput: completions per second of model time, measured over enough work
        # to mean something (a few batches), smoothed so one slow batch does not swing it.
        if self._done >= 8 and self._busy_s > 0:
            measured = self._done / self._busy_s
            self._capacity = (
                measured if not self._measured else (1 - a) * self._capacity + a * measured
            )
            self._measured = True
            self._done, self._busy_s = 0, 0.0
        for state in self._keys.values():
            now_rate = state.arrivals / elapsed
            state.rate_per_s = (
                now_rate if state.rate_per_s is None else (1 - a) * state.rate_per_s + a * now_rate
            )
            state.arrivals = 0
        drain = self.pending / self.drain_s
        budget = max(0.0, self.headroom * self._capacity - drain)
        self._budget = budget
        arrivals = {k: s.rate_per_s or 0.0 for k, s in self._keys.items()}
        need = self.target_per_window / self.window_s
        rates, reason = allocate(arrivals, budget, need, self.ceiling)
        reason = reason.replace("{need}", f"{self.target_per_window} per {self.window_s:.0f} s")
        if drain > 0.1 * budget and self.pending > 0:
            reason += f"; draining a backlog of {self.pending}"
        plan = Plan(self._capacity, budget, need, self.pending, reason, rates)
        for key, rate in rates.items():
            state = self._keys[key]
            old = state.sample_rate
            state.sample_rate = rate
            if abs(rate - old) > self.log_change * max(old, 1e-9):
                log.info(
                    "embedding sample rate of %s: %.4g -> %.4g (%s; %.1f completions/s "
                    "arriving, capacity %.1f/s, budget %.1f/s)",
                    "/".join(key),
                    old,
                    rate,
                    reason,
                    arrivals[key],
                    self._capacity,
                    budget,
                )
        self.last = plan
        return plan


def allocate(
    arrivals: Mapping[Key, float],
    budget: float,
    need: float,
    ceiling: Callable[[Key], float] = lambda key: 1.0,
) -> tuple[dict[Key, float], str]:
    """Sample rates that spend at most ``budget`` completions/s, every key's need first.

    Each key first gets ``min(arrival, need)``; if that is more than the budget,
    every key gets the same fraction of it. What is left is spread as a common
    rate (found by bisection) on top of those floors, up to each key's ceiling.
    """
    live = {k: v for k, v in arrivals.items() if v > 0}
    rates = {k: min(1.0, ceiling(k)) for k in arrivals if k not in live}
    if not live:
        return rates, "no traffic"
    floors = {k: min(v, need, v * ceiling(k)) for k, v in live.items()}
    total_floor = sum(floors.values())
    if total_floor >= budget:
        share = budget / total_floor if total_floor > 0 else 0.0
        rates.update({k: floors[k] * share / v for k, v in live.items()})
        return rates, (
            f"capacity below need: every key gets {share:.0%} of its {{need}}"
            if share < 1
            else "capacity just covers the need"
        )

    def spend(r: float) -> float:
        return sum(min(v * ceiling(k), max(floors[k], r * v)) for k, v in live.items())

    if spend(1.0) <= budget:
        rates.update({k: min(1.0, ceiling(k)) for k in live})
        return rates, "capacity covers all traffic"
    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if spend(mid) <= budget else (lo, mid)
    rates.update({k: min(ceiling(k), max(floors[k] / v, lo)) for k, v in live.items()})
    return rates, "need met; spare capacity spread over all keys"
