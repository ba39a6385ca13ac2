"""The alerting service: metric events in, alert events and signed webhooks out.

Four loops share one asyncio loop: the consumer (metrics topic, evaluates
rules, commits offsets only after the journal has the result), the ticker
(``for`` durations, renotify, no-data, rules-file reload), the deliverer
(webhooks) and the publisher (the journal's bus outbox to the bus).

One replica keeps its state in a SQLite journal on its volume. Two or more
(``alerting_replicated``, Kafka only) split the metrics partitions between them
and log each partition's state on Kafka (``replicated.py``): a rebalance hands a
partition, its fingerprints and their outbox to another replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from llmloop import topics
from llmloop.bus import BusUnavailable, EventBus, Message, Record, consume
from llmloop.consumer import decode
from llmloop.events import AlertStateChanged, MetricComputed, encode_event
from llmloop.urls import redact_url
from llmloop_alerting.journal import Journal, Notification
from llmloop_alerting.rules import RulesError, RuleSet, default_rules_path, load_rules
from llmloop_alerting.settings import AlertingSettings
from llmloop_alerting.state import Action, AlertState, forgettable, new_state, observe, tick
from llmloop_alerting.webhooks import Deliverer, RetryPolicy, notification_id

if TYPE_CHECKING:
    from llmloop_alerting.replicated import ReplicatedJournal

log = logging.getLogger(__name__)

GROUP = "llmloop-alerting"


def _now() -> datetime:
    return datetime.now(UTC)


class AlertingService:
    """Evaluates rules on metric events; state in a SQLite journal, so restarts lose nothing."""

    def __init__(self, bus: EventBus, settings: AlertingSettings, *, group: str = GROUP) -> None:
        self.bus = bus
        self.settings = settings
        self.group = group
        self.rules_path: Path = settings.alerting_rules or default_rules_path()
        self.replicated = settings.alerting_replicated
        self.journal: Journal | ReplicatedJournal
        if self.replicated:
            if not bus.url.startswith("kafka://"):
                raise ValueError(
                    "replicated alerting (LLMLOOP_ALERTING_REPLICATED) needs a kafka:// bus, "
                    f"not {redact_url(bus.url)}"
                )
            from llmloop_alerting.replicated import ReplicatedJournal  # aiokafka: Kafka only

            self.journal = ReplicatedJournal(bus.url, group)
        else:
            self.journal = Journal(settings.state_path)
        # Evaluation (a batch, a tick) and a rebalance's hand-over never interleave.
        self._work = asyncio.Lock()
        self.rules = RuleSet()
        self.states: dict[str, AlertState] = {}
        self._rules_stamp: tuple[int, int] | None = None
        self._publish = asyncio.Event()
        self.deliverer = Deliverer(
            self.journal,
            lambda: self.rules.receivers_by_name,
            settings.signing_secrets(),
            concurrency=settings.alerting_concurrency,
            policy=RetryPolicy(settings.alerting_backoff_base_s, settings.alerting_backoff_max_s),
            external_url=settings.alerting_external_url,
            on_recorded=self._publish.set,
        )
        self.evaluated = 0

    # --- rules -------------------------------------------------------------------------

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = self.rules_path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def load_rules(self) -> None:
        """Load the rules file; raises ``RulesError`` (start-up refuses a bad file)."""
        self._rules_stamp = self._stamp()
        self.rules = load_rules(self.rules_path)
        enabled = [r.name for r in self.rules.receivers if r.enabled]
        log.info(
            "alerting: %d rules from %s; receivers on: %s",
            len(self.rules.rules),
            self.rules_path,
            ", ".join(enabled) or "none (alerts still go on the bus)",
        )

    def _reload_if_changed(self) -> None:
        stamp = self._stamp()
        if stamp is None or stamp == self._rules_stamp:
            return
        try:
            self.load_rules()
        except RulesError as exc:
            self._rules_stamp = stamp  # say it once per change, keep the rules we have
            log.error("rules file changed but is invalid, keeping the previous rules: %s", exc)

    # --- evaluation --------------------------------------------------------------------

    async def handle(self, batch: list[Message]) -> None:
        """Evaluate a batch of metric events; durable in the journal before offsets commit."""
        async with self._work:
            if not self.replicated:
                await self._evaluate(batch, None)
                return
            by_partition: dict[int, list[Message]] = {}
            for message in batch:
                # A partition revoked while the batch was polled: its new owner reads
                # these again from the committed offset.
                if self.journal.owns(message.partition):
                    by_partition.setdefault(message.partition, []).append(message)
            for partition, messages in sorted(by_partition.items()):
                started = time.time()
                await self._evaluate(messages, partition)
                # The hand-over test reads these lines: who evaluated which partition when.
                log.info(
                    "alerting: evaluated partition=%d metrics=%d from=%.6f to=%.6f",
                    partition,
                    len(messages),
                    started,
                    time.time(),
                )

    async def _evaluate(self, batch: list[Message], partition: int | None) -> None:
        metrics: dict[str, MetricComputed] = {}
        for message in batch:
            try:
                event = decode(message)  # the statistics' event when published in this process
            except ValidationError:
                continue  # the processor dead-letters unreadable messages of this topic
            if isinstance(event, MetricComputed):
                metrics[str(event.event_id)] = event
        if not metrics:
            return
        unseen = await self.journal.unseen(list(metrics))
        now = _now()
        changed: dict[str, AlertState] = {}
        actions: list[Action] = []
        for event_id, metric in metrics.items():
            if event_id not in unseen:
                continue  # redelivered after a crash: already evaluated and journaled
            for rule in self.rules.rules_for(metric.name):
                if not rule.applies_to(metric):
                    continue
                fingerprint = rule.fingerprint(metric.project_id, rule.alert_labels(metric))
                state = self.states.get(fingerprint) or new_state(rule, metric)
                state, done = observe(rule, state, metric, now)
                changed[fingerprint] = self.states[fingerprint] = state
                actions.extend(done)
        self.evaluated += len(unseen)
        await self._commit(changed.values(), [], actions, processed=unseen, partition=partition)

    async def tick(self) -> None:
        """Time-driven transitions, for every known alert."""
        async with self._work:
            await self._tick()

    async def _tick(self) -> None:
        self._reload_if_changed()
        now = _now()
        by_name = {r.name: r for r in self.rules.rules}
        changed: list[AlertState] = []
        forget: list[str] = []
        actions: list[Action] = []
        for fingerprint, state in list(self.states.items()):
            rule = by_name.get(state.rule)
            if rule is None:
                continue  # the rule left the file: keep its state in case it comes back
            new, done = tick(rule, state, now)
            if forgettable(new, now):
                forget.append(fingerprint)
                del self.states[fingerprint]
            elif new != state:
                changed.append(new)
                self.states[fingerprint] = new
            actions.extend(done)
        if not (changed or forget or actions):
            return
        if not self.replicated:
            await self._commit(changed, forget, actions)
            return
        # One change set per partition: each partition's log is its own.
        journal = self.journal
        assert not isinstance(journal, Journal)
        parts = {journal.partition_of(fp) for fp in [s.fingerprint for s in changed] + forget}
        parts |= {journal.partition_of(a.state.fingerprint) for a in actions}
        for p in sorted(q for q in parts if q is not None):
            await self._commit(
                [s for s in changed if journal.partition_of(s.fingerprint) == p],
                [fp for fp in forget if journal.partition_of(fp) == p],
                [a for a in actions if journal.partition_of(a.state.fingerprint) == p],
                partition=p,
            )
            for fp in forget:
                if journal.partition_of(fp) == p:
                    journal.forgotten(fp)

    async def _commit(
        self,
        states: Iterable[AlertState],
        forget: list[str],
        actions: list[Action],
        processed: Iterable[str] = (),
        partition: int | None = None,
    ) -> None:
        notifications, records = self._effects(actions)
        try:
            await self.journal.commit(
                states=list(states),
                forget=forget,
                notifications=notifications,
                records=records,
                processed=list(processed),
                partition=partition,
            )
        except Exception:
            # Memory ran ahead of the file: go back to what the file says, so the
            # redelivered batch is judged from the same state again.
            self.states = await self.journal.load_states()
            raise
        if notifications:
            self.deliverer.wake.set()
        if records:
            self._publish.set()

    def _effects(
        self, actions: list[Action]
    ) -> tuple[list[Notification], list[tuple[str, Record]]]:
        by_name = {r.name: r for r in self.rules.rules}
        receivers = self.rules.receivers_by_name
        notifications: list[Notification] = []
        records: list[tuple[str, Record]] = []
        for action in actions:
            rule = by_name[action.state.rule]
            alert = _alert_event(action, rule.threshold, rule.severity)
            if action.kind != "renotify":
                records.append((topics.ALERTS, Record(alert.key(), encode_event(alert))))
                log.warning(
                    "alert %s %s (%s) labels=%s value=%s",
                    rule.name,
                    alert.status,
                    action.reason,
                    alert.labels,
                    alert.value,
                )
            if action.kind == "resolve" and not rule.send_resolved:
                continue
            notifications.extend(
                Notification(notification_id(), name, alert)
                for name in rule.receivers
                if name in receivers and receivers[name].enabled
            )
        return notifications, records

    # --- hand-over (replicated) ---------------------------------------------------------

    async def take_over(self, partitions: list[int]) -> None:
        """Recover the partitions the group assigned here, before their metrics are read."""
        journal = self.journal
        assert not isinstance(journal, Journal)
        async with self._work:
            for p in sorted(partitions):
                state = await journal.recover(p)
                self.states.update(state.states)
                log.info("alerting: owns partition=%d at=%.6f", p, time.time())
        self.deliverer.wake.set()
        self._publish.set()

    async def release(self, partitions: list[int]) -> None:
        """Hand partitions back: finish the batch and the deliveries of theirs in flight."""
        journal = self.journal
        assert not isinstance(journal, Journal)
        async with self._work:
            for p in sorted(partitions):
                await self.deliverer.drain(journal.retire(p))
                state = journal.release(p)
                for fp in state.states if state else ():
                    self.states.pop(fp, None)
                log.info("alerting: released partition=%d at=%.6f", p, time.time())

    # --- loops -------------------------------------------------------------------------

    async def _ticker(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.alerting_tick_s)
            try:
                await self.tick()
            except Exception:
                log.exception("alerting tick failed; trying again at the next one")

    async def _publisher(self, stop: asyncio.Event) -> None:
        backoff = 0.2
        while True:
            try:
                pending = await self.journal.pending_records(500)
                if pending:
                    await self._publish_in_order(pending)
                    await self.journal.published(pending[-1][0])
                    backoff = 0.2
                    continue
            except BusUnavailable as exc:
                log.warning("alerting could not publish (%s); retrying in %.1f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if stop.is_set():
                return
            self._publish.clear()
            waiters = [
                asyncio.ensure_future(self._publish.wait()),
                asyncio.ensure_future(stop.wait()),
            ]
            await asyncio.wait(waiters, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                w.cancel()

    async def _publish_in_order(self, pending: list[tuple[int, str, Record]]) -> None:
        run: list[Record] = []
        topic = pending[0][1]
        for _, t, record in pending:
            if t != topic:
                await self.bus.publish(topic, run)
                run, topic = [], t
            run.append(record)
        await self.bus.publish(topic, run)

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set; then finish in-flight deliveries and publish what is left."""
        await self.journal.open()
        try:
            self.states = await self.journal.load_states()
            self.load_rules()
            firing = sum(s.status == "firing" for s in self.states.values())
            log.info(
                "alerting: %d alerts restored from %s (%d firing)",
                len(self.states),
                self.journal.path,
                firing,
            )
            if self.replicated:
                from llmloop_alerting.replicated import Rebalance

                consumer = self.bus.consumer(  # type: ignore[call-arg]
                    [topics.METRICS], self.group, listener=Rebalance(self)
                )
            else:
                consumer = self.bus.consumer([topics.METRICS], self.group)
            await consumer.start()
            inner = asyncio.Event()
            publisher_stop = asyncio.Event()
            tasks = [
                asyncio.create_task(self._ticker(inner), name="alerting-ticker"),
                asyncio.create_task(self.deliverer.run(inner), name="alerting-deliverer"),
                asyncio.create_task(
                    consume(
                        consumer,
                        self.handle,
                        batch_size=500,
                        max_wait_s=self.settings.alerting_batch_wait_s,
                        stop=inner,
                        idle_poll_s=0.5,
                    ),
                    name="alerting-consumer",
                ),
            ]
            publisher = asyncio.create_task(self._publisher(publisher_stop))
            try:
                stopping = asyncio.create_task(stop.wait())
                await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
            finally:
                inner.set()
                results = await asyncio.gather(*tasks, return_exceptions=True)
                publisher_stop.set()
                await publisher  # drains the bus outbox before closing
                if self.replicated:
                    for p in sorted(self.journal.owned):  # type: ignore[union-attr]
                        log.info("alerting: released partition=%d at=%.6f", p, time.time())
                await consumer.close()
            for result in results:
                if isinstance(result, BaseException) and not isinstance(
                    result, asyncio.CancelledError
                ):
                    raise result
        finally:
            await self.journal.close()


def _alert_event(action: Action, threshold: float, severity: str) -> AlertStateChanged:
    state = action.state
    return AlertStateChanged(
        project_id=state.project_id,
        rule=state.rule,
        status="resolved" if action.kind == "resolve" else "firing",
        fingerprint=state.fingerprint,
        severity=severity,  # type: ignore[arg-type]
        labels=state.labels,
        annotations=state.annotations,
        value=state.value,
        threshold=threshold,
        starts_at=state.starts_at or _now(),
        ends_at=state.ends_at if action.kind == "resolve" else None,
    )
