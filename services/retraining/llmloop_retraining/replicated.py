"""Retraining on two or more replicas (issue 16): stateless joiners, one controller.

With ``LLMLOOP_RETRAIN_REPLICATED=true`` (Kafka only) every replica runs two parts:

* a **joiner**, a member of the ``llmloop-retraining`` group on the events topic,
  which Kafka partitions by completion id. It keeps nothing: for each feedback event
  of its partitions it finds the completions the feedback names, in the same batch
  or in the store (the processor wrote them), and appends one self-contained record
  (the feedback and those completions) to the join log, ``llmloop.retrain.join.v1``.
  Offsets are committed after the append, so a crash re-appends a batch: harmless,
  the controller skips feedback ids it has seen. No replica copies every
  completion: only the ones that got feedback travel, once per feedback.
* a **controller** candidate, a member of ``llmloop-retraining-controller`` on the
  join log, which has one partition: the member holding it is the controller, and a
  rebalance (the controller died) makes another one controller within the session
  timeout. The controller's state (the pairs, the thumbs index, feedback still
  waiting for its completion, the job ledger) is a local SQLite file rebuilt from the
  join log when it takes over: it appends a fence, reads the log from the start and
  decides nothing (no job, no alert) until it reads its own fence. Pairs are made
  in log order, so every controller numbers them alike and the ledger's "pairs up
  to" means the same everywhere. It launches and watches the DPO jobs and writes
  each job's start and end to the join log.

Feedback whose completion is not in the store yet (the processor lags, or the
feedback came first) waits in the controller; its timer looks the completions up
again and appends what it found, which the pairing then reads like any record.

Limits: the join log is read from its start on every take-over (it grows with
feedback, not with completions); a job that was running when its controller died
is marked failed by the next one (a Kubernetes Job keeps running and is not
adopted); the datasets and models directories must be shared (a volume) for a
new controller to read what an old one cut. A batch of the join log polled just
before a rebalance that gives the log back to the same replica may be applied ahead
of the re-read from the start: the same pairs, numbered in another order.
``llmloop retrain`` and ``llmloop datasets`` read the local state file, i.e. the
controller's pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
import uuid
from datetime import datetime
from typing import Any

import orjson
from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pydantic import ValidationError

from llmloop import topics
from llmloop.bus import Message, Record, consume
from llmloop.bus.kafka import KafkaOptions
from llmloop.consumer import decode
from llmloop.events import AlertStateChanged, parse_event
from llmloop.store import open_store
from llmloop_retraining import pairs as P
from llmloop_retraining.ledger import JobLedger
from llmloop_retraining.lookup import feedback_and_named, referenced, stored_completions
from llmloop_retraining.service import GROUP, TOPICS, Retrainer, open_join

log = logging.getLogger(__name__)

JOIN_LOG = topics.RETRAIN_JOIN
CONTROLLER_GROUP = "llmloop-retraining-controller"


def _completion_dict(c: P.Completion) -> dict[str, Any]:
    return {
        "id": c.id,
        "project_id": c.project_id,
        "model": c.model,
        "prompt": c.prompt,
        "completion": c.completion,
        "ts": c.timestamp.isoformat(),
        "toxicity": c.toxicity,
        "prompt_vector": None if c.prompt_vector is None else c.prompt_vector.tolist(),
    }


def _completion(d: dict[str, Any]) -> P.Completion:
    vector = d.get("prompt_vector")  # absent from records written before issue 14
    return P.Completion(
        d["id"], d["project_id"], d["model"], d["prompt"], d["completion"],
        datetime.fromisoformat(d["ts"]), toxicity=d.get("toxicity"),
        prompt_vector=None if vector is None else P.unit_vector(vector),
    )  # fmt: skip


class LoggedLedger(JobLedger):
    """The job ledger, whose starts and ends also go to the join log (for the next
    controller); ``apply`` replays them."""

    def __init__(self, path: Any, append: Any) -> None:
        super().__init__(path)
        self._append = append  # (record dict) -> None, queued for the bus

    def start(
        self, job_id: str, model: str, dataset_version: str, pairs_seq: int, reason: str
    ) -> None:
        super().start(job_id, model, dataset_version, pairs_seq, reason)
        self._append(
            {
                "k": "job_start",
                "job_id": job_id,
                "model": model,
                "dataset_version": dataset_version,
                "pairs_seq": pairs_seq,
                "reason": reason,
            }
        )

    def finish(self, job_id: str, stage: str, model_version: str | None = None) -> None:
        super().finish(job_id, stage, model_version)
        self._append(
            {"k": "job_finish", "job_id": job_id, "stage": stage, "model_version": model_version}
        )

    def apply(self, record: dict[str, Any]) -> None:
        if record["k"] == "job_start":
            with contextlib.suppress(sqlite3.IntegrityError):  # logged twice (a retry)
                JobLedger.start(
                    self,
                    record["job_id"],
                    record["model"],
                    record["dataset_version"],
                    record["pairs_seq"],
                    record["reason"],
                )
        else:
            JobLedger.finish(self, record["job_id"], record["stage"], record["model_version"])


class _NoCommit:
    """The controller's consumer never commits: every take-over reads the log from its
    start ("earliest"), since the state it rebuilds starts empty."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def poll(self, max_records: int, timeout_s: float) -> list[Message]:
        return await self.inner.poll(max_records, timeout_s)  # type: ignore[no-any-return]

    async def commit(self) -> None:
        return None


class ReplicatedRetrainer(Retrainer):
    """A joiner and a controller candidate on one bus (see the module docstring)."""

    def __init__(self, bus: Any, settings: Any, **kwargs: Any) -> None:
        super().__init__(bus, settings, **kwargs)
        if not bus.url.startswith("kafka://"):
            raise ValueError("replicated retraining (LLMLOOP_RETRAIN_REPLICATED) needs kafka://")
        self.options = KafkaOptions.from_url(bus.url)
        self.leading = False
        self.caught_up = False
        self._fence = ""
        self._took_over_at = 0.0
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.ledger.close()
        self.ledger = LoggedLedger(settings.state_path, self._outbox.put_nowait)
        self.joined = 0

    # --- the joiner (every replica) -------------------------------------------------------

    async def join_batch(self, batch: list[Message]) -> None:
        events: list[Any] = []
        records: list[dict[str, Any]] = []
        for message in batch:
            try:
                event = decode(message)
            except ValidationError:
                continue
            if isinstance(event, AlertStateChanged):
                if message.topic == topics.ALERTS:
                    records.append({"k": "alert", "alert": event.model_dump_json()})
            else:
                events.append(event)
        store = self.store
        assert store is not None
        feedback, known = await asyncio.to_thread(feedback_and_named, events, store)
        for f in feedback:
            named = [_completion_dict(known[i]) for i in referenced(f) if i in known]
            records.append({"k": "feedback", "feedback": f.model_dump_json(), "completions": named})
        if records:
            await self._append(records)
            self.joined += len(feedback)

    async def _append(self, records: list[dict[str, Any]]) -> None:
        await self.bus.publish(JOIN_LOG, [Record(None, orjson.dumps(r)) for r in records])

    # --- the controller (one replica at a time) ---------------------------------------------

    async def become_controller(self) -> None:
        """Holding the join log: rebuild the state from its start, up to a fence of ours."""
        async with self._lock:
            self.join.close()
            self.ledger.close()
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    self.settings.state_path.with_name(
                        self.settings.state_path.name + suffix
                    ).unlink()
            self.join = open_join(self.settings)
            # The ledger logs from the worker thread that applies the join log (_apply):
            # its records reach the outbox (an asyncio.Queue) through the loop.
            loop = asyncio.get_running_loop()
            self.ledger = LoggedLedger(
                self.settings.state_path,
                lambda record: loop.call_soon_threadsafe(self._outbox.put_nowait, record),
            )
            self.leading, self.caught_up = True, False
            self._fence = uuid.uuid4().hex
            self._took_over_at = time.monotonic()
            await self._append([{"k": "fence", "token": self._fence}])
        log.info("retraining: controller at=%.6f (rebuilding from %s)", time.time(), JOIN_LOG)

    async def stop_controlling(self) -> None:
        job = None
        async with self._lock:
            if self.leading:
                log.info("retraining: controller released at=%.6f", time.time())
            self.leading = self.caught_up = False
            if self._job is not None and not self._job.done():
                log.warning("no longer the controller: the running job is interrupted")
                self._job.cancel()
                job = self._job
            self._queue.clear()
        if job is not None:
            # Let it finish unwinding (its ledger entry) before a new controller closes
            # and replaces the ledger under it.
            with contextlib.suppress(BaseException):
                await job

    async def control(self, batch: list[Message]) -> None:
        """Records of the join log, in order: the pairing, the ledger, the triggers."""
        if not self.leading:
            return
        async with self._lock:
            alerts = await asyncio.to_thread(self._apply, batch)
            if self.caught_up:  # decisions on the loop (a job is a task), after the batch
                for alert in alerts:
                    self.note_alert(alert)
                for model in self.join.models():
                    self.check(model)

    def _apply(self, batch: list[Message]) -> list[AlertStateChanged]:
        """Apply the records (in a worker thread); returns the live alerts among them."""
        alerts: list[AlertStateChanged] = []
        events: list[Any] = []
        completions: list[P.Completion] = []

        def flush() -> None:
            if events or completions:
                result = self.join.apply(list(events), list(completions))
                if result.pairs:
                    log.info("join: %d new pairs", len(result.pairs))
                events.clear()
                completions.clear()

        for message in batch:
            record = orjson.loads(message.value)
            kind = record.get("k")
            if kind == "feedback":
                completions.extend(_completion(d) for d in record["completions"])
                events.append(parse_event(record["feedback"].encode()))
            elif kind == "completions":
                completions.extend(_completion(d) for d in record["completions"])
            elif kind in ("job_start", "job_finish"):
                flush()
                if not self.caught_up:  # our own are in the ledger already
                    self.ledger.apply(record)
            elif kind == "alert" and self.caught_up:  # replayed alerts start nothing
                alerts.append(AlertStateChanged.model_validate_json(record["alert"]))
            elif kind == "fence" and record.get("token") == self._fence and not self.caught_up:
                flush()
                self.caught_up = True
                for job_id in self.ledger.interrupted():  # logs their end, too
                    log.warning("job %s had no end when its controller went; marked failed", job_id)
                log.info(
                    "retraining: controller caught up at=%.6f in %.3f s (%d pairs)",
                    time.time(),
                    time.monotonic() - self._took_over_at,
                    sum(self.join.count(m) for m in self.join.models()),
                )
        flush()
        return alerts

    async def _resolver(self, stop: asyncio.Event) -> None:
        """The controller looks the completions of waiting feedback up again."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.retrain_check_interval_s)
            if not (self.leading and self.caught_up) or self.store is None:
                continue
            async with self._lock:
                waiting = self.join.waiting_for(1000)
            found = await asyncio.to_thread(stored_completions, self.store, waiting)
            if found:
                await self._append(
                    [
                        {
                            "k": "completions",
                            "completions": [_completion_dict(c) for c in found.values()],
                        }
                    ]
                )

    async def _ledger_writer(self, stop: asyncio.Event) -> None:
        while not (stop.is_set() and self._outbox.empty()):
            try:
                record = await asyncio.wait_for(self._outbox.get(), 0.5)
            except TimeoutError:
                continue
            while True:
                try:
                    await self._append([record])
                    break
                except Exception:
                    log.exception("could not log a job record; retrying")
                    await asyncio.sleep(1.0)

    def check(self, model: str) -> bool:
        if not (self.leading and self.caught_up):
            return False  # only the controller, once it knows the whole log, decides
        return super().check(model)

    async def _timer(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.retrain_check_interval_s)
            if not stop.is_set() and self.leading and self.caught_up:
                async with self._lock:
                    for model in self.join.models():
                        self.check(model)

    # --- running ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        await self._ensure_join_log()
        own_store = self.store is None  # `llmloop up` and `serve` hand theirs over
        if self.store is None:
            self.store = open_store(self.settings.store_url)
        joiner = self.bus.consumer(TOPICS, GROUP)
        controller = self.bus.consumer(  # type: ignore[call-arg]
            [JOIN_LOG], CONTROLLER_GROUP, listener=_Leadership(self)
        )
        await joiner.start()
        await controller.start()
        log.info("retraining (replicated): joining %s, controller candidate", ", ".join(TOPICS))
        inner = asyncio.Event()
        tasks = [
            asyncio.create_task(
                consume(joiner, self.join_batch, batch_size=self.batch_size,
                        max_wait_s=self.max_wait_s, stop=inner, idle_poll_s=0.5),
                name="retrain-joiner",
            ),
            asyncio.create_task(
                consume(_NoCommit(controller), self.control, batch_size=2000,  # type: ignore[arg-type]
                        max_wait_s=0.05, stop=inner, idle_poll_s=0.5),
                name="retrain-controller",
            ),
            asyncio.create_task(self._timer(inner), name="retrain-timer"),
            asyncio.create_task(self._resolver(inner), name="retrain-resolver"),
        ]  # fmt: skip
        writer = asyncio.create_task(self._ledger_writer(inner), name="retrain-ledger")
        try:
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
        finally:
            inner.set()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            if self._job is not None and not self._job.done():
                self._job.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._job
            await writer
            if self.leading:
                log.info("retraining: controller released at=%.6f", time.time())
            await controller.close()
            await joiner.close()
            self.join.close()
            self.ledger.close()
            if own_store:
                self.store.close()
        for task, result in zip(tasks, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                log.error("retraining: %s stopped: %r", task.get_name(), result)
                raise result

    async def _ensure_join_log(self) -> None:
        """One partition: the log's order is the pairing's order, and one member holds it."""
        o = self.options
        admin = AIOKafkaAdminClient(bootstrap_servers=o.bootstrap)
        await admin.start()
        try:
            if JOIN_LOG not in set(await admin.list_topics()):
                # Kept for ever: it is the pairs' only durable copy (a new controller
                # rebuilds from its start), and it grows with feedback, not completions.
                await admin.create_topics(
                    [NewTopic(JOIN_LOG, 1, o.replication, topic_configs={"retention.ms": "-1"})]
                )
        except Exception as exc:  # created by another replica meanwhile
            log.debug("creating %s: %s", JOIN_LOG, exc)
        finally:
            await admin.close()


class _Leadership(ConsumerRebalanceListener):  # type: ignore[misc]
    """Holding the join log's one partition is being the controller."""

    def __init__(self, service: ReplicatedRetrainer) -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        if any(tp.topic == JOIN_LOG for tp in revoked):
            await self.service.stop_controlling()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        if any(tp.topic == JOIN_LOG for tp in assigned):
            await self.service.become_controller()
