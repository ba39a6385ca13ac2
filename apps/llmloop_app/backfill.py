"""``llmloop demo``: hours of demo history, run through the real services into the store.

So that every dashboard panel shows something a minute after install. The demo
traffic (two models, two prompt versions, locales and plans, feedback) is laid
out over the past hours, with a drift episode in its last part and a bias gap
on one locale, and replayed on an in-memory bus through the services
themselves: the processor's sink and enricher, its statistics for each past
window, alerting with webhooks to a local receiver (one that fails once, one
that refuses: retries and a dead letter), and retraining, which fine-tunes a
tiny stand-in model with DPO on the pairs users' feedback made. Like ``cli``
and ``embedded``, this module is a composition root: it may use any service.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from llmloop import topics
from llmloop.bus import EventBus, Record, open_bus
from llmloop.events import AnyEvent, encode_event, ingest_adapter
from llmloop.store import Store
from llmloop_app.demo import DemoTraffic

log = logging.getLogger(__name__)

WINDOW = timedelta(minutes=30)
# The demo's own tiny DPO run: enough steps to show a job's life, seconds on a CPU.
TRAIN = {"max_steps": 12, "batch_size": 8, "learning_rate": 5e-4, "beta": 0.1, "seed": 0}


@dataclass
class BackfillReport:
    start: datetime
    end: datetime
    rows: dict[str, int] = field(default_factory=dict)


class SimulatedClock:
    """Time that moves forward a fixed step per reading, from ``start``."""

    def __init__(self, start: datetime, step: timedelta) -> None:
        self.now, self.step = start, step

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now


def history(
    hours: float, events_per_minute: int, project: str, seed: int
) -> tuple[datetime, datetime, list[AnyEvent]]:
    """Demo traffic over the ``hours`` before now; the last 40% drifts."""
    end = datetime.now(UTC)
    start = end - timedelta(hours=hours)
    total = int(hours * 60 * events_per_minute)
    clock = SimulatedClock(start, timedelta(minutes=1) / events_per_minute)
    traffic = DemoTraffic(seed=seed, drift_after=int(total * 0.6 * 0.7), clock=clock)
    events = [
        ingest_adapter.validate_python({**raw, "project_id": project})
        for raw in traffic.batch(total)
    ]
    return start, end, events


async def until(condition: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            raise TimeoutError(f"demo: {what} did not happen within {timeout:.0f} s")
        await asyncio.sleep(0.2)


def count(store: Store, sql: str) -> int:
    return int(store.query(sql).scalar() or 0)


def demo_rules(receiver_url: Callable[[str], str]) -> dict[str, Any]:
    """The shipped rules, acting at once (replayed history has no wall-clock 'for'),
    sending to a local receiver that fails once and to one that refuses."""
    from llmloop_alerting.rules import default_rules_path

    rules = yaml.safe_load(default_rules_path().read_text())
    rules["receivers"] = [
        {"name": "webhook", "type": "webhook", "url": receiver_url("/webhook")},
        {"name": "ops-webhook", "type": "webhook", "url": receiver_url("/ops"), "max_attempts": 2},
    ]
    for rule in rules["rules"]:
        rule["for"] = "0s"
        rule["receivers"] = ["webhook", "ops-webhook"]
    return rules


async def replay(store: Store, events: list[AnyEvent], start: datetime, end: datetime) -> None:
    """Run the history through the services on an in-memory bus until it settled."""
    from llmloop.testing.webhooks import WebhookReceiver
    from llmloop_alerting.service import AlertingService
    from llmloop_alerting.settings import AlertingSettings
    from llmloop_processor.progress import caught_up
    from llmloop_processor.runtime import enrichment_services
    from llmloop_processor.settings import ProcessorSettings
    from llmloop_processor.sink import Sink
    from llmloop_processor.stats import StatsRunner
    from llmloop_retraining.config import RetrainingSettings
    from llmloop_retraining.policy import PolicyBook
    from llmloop_retraining.service import Retrainer

    work = Path(tempfile.mkdtemp(prefix="llmloop-demo-"))
    bus: EventBus = open_bus("memory://")
    await bus.start()
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    try:
        await bus.publish(
            topics.EVENTS, [Record(e.key(), encode_event(e), event=e) for e in events]
        )
        # A short history needs a short reference: the first 150 completions of each
        # (model, prompt version) instead of 1,000.
        # A history arrives at once: every completion is embedded (fixed rate 1), not
        # a sample sized for live traffic.
        ps = ProcessorSettings(
            data_dir=work,
            processor_embed_in_child=False,
            processor_reference_size=150,
            processor_embed_adaptive=False,
        )
        completions = sum(e.type == "completion" for e in events)
        tasks += [
            asyncio.create_task(Sink(bus, store, max_wait_s=0.1).run(stop)),
            *(
                asyncio.create_task(service.run(stop))
                for service in enrichment_services(ps, bus, store).values()
            ),
        ]
        await until(
            lambda: (
                count(store, "SELECT count() FROM completion_enrichments") >= completions
                and caught_up(store, start - timedelta(days=1), end + timedelta(days=1))
            ),
            600,
            "enrichment of the history",
        )
        stats = StatsRunner(store, bus, ps)
        window_end = start + WINDOW
        while window_end <= end:
            metrics = await asyncio.to_thread(stats.compute, window_end - WINDOW, window_end)
            await bus.publish(topics.METRICS, [Record(m.key(), encode_event(m)) for m in metrics])
            window_end += WINDOW

        async with WebhookReceiver() as hook:
            hook.script("/webhook", [503])  # fails once, then delivered on retry
            hook.script("/ops", [400] * 1000)  # refuses: dead-lettered
            rules_path = work / "rules.yaml"
            rules_path.write_text(yaml.safe_dump(demo_rules(hook.url)))
            alerting = AlertingService(
                bus,
                AlertingSettings(
                    data_dir=work,
                    alerting_rules=rules_path,
                    alerting_backoff_base_s=0.05,
                    alerting_tick_s=0.1,
                    alerting_secret="demo",
                ),
            )
            retrainer = Retrainer(
                bus,
                RetrainingSettings(data_dir=work),
                store=store,
                policies=PolicyBook.model_validate(
                    {"default": {"min_new_pairs": 20, "base_model": "tiny:0", "train": TRAIN}}
                ),
                max_wait_s=0.05,
            )
            tasks += [
                asyncio.create_task(alerting.run(stop)),
                asyncio.create_task(retrainer.run(stop)),
            ]
            await until(
                lambda: count(
                    store,
                    "SELECT countIf(outcome = 'delivered') > 0 AND countIf(outcome = "
                    "'dead_lettered') > 0 FROM notification_attempts",
                ),
                120,
                "a webhook delivery and a dead letter",
            )
            await until(
                lambda: count(store, "SELECT count() FROM model_versions"),
                300,
                "a fine-tuned model version",
            )
            await asyncio.sleep(0.5)  # the sink writes the last events
    finally:
        stop.set()
        names = ["processor", "enricher", "alerting", "retraining"]
        _, late = await asyncio.wait(tasks, timeout=30)
        for task in late:
            log.warning("demo: %s did not stop within 30 s", names[tasks.index(task)])
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await bus.close()


def backfill(
    store: Store,
    *,
    hours: float = 6.0,
    events_per_minute: int = 40,
    project: str = "demo",
    seed: int = 0,
) -> BackfillReport:
    """Write ``hours`` of demo history ending now, through every service."""
    start, end, events = history(hours, events_per_minute, project, seed)
    asyncio.run(replay(store, events, start, end))
    tables = [
        "completions",
        "feedback",
        "completion_enrichments",
        "metrics",
        "alerts",
        "notification_attempts",
        "retrain_jobs",
        "model_versions",
    ]
    report = BackfillReport(
        start, end, {t: count(store, f"SELECT count() FROM {t}") for t in tables}
    )
    log.info("demo history %s -> %s: %s", start, end, report.rows)
    return report
