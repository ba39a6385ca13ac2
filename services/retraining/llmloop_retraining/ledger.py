"""The job ledger: which jobs ran for which model, on how many pairs, and how they ended.

Kept beside the join's state (same SQLite file, its own table), so the policy's
"new pairs since the last job" and cooldown survive restarts, and a ``llmloop
retrain`` run by hand counts like one the service started.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from llmloop.localdb import open_db

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY, model TEXT, dataset_version TEXT, pairs_seq INTEGER,
    reason TEXT, stage TEXT, model_version TEXT, started_at TEXT, finished_at TEXT);
CREATE INDEX IF NOT EXISTS jobs_model ON jobs (model, started_at);
"""


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    model: str
    dataset_version: str
    pairs_seq: int
    reason: str
    stage: str
    model_version: str | None
    started_at: datetime
    finished_at: datetime | None


class JobLedger:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = open_db(path, [_SCHEMA], what="the retraining job ledger", owner="ledger")

    def close(self) -> None:
        self.db.close()

    def start(
        self, job_id: str, model: str, dataset_version: str, pairs_seq: int, reason: str
    ) -> None:
        self.db.execute(
            "INSERT INTO jobs VALUES (?, ?, ?, ?, ?, 'running', NULL, ?, NULL)",
            (job_id, model, dataset_version, pairs_seq, reason, datetime.now(UTC).isoformat()),
        )

    def finish(self, job_id: str, stage: str, model_version: str | None = None) -> None:
        self.db.execute(
            "UPDATE jobs SET stage = ?, model_version = ?, finished_at = ? WHERE job_id = ?",
            (stage, model_version, datetime.now(UTC).isoformat(), job_id),
        )

    def interrupted(self) -> list[str]:
        """Jobs left 'running' by a process that died; marks them failed, returns their ids."""
        ids = [r[0] for r in self.db.execute("SELECT job_id FROM jobs WHERE stage = 'running'")]
        for job_id in ids:
            self.finish(job_id, "failed")
        return ids

    def last(self, model: str) -> JobRecord | None:
        row = self.db.execute(
            "SELECT * FROM jobs WHERE model = ? ORDER BY started_at DESC LIMIT 1", (model,)
        ).fetchone()
        if row is None:
            return None
        return JobRecord(
            row[0],
            row[1],
            row[2],
            int(row[3]),
            row[4],
            row[5],
            row[6],
            datetime.fromisoformat(row[7]),
            datetime.fromisoformat(row[8]) if row[8] else None,
        )

    def running(self, model: str) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM jobs WHERE model = ? AND stage = 'running' LIMIT 1", (model,)
        ).fetchone()
        return row is not None
