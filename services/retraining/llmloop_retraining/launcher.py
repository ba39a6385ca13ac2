"""Job launchers behind one port: ``local`` (a subprocess here) and ``kubernetes`` (a GPU Job).

A launcher runs one DPO job described by a ``JobSpec`` and reports what happens
through ``on_update`` (started, progress, then succeeded or failed); the
service turns each update into a retrain event. The job writes its model,
``metrics.json`` and ``eval_logps.json`` into ``spec.output_dir``, where the
service reads them for the evaluation gate (on Kubernetes that folder is the
shared output volume).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

log = logging.getLogger(__name__)

JOB_MODULE = "llmloop_retraining.jobs.dpo"


@dataclass(frozen=True)
class JobSpec:
    """One DPO job: which model, on which dataset version, where its output goes."""

    job_id: str
    model: str
    base_model: str
    dataset_version: str
    dataset_dir: Path
    output_dir: Path
    train: dict[str, Any] = field(default_factory=dict)
    # Benchmark task sets the job also answers ({"name", "version", "path"}; benchmarks.py).
    benchmarks: tuple[dict[str, str], ...] = ()

    def payload(self) -> dict[str, Any]:
        """The spec file the job reads (``jobs/dpo.py --spec``)."""
        return {
            **self.train,
            "job_id": self.job_id,
            "model": self.model,
            "base_model": self.base_model,
            "dataset_version": self.dataset_version,
            "dataset_dir": str(self.dataset_dir),
            "output_dir": str(self.output_dir),
            "benchmarks": [dict(b) for b in self.benchmarks],
        }


@dataclass(frozen=True)
class JobUpdate:
    stage: Literal["started", "progress", "succeeded", "failed"]
    progress: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    message: str | None = None


OnUpdate = Callable[[JobUpdate], Awaitable[None]]


class Launcher(Protocol):
    name: str

    async def run(self, spec: JobSpec, on_update: OnUpdate) -> JobUpdate:
        """Run the job to its end; returns the final update (succeeded or failed)."""
        ...

    def describe(self, spec: JobSpec) -> str:
        """What ``run`` would start, for ``--dry-run``."""
        ...


def progress_update(line: dict[str, Any]) -> JobUpdate:
    """A protocol line of the job as an update."""
    total = max(int(line.get("total") or 1), 1)
    metrics = {"step": float(line.get("step", 0))}
    if line.get("loss") is not None:
        metrics["loss"] = float(line["loss"])
    return JobUpdate(
        "progress", progress=min(float(line.get("step", 0)) / total, 1.0), metrics=metrics
    )


class LocalLauncher:
    """Runs the job as a child process on whatever device this machine has."""

    name = "local"

    def __init__(self, python: str = sys.executable, progress_interval_s: float = 1.0) -> None:
        self.python = python
        self.progress_interval_s = progress_interval_s

    def command(self, spec_file: Path) -> list[str]:
        return [self.python, "-m", JOB_MODULE, "--spec", str(spec_file)]

    def describe(self, spec: JobSpec) -> str:
        spec_file = spec.output_dir / "spec.json"
        return (
            f"# local DPO job {spec.job_id}: {spec.model} on {spec.dataset_version}\n"
            f"{' '.join(self.command(spec_file))}\n"
            f"# spec.json:\n{json.dumps(spec.payload(), indent=2)}\n"
        )

    async def run(self, spec: JobSpec, on_update: OnUpdate) -> JobUpdate:
        spec.output_dir.mkdir(parents=True, exist_ok=True)
        spec_file = spec.output_dir / "spec.json"
        spec_file.write_text(json.dumps(spec.payload(), indent=2))
        log_file = spec.output_dir / "job.log"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
        with log_file.open("wb") as stderr:
            proc = await asyncio.create_subprocess_exec(
                *self.command(spec_file), stdout=asyncio.subprocess.PIPE, stderr=stderr, env=env
            )
            await on_update(JobUpdate("started", progress=0.0, message=f"pid {proc.pid}"))
            try:
                final = await self._follow(proc, on_update)
            except asyncio.CancelledError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
                raise
        code = await proc.wait()
        if final is None or final.stage != "succeeded" or code != 0:
            tail = log_file.read_text(errors="replace").strip().splitlines()[-5:]
            reason = final.message if final is not None and final.message else "; ".join(tail)
            return JobUpdate("failed", message=f"job exited with code {code}: {reason}"[:4000])
        return final

    async def _follow(
        self, proc: asyncio.subprocess.Process, on_update: OnUpdate
    ) -> JobUpdate | None:
        assert proc.stdout is not None
        last_sent = 0.0
        final: JobUpdate | None = None
        async for raw in proc.stdout:
            try:
                line = json.loads(raw)
            except ValueError:
                continue  # not a protocol line
            kind = line.get("type")
            if kind == "progress":
                update = progress_update(line)
                # Throttled: a long job logs every step, the topic needs no such detail.
                now = time.monotonic()
                if now - last_sent >= self.progress_interval_s or update.progress == 1.0:
                    last_sent = now
                    await on_update(update)
            elif kind == "done":
                final = JobUpdate("succeeded", progress=1.0, message="training finished")
            elif kind == "failed":
                final = JobUpdate("failed", message=str(line.get("message", "")))
        return final
