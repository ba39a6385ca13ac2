"""One retraining run, start to end: pairs -> dataset version -> DPO job -> gate -> model version.

Shared by the service (policy-triggered) and ``llmloop retrain`` (by hand), so
both publish the same retrain events: ``requested``, ``started``, ``progress``,
``succeeded`` or ``failed``, then ``model_registered`` with its metrics, gate
verdict and lineage (base model, dataset version, job, launcher, artifact).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llmloop.events import GateResult, RetrainJobUpdated
from llmloop_retraining import benchmarks, datasets
from llmloop_retraining.config import RetrainingSettings
from llmloop_retraining.evaluate import PairLogps, evaluate
from llmloop_retraining.join import PairJoin
from llmloop_retraining.launcher import JobSpec, JobUpdate, Launcher
from llmloop_retraining.ledger import JobLedger
from llmloop_retraining.policy import TriggerPolicy

log = logging.getLogger(__name__)

Publish = Callable[[RetrainJobUpdated], Awaitable[None]]


@dataclass
class Outcome:
    """How a run ended."""

    job_id: str
    stage: str
    dataset: datasets.DatasetVersion
    model_version: str | None = None
    gate: GateResult | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    message: str | None = None


def new_job_id() -> str:
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def _project(pairs: list[Any]) -> str | None:
    """The project the pairs come from, when there is exactly one."""
    projects = Counter(p.project_id for p in pairs if p.project_id)
    return next(iter(projects)) if len(projects) == 1 else None


def _numbers(data: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in data.items() if isinstance(v, int | float) and k}


def generation_metrics(output_dir: Path) -> tuple[dict[str, float], list[str]]:
    """ROUGE-L / BLEU of the job's answers (``eval_generations.json``), and notes for the verdict.

    Held-out prompts give the unprefixed metrics, benchmark NAME gives ``bench.NAME.*``.
    A job that generated nothing (``eval_generate: false``, or an older job) gives none.
    """
    from llmloop_retraining.generation import score_generations

    path = output_dir / "eval_generations.json"
    if not path.exists():
        return {}, []
    metrics: dict[str, float] = {}
    notes: list[str] = []
    for name, s in json.loads(path.read_text()).items():
        prefix = "" if name == "heldout" else f"{name}."
        metrics.update(score_generations(s["references"], s["base"], s["policy"], prefix=prefix))
        if name != "heldout":
            notes.append(
                f"{name} version {s['version']}: {len(s['references'])} prompts answered "
                f"(greedy, <= {s['max_new_tokens']} tokens)"
            )
    return metrics, notes


def cut_dataset(
    settings: RetrainingSettings, join: PairJoin, model: str, *, write: bool = True
) -> tuple[datasets.DatasetVersion, int]:
    """The dataset version of every pair of ``model`` so far, and the last pair's sequence."""
    rows = join.pairs(model)
    version = datasets.cut(
        settings.datasets_dir,
        model,
        [p for _, p in rows],
        eval_fraction=settings.retrain_eval_fraction,
        drops=join.drops(model),
        write=write,
    )
    return version, (rows[-1][0] if rows else 0)


async def run_retraining(
    *,
    settings: RetrainingSettings,
    join: PairJoin,
    ledger: JobLedger,
    policy: TriggerPolicy,
    launcher: Launcher,
    model: str,
    reason: str,
    publish: Publish,
    on_update: Callable[[JobUpdate], Awaitable[None]] | None = None,
) -> Outcome:
    """Cut a dataset, run the job, gate the result and register the model version."""
    dataset, seq = cut_dataset(settings, join, model)
    job_id = new_job_id()
    project = _project([p for _, p in join.pairs(model)])
    base_model = policy.base_model or model
    common: dict[str, Any] = {
        "job_id": job_id,
        "model": model,
        "project_id": project,
        "dataset_version": dataset.version,
        "base_model": base_model,
        "launcher": launcher.name,
    }
    ledger.start(job_id, model, dataset.version, seq, reason)
    await publish(RetrainJobUpdated(stage="requested", message=reason, **common))
    spec = JobSpec(
        job_id=job_id,
        model=model,
        base_model=base_model,
        dataset_version=dataset.version,
        dataset_dir=dataset.path,
        output_dir=settings.models_dir / job_id,
        train=dict(policy.train),
        benchmarks=tuple(b.job_entry() for b in benchmarks.for_model(settings.datasets_dir, model)),
    )

    async def forward(update: JobUpdate) -> None:
        await publish(
            RetrainJobUpdated(
                stage=update.stage,
                progress=update.progress,
                metrics=update.metrics,
                message=update.message,
                **common,
            )
        )
        if on_update is not None:
            await on_update(update)

    try:
        final = await launcher.run(spec, forward)
    except BaseException:
        ledger.finish(job_id, "failed")
        raise
    if final.stage != "succeeded":
        ledger.finish(job_id, "failed")
        await publish(RetrainJobUpdated(stage="failed", message=final.message, **common))
        return Outcome(job_id, "failed", dataset, message=final.message)
    try:
        train_metrics = json.loads((spec.output_dir / "metrics.json").read_text())
        logps = json.loads((spec.output_dir / "eval_logps.json").read_text())
        generated, notes = generation_metrics(spec.output_dir)
        result = evaluate(
            PairLogps(**logps["policy"]),
            PairLogps(**logps["base"]),
            beta=float(logps["beta"]),
            config=policy.gate,
            generation=generated,
            notes=notes,
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        message = f"the job finished but its output in {spec.output_dir} is unreadable: {exc}"
        ledger.finish(job_id, "failed")
        await publish(RetrainJobUpdated(stage="failed", message=message, **common))
        return Outcome(job_id, "failed", dataset, message=message)
    metrics = {**_numbers(train_metrics), **result.metrics}
    version = f"{datasets.slug(model)}-dpo-{job_id}"
    artifact = (spec.output_dir / "model").resolve().as_uri()
    await publish(
        RetrainJobUpdated(
            stage="succeeded", progress=1.0, metrics=metrics, artifact_uri=artifact, **common
        )
    )
    verdict = "passed" if result.gate.passed else "failed"
    await publish(
        RetrainJobUpdated(
            stage="model_registered",
            model_version=version,
            metrics=metrics,
            gate=result.gate,
            artifact_uri=artifact,
            message=f"gate {verdict}",
            **common,
        )
    )
    ledger.finish(job_id, "succeeded", version)
    log.info(
        "model version %s registered; gate %s: %s", version, verdict, "; ".join(result.gate.reasons)
    )
    return Outcome(job_id, "succeeded", dataset, version, result.gate, metrics)
