"""The retraining service: feedback joined to completions, policies checked, jobs launched.

Consumes ``llmloop.events.v1`` (completions and feedback, for the join) and
``llmloop.alerts.v1`` (alerts whose firing may start a job), and publishes the
job and model-version lifecycle on ``llmloop.retrain.v1``, which the processor
stores. Its own state (the join, the job ledger) is a SQLite file under the
data dir; offsets are committed after the state, so a restart loses nothing
and double-counts nothing. One job runs at a time: a GPU (or this laptop's CPU)
is the scarce thing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from llmloop import topics
from llmloop.bus import EventBus, Message, Record, consume
from llmloop.consumer import decode
from llmloop.events import AlertStateChanged, AnyEvent, RetrainJobUpdated, encode_event
from llmloop.store import Store
from llmloop_retraining import pairs as P
from llmloop_retraining.config import RetrainingSettings
from llmloop_retraining.join import PairJoin
from llmloop_retraining.launcher import Launcher, LocalLauncher
from llmloop_retraining.ledger import JobLedger
from llmloop_retraining.lookup import feedback_and_named, stored_completions
from llmloop_retraining.pipeline import Outcome, run_retraining
from llmloop_retraining.policy import (
    ModelState,
    PolicyBook,
    TriggerPolicy,
    alert_matches,
    decide,
)

log = logging.getLogger(__name__)

GROUP = "llmloop-retraining"
TOPICS = (topics.EVENTS, topics.ALERTS)
RESOLVE_S = 2.0  # how often feedback waiting for its completion looks in the store again


def make_launcher(kind: str, **options: Any) -> Launcher:
    """The launcher named ``kind``: ``local`` (a subprocess) or ``kubernetes`` (a GPU Job).

    Chosen here, by the service, so the port (``launcher``) knows none of its adapters."""
    if kind == "local":
        return LocalLauncher()
    if kind == "kubernetes":
        from llmloop_retraining.kube import KubernetesLauncher

        return KubernetesLauncher(**options)
    raise ValueError(f"unknown launcher {kind!r}; use local or kubernetes")


def launcher_for(settings: RetrainingSettings, policy: TriggerPolicy) -> Launcher:
    """The launcher a policy names, configured from the settings."""
    if (policy.launcher or settings.retrain_launcher) == "kubernetes":
        return make_launcher(
            "kubernetes",
            image=settings.retrain_job_image,
            namespace=settings.retrain_namespace,
            gpus=settings.retrain_job_gpus,
            template=settings.retrain_job_template,
            datasets_root=settings.datasets_dir,
            output_root=settings.models_dir,
        )
    return make_launcher("local")


def open_join(settings: RetrainingSettings) -> PairJoin:
    """The join on its state file."""
    return PairJoin(
        settings.state_path,
        near_duplicates=settings.retrain_near_duplicates,
        near_duplicate_cosine=settings.retrain_near_duplicate_cosine,
        toxicity_threshold=settings.retrain_toxicity_threshold,
    )


def publisher(bus: EventBus):  # type: ignore[no-untyped-def]
    async def publish(event: RetrainJobUpdated) -> None:
        await bus.publish(topics.RETRAIN, [Record(key=event.key(), value=encode_event(event))])

    return publish


class Retrainer:
    """The consumer, the policy checks and the job runner.

    With a ``store`` (what ``llmloop up`` and ``llmloop retraining`` hand over) the join
    keeps no copy of the completions and scores nothing the processor scored: a feedback
    event reads the completions it names, enriched, from the store (``lookup.py``), and
    feedback whose completion is not stored and enriched yet is looked up again every
    ``RESOLVE_S``. Without one (a bus and nothing else: tests of the join's rules) the
    join remembers every completion itself and the filter scores the chosen answers.
    """

    def __init__(
        self,
        bus: EventBus,
        settings: RetrainingSettings,
        *,
        store: Store | None = None,
        policies: PolicyBook | None = None,
        batch_size: int = 500,
        max_wait_s: float = 0.25,
    ) -> None:
        self.bus = bus
        self.settings = settings
        self.store = store
        self.policies = policies or PolicyBook.load(settings.retrain_policy_file)
        self.batch_size = batch_size
        self.max_wait_s = max_wait_s
        self.join = open_join(settings)
        self.ledger = JobLedger(settings.state_path)
        self.publish = publisher(bus)
        self.outcomes: list[Outcome] = []
        self._job: asyncio.Task[None] | None = None
        self._queue: list[tuple[str, str]] = []
        # Alerts firing now, by fingerprint, and the models a job has answered each for: a
        # listed alert that fires before a model has enough pairs starts its job once the
        # pairs are there, if it is still firing (``check``).
        self._firing: dict[str, AlertStateChanged] = {}
        self._answered: set[tuple[str, str]] = set()
        # The join's connection is used from a worker thread (apply) and from the loop
        # (policy checks, the timer): one at a time. A running job reads through its own.
        self._lock = asyncio.Lock()

    # --- consuming ------------------------------------------------------------------------

    async def handle(self, batch: list[Message]) -> None:
        events: list[AnyEvent] = []
        alerts: list[AlertStateChanged] = []
        for message in batch:
            try:
                event = decode(message)  # ingest's event when published in this process
            except ValidationError:
                continue  # the processor dead-letters what nobody can read
            if isinstance(event, AlertStateChanged):
                alerts.append(event)
            else:
                events.append(event)
        async with self._lock:
            if self.store is None:
                await self._join(events)
            else:
                feedback, known = await asyncio.to_thread(feedback_and_named, events, self.store)
                await self._join(feedback, list(known.values()))
            for alert in alerts:
                self.note_alert(alert)
            if alerts:
                for model in self.join.models():
                    self.check(model)

    def note_alert(self, alert: AlertStateChanged) -> None:
        """Remember a firing alert until it resolves (``check`` reads them)."""
        if alert.status == "firing":
            self._firing[alert.fingerprint] = alert
        else:
            self._firing.pop(alert.fingerprint, None)
            self._answered = {a for a in self._answered if a[0] != alert.fingerprint}

    async def _join(self, events: Sequence[Any], completions: Sequence[P.Completion] = ()) -> None:
        """Apply a batch to the join (under the lock) and check the models that got pairs."""
        result = await asyncio.to_thread(self.join.apply, events, completions)
        if result.pairs or result.drops:
            log.info("join: %d new pairs, dropped %s", len(result.pairs), dict(result.drops) or 0)
        for model in sorted({p.model for p in result.pairs}):
            self.check(model)

    async def _resolver(self, stop: asyncio.Event) -> None:
        """Feedback that came before its completion was stored: look it up again."""
        assert self.store is not None
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RESOLVE_S)
            async with self._lock:
                waiting = self.join.waiting_for(1000)
                if waiting:
                    found = await asyncio.to_thread(stored_completions, self.store, waiting)
                    if found:
                        await self._join([], list(found.values()))

    # --- policies and jobs --------------------------------------------------------------

    def state(self, model: str) -> ModelState:
        last = self.ledger.last(model)
        after = last.pairs_seq if last else 0
        return ModelState(
            new_pairs=self.join.count(model, after_seq=after),
            total_pairs=self.join.count(model),
            last_job_at=last.started_at if last else None,
            job_running=self.ledger.running(model) or any(m == model for m, _ in self._queue),
        )

    def check(self, model: str) -> bool:
        """Start (or queue) a job for ``model`` if its policy says so; returns whether it did.
        A firing alert of the policy's rules that no job for the model answered yet counts,
        however long ago it fired (the model may have had too few pairs, or a cooldown)."""
        policy = self.policies.for_model(model)
        alert = next(
            (
                a
                for fingerprint, a in self._firing.items()
                if (fingerprint, model) not in self._answered and alert_matches(policy, a, model)
            ),
            None,
        )
        decision = decide(policy, self.state(model), datetime.now(UTC), alert=alert)
        log.debug("policy for %s: %s", model, decision.reason)
        if decision.start:
            if alert is not None:
                self._answered.add((alert.fingerprint, model))
            log.info("retraining %s: %s", model, decision.reason)
            self._queue.append((model, decision.reason))
            self._next()
        return decision.start

    def _next(self) -> None:
        if self._queue and (self._job is None or self._job.done()):
            model, reason = self._queue.pop(0)
            self._job = asyncio.create_task(self._run(model, reason), name=f"retrain-{model}")

    async def _run(self, model: str, reason: str) -> None:
        policy = self.policies.for_model(model)
        reader = PairJoin(self.settings.state_path)
        try:
            outcome = await run_retraining(
                settings=self.settings,
                join=reader,
                ledger=self.ledger,
                policy=policy,
                launcher=launcher_for(self.settings, policy),
                model=model,
                reason=reason,
                publish=self.publish,
            )
            self.outcomes.append(outcome)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("retraining %s failed", model)
        finally:
            reader.close()
            self._next()

    async def _timer(self, stop: asyncio.Event) -> None:
        """Time-based policies (max interval) need a clock, not just events."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.retrain_check_interval_s)
            if not stop.is_set():
                async with self._lock:
                    for model in self.join.models():
                        self.check(model)

    async def run(self, stop: asyncio.Event) -> None:
        for job_id in self.ledger.interrupted():
            log.warning("job %s was running when the service stopped; marked failed", job_id)
        consumer = self.bus.consumer(TOPICS, GROUP)
        await consumer.start()
        log.info(
            "retraining consuming %s as group %s; state in %s",
            ", ".join(TOPICS),
            GROUP,
            self.settings.state_path,
        )
        timers = [asyncio.create_task(self._timer(stop), name="retrain-timer")]
        if self.store is not None:
            timers.append(asyncio.create_task(self._resolver(stop), name="retrain-resolver"))
        try:
            await consume(
                consumer,
                self.handle,
                batch_size=self.batch_size,
                max_wait_s=self.max_wait_s,
                stop=stop,
            )
        finally:
            for timer in timers:
                timer.cancel()
            if self._job is not None and not self._job.done():
                log.warning("stopping: the running DPO job is interrupted")
                self._job.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._job
            await consumer.close()
            self.join.close()
            self.ledger.close()

    async def wait_for_job(self) -> None:
        """Wait until no job is running or queued (tests, and a clean shutdown)."""
        while (self._job is not None and not self._job.done()) or self._queue:
            if self._job is not None:
                await asyncio.wait({self._job})
            else:
                await asyncio.sleep(0.05)
