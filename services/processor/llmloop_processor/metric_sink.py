"""The metrics of one window: catalogue-checked, with stable ids and adjusted p-values.

Each metric's ``event_id`` is derived from its name, labels and window, so a
window computed twice is stored once. Only names in the metric catalogue
(``llmloop.contracts.metrics``) with exactly their labels are accepted: a typo
would otherwise publish a metric no rule or dashboard ever reads.

Multiplicity: one key's window runs dozens of tests (two fields, six features,
every segment of every attribute for five outcomes). ``metrics()`` replaces each
p-value with its Holm adjustment over the metric's family (same name, same
``family`` labels, same window), which bounds the chance that any test of the
family rejects by luck at the rule's ``p_value_below``; the raw value stays in
``p_value_raw``. Holm rather than Benjamini-Hochberg: a page is a family-wise
decision, and a false discovery *rate* would still page on noise.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from llmloop.contracts.metrics import spec
from llmloop.events import MetricComputed

NAMESPACE = uuid.UUID("5b0c7f4e-8a51-4b7e-9a6e-4c1f0d2a9e11")


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment (family-wise error), in the input's order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


@dataclass
class _Pending:
    name: str
    value: float
    labels: dict[str, str]
    n: int
    p: float | None
    reference_size: int | None
    rows_total: int | None


class MetricSink:
    """Collects the metrics of one window of one key (or of every key, for SQL metrics)."""

    def __init__(self, base: dict[str, str], start: datetime, end: datetime) -> None:
        self.base, self.start, self.end = base, start, end
        self._pending: list[_Pending] = []

    def add(
        self,
        name: str,
        value: float | None,
        n: int,
        p: float | None = None,
        *,
        reference_size: int | None = None,
        rows_total: int | None = None,
        **labels: str,
    ) -> None:
        """One metric; a value that is None or not finite is left out."""
        entry = spec(name)
        if set(labels) != set(entry.labels):
            raise ValueError(f"{name}: labels {sorted(labels)}, the catalogue says {entry.labels}")
        if (p is not None) and not entry.p_value:
            raise ValueError(f"{name} has no p-value in the catalogue")
        if value is None or not np.isfinite(value):
            return
        clean_p = None if p is None or not np.isfinite(p) else min(max(float(p), 0.0), 1.0)
        self._pending.append(
            _Pending(
                name,
                float(value),
                {**self.base, **labels},
                int(n),
                clean_p,
                reference_size,
                rows_total,
            )
        )

    def _adjusted(self) -> list[float | None]:
        families: dict[tuple[object, ...], list[int]] = {}
        for i, m in enumerate(self._pending):
            if m.p is not None:
                key = (m.name, m.labels.get("project"), m.labels.get("model"))
                key += (m.labels.get("prompt_version"),)
                key += tuple(m.labels.get(f) for f in spec(m.name).family)
                families.setdefault(key, []).append(i)
        out: list[float | None] = [None] * len(self._pending)
        for members in families.values():
            ps = [self._pending[i].p for i in members]
            for i, adjusted in zip(members, holm(ps), strict=True):  # type: ignore[arg-type]
                out[i] = adjusted
        return out

    @property
    def metrics(self) -> list[MetricComputed]:
        """The window's metrics, p-values adjusted over their families."""
        out = []
        for m, adjusted in zip(self._pending, self._adjusted(), strict=True):
            identity = (
                f"{m.name}|{sorted(m.labels.items())}|{self.start.isoformat()}|"
                f"{self.end.isoformat()}"
            )
            out.append(
                MetricComputed(
                    event_id=uuid.uuid5(NAMESPACE, identity),
                    project_id=self.base.get("project") or None,
                    name=m.name,
                    value=m.value,
                    labels=m.labels,
                    window_start=self.start,
                    window_end=self.end,
                    sample_size=m.n,
                    p_value=adjusted,
                    p_value_raw=m.p,
                    reference_size=m.reference_size,
                    rows_total=m.rows_total,
                )
            )
        return out
