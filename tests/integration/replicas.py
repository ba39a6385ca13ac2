"""Service replicas as separate ``llmloop`` processes, for the scale-out tests (issue 16).

Each replica logs to its own file; the tests read the hand-over lines back
(``owns partition=``, ``released partition=``, ``evaluated partition=``) to check that
no two replicas held or worked on one partition at the same time.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

_OWNS = re.compile(r"owns partition=(\d+) at=([\d.]+)")
_RELEASED = re.compile(r"released partition=(\d+) at=([\d.]+)")
_EVALUATED = re.compile(r"evaluated partition=(\d+) \S+ from=([\d.]+) to=([\d.]+)")


class Replica:
    """``python -m llmloop.cli ARGS`` with ``env``; stderr kept in ``log_path``."""

    def __init__(self, name: str, args: Sequence[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.args = list(args)
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.killed_at: float | None = None

    def start(self) -> Replica:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llmloop.cli", *self.args],
            env={**os.environ, **self.env},
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        log.close()
        return self

    def kill(self) -> None:
        """SIGKILL: nothing of the process's own shutdown runs."""
        assert self.proc is not None
        self.killed_at = time.time()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass(frozen=True)
class Held:
    """One replica's hold on one partition, from its take-over to its release (or death)."""

    replica: str
    partition: int
    start: float
    end: float


def holds(replicas: Iterable[Replica], *, now: float | None = None) -> list[Held]:
    """Every partition hold the replicas' logs show; a hold still open ends at the
    replica's kill (or ``now`` for a live one)."""
    now = now or time.time()
    out: list[Held] = []
    for r in replicas:
        open_: dict[int, float] = {}
        events = [(float(t), int(p), "own") for p, t in _OWNS.findall(r.text())]
        events += [(float(t), int(p), "rel") for p, t in _RELEASED.findall(r.text())]
        for t, p, kind in sorted(events):
            if kind == "own":
                open_[p] = t
            elif p in open_:
                out.append(Held(r.name, p, open_.pop(p), t))
        end = r.killed_at if r.killed_at is not None else now
        out += [Held(r.name, p, t, end) for p, t in open_.items()]
    return out


def evaluations(replicas: Iterable[Replica]) -> list[Held]:
    """Every batch evaluation the logs show, as (replica, partition, start, end)."""
    return [
        Held(r.name, int(p), float(a), float(b))
        for r in replicas
        for p, a, b in _EVALUATED.findall(r.text())
    ]


def overlaps(spans: Sequence[Held]) -> list[tuple[Held, Held]]:
    """Pairs of spans of one partition, by different replicas, that overlap in time."""
    found = []
    for i, a in enumerate(spans):
        for b in spans[i + 1 :]:
            if (
                a.partition == b.partition
                and a.replica != b.replica
                and a.start < b.end
                and b.start < a.end
            ):
                found.append((a, b))
    return found


def owners(replicas: Iterable[Replica]) -> dict[int, str]:
    """Who holds each partition now (by the logs)."""
    now = time.time()
    return {h.partition: h.replica for h in holds(replicas, now=now) if h.end >= now}
