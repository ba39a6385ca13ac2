"""Model versions as ClickHouse holds them (the processor sinks the retrain topic there).

The CLI reads ``model_versions`` through the store port; while ``llmloop up``
owns the embedded store, the query goes through it (as ``llmloop query`` does).
Promotion is an event, not a write: only the processor writes ClickHouse.
"""

from __future__ import annotations

from typing import Any

from llmloop.cliutil import CliError, publish_for_cli, query_json
from llmloop.events import GateResult, RetrainJobUpdated
from llmloop.settings import Settings

_COLUMNS = (
    "project_id, model, version, job_id, base_model, launcher, artifact_uri, dataset_version, "
    "metrics, gate_passed, gate_reasons, status, registered_at, updated_at"
)


def fetch_versions(settings: Settings, *, model: str | None = None) -> list[dict[str, Any]]:
    """Every registered version (newest first), optionally of one base model."""
    where = "WHERE model = {model:String}" if model else ""
    return query_json(
        settings,
        f"SELECT {_COLUMNS} FROM model_versions FINAL {where} ORDER BY registered_at DESC",
        {"model": model} if model else {},
    )


def fetch_version(settings: Settings, version: str) -> dict[str, Any]:
    """One version by id, or a one-line error that lists what exists."""
    rows = query_json(
        settings,
        f"SELECT {_COLUMNS} FROM model_versions FINAL WHERE version = {{v:String}}",
        {"v": version},
    )
    if not rows:
        known = [r["version"] for r in fetch_versions(settings)][:5]
        hint = f"; recent versions: {', '.join(known)}" if known else "; none are registered yet"
        raise CliError(f"no model version {version!r}{hint}")
    return rows[0]


def promotion_event(row: dict[str, Any], *, forced: bool) -> RetrainJobUpdated:
    """``model_promoted`` repeating the version's lineage, so its stored row stays whole."""
    return RetrainJobUpdated(
        stage="model_promoted",
        job_id=row["job_id"] or row["version"],
        project_id=row["project_id"] or None,
        model=row["model"],
        model_version=row["version"],
        dataset_version=row["dataset_version"] or None,
        base_model=row.get("base_model") or None,
        launcher=row.get("launcher") or None,
        artifact_uri=row.get("artifact_uri") or None,
        metrics={k: float(v) for k, v in row["metrics"].items()},
        gate=GateResult(passed=bool(row["gate_passed"]), reasons=list(row["gate_reasons"])),
        message="promoted by hand" + (" despite a failed gate (--force)" if forced else ""),
    )


async def promote(settings: Settings, row: dict[str, Any], *, forced: bool) -> None:
    from llmloop.topics import RETRAIN

    await publish_for_cli(settings, RETRAIN, [promotion_event(row, forced=forced)])
