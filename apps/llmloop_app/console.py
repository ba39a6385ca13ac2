"""The console in ``llmloop up``: its routes on the API's app, its ports bound here.

The console service knows only its ports (``llmloop_console.ports``); this
composition module binds them to the services of this process: judgments go through ingest's own
``Publisher`` (the validation, redaction and acknowledged publish that
``POST /v1/events`` runs), dead letters are replayed in alerting's journal,
and preference pairs, datasets and promotion come from retraining.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI

from llmloop.bus import EventBus
from llmloop.settings import Settings
from llmloop.store import Store
from llmloop_console.ports import SinkError
from llmloop_ingest.metrics import IngestMetrics
from llmloop_ingest.publisher import NotAcknowledged, Publisher
from llmloop_ingest.settings import IngestSettings


class IngestSink:
    """Feedback from the console, through the ingest path of this process."""

    def __init__(self, bus: EventBus, settings: IngestSettings, metrics: IngestMetrics) -> None:
        self.publisher = Publisher(bus, settings, metrics)

    async def submit(self, project: str, events: list[dict[str, Any]]) -> dict[str, Any]:
        checked = self.publisher.check(events, project)
        if checked.errors:
            raise SinkError("; ".join(f"{e['field']}: {e['message']}" for e in checked.errors))
        try:
            await self.publisher.publish(checked.events)
        except NotAcknowledged as exc:
            raise SinkError("the event bus did not acknowledge; try again") from exc
        return {
            "accepted": len(checked.events),
            "event_ids": [str(e.event_id) for e in checked.events],
        }


class LocalOperations:
    """Alerting's and retraining's state under this data dir."""

    def __init__(self, settings: Settings, bus: EventBus) -> None:
        from llmloop_alerting.settings import AlertingSettings
        from llmloop_retraining.config import RetrainingSettings

        self.bus = bus
        self.alerting = AlertingSettings(**settings.model_dump())
        self.retraining = RetrainingSettings(**settings.model_dump())

    def replay_dead_letters(self, project: str, notification_ids: list[str]) -> int:
        from llmloop_alerting.journal import Journal

        path = Path(self.alerting.state_path)
        if not path.exists():
            return 0
        journal = Journal(path)
        journal.open_sync()
        try:
            mine = [
                n.id
                for n in journal.dead_letters_sync()
                if n.alert.project_id == project and n.id in notification_ids
            ]
            return len(journal.replay_sync(mine)) if mine else 0
        finally:
            journal.close_sync()

    def _pairs_db(self) -> sqlite3.Connection | None:
        path = self.retraining.state_path
        if not path.exists():
            return None
        # Read-only: the retraining service owns this file (WAL lets us read beside it).
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)

    def preference_pairs(self, projects: list[str], limit: int) -> list[dict[str, Any]]:
        db = self._pairs_db()
        if db is None:
            return []
        marks = ",".join("?" * len(projects))
        try:
            rows = db.execute(
                f"SELECT seq, pair_id, data FROM pairs WHERE project_id IN ({marks}) "
                "ORDER BY seq DESC LIMIT ?",
                (*projects, limit),
            ).fetchall()
        finally:
            db.close()
        return [{"seq": s, "pair_id": p, **orjson.loads(d)} for s, p, d in rows]

    def pair_counts(self, projects: list[str]) -> list[dict[str, Any]]:
        db = self._pairs_db()
        if db is None:
            return []
        marks = ",".join("?" * len(projects))
        try:
            rows = db.execute(
                f"SELECT project_id, model, source, COUNT(*) FROM pairs WHERE project_id IN "
                f"({marks}) GROUP BY project_id, model, source ORDER BY 1, 2, 3",
                tuple(projects),
            ).fetchall()
        finally:
            db.close()
        return [{"project": p, "model": m, "source": s, "pairs": n} for p, m, s, n in rows]

    def datasets(self) -> list[dict[str, Any]]:
        """Each cut version's counts, filters and a sample of its training pairs."""
        from llmloop_retraining.datasets import versions

        out = []
        for v in versions(self.retraining.datasets_dir):
            m = v.manifest
            try:
                sample = v.rows("train")[:3]
            except OSError:
                sample = []
            out.append(
                {
                    "model": v.model,
                    "version": v.version,
                    "created_at": m.get("created_at"),
                    "counts": m.get("counts", {}),
                    "filters": m.get("filters", []),
                    "eval_fraction": m.get("eval_fraction"),
                    "sample": sample,
                }
            )
        return out

    async def promote(self, row: dict[str, Any], *, forced: bool) -> None:
        from llmloop.bus import Record
        from llmloop.events import encode_event
        from llmloop.topics import RETRAIN
        from llmloop_retraining.registry import promotion_event

        event = promotion_event(row, forced=forced)
        await self.bus.publish(RETRAIN, [Record(event.key(), encode_event(event))])


def add_console(app: FastAPI, settings: Settings, store: Store, bus: EventBus) -> str:
    """The console at ``/`` beside the API; returns the local user's sign-in token.

    Its judgments go through this process's ingest path, with the ingest app's
    settings and metrics, onto the same bus as the SDK's events.
    """
    from llmloop_alerting.rules import load_rules
    from llmloop_console.app import install
    from llmloop_console.tokens import ConsoleTokens, ensure_local_token, tokens_path

    rules = load_rules(env={}).rules
    install(
        app,
        store,
        ConsoleTokens(tokens_path(settings.data_dir)),
        thresholds={rule.name: rule.threshold for rule in rules},
        rule_metrics={rule.name: rule.metric for rule in rules},
        sink=IngestSink(bus, app.state.settings, app.state.metrics),
        operations=LocalOperations(settings, bus),
    )
    return ensure_local_token(settings.data_dir)
