"""Alerting state for two or more replicas: partitioned like the metrics, logged on Kafka.

With ``LLMLOOP_ALERTING_REPLICATED=true`` (Kafka only) every replica joins one
consumer group on the metrics topic. Metric events are keyed by metric name and
a rule watches one metric, so every metric that feeds an alert fingerprint lands
on one partition: the replica that holds partition ``p`` owns the fingerprints
of ``p`` and nobody else evaluates them. A rebalance (a replica dies, one is
added) moves partitions, and their fingerprints with them.

The state of partition ``p`` (alert states, evaluated metric ids, the
notification outbox, alert events not yet published) lives in partition ``p``
of a changelog topic, one record per change set: one record is one transaction,
so a crash leaves either all of a batch's changes or none. Offsets of the
metrics are committed after the changelog record, as with the SQLite journal.

Taking a partition over: the new owner appends a fence (a random token) to the
changelog partition and reads it from the last snapshot until it meets its own
token. That read is complete whatever the broker answers for "latest" offsets
(Tansu's are off by a batch, TESTING.md) and takes what the old owner wrote
before it died. Then it writes a snapshot and commits its offset (group
``<group>-changelog``), so the next take-over reads only from there.

Guarantees, and their limits:

* one evaluator per fingerprint: aiokafka runs every member's
  ``on_partitions_revoked`` before any member's ``on_partitions_assigned``; the
  service's revoke waits for the batch or tick in progress and the deliveries in
  flight of those partitions. A member that dies is out of the group after its
  session timeout, and only then are its partitions assigned again. A member
  that hangs past the session timeout without dying (a zombie) is not fenced
  out: it could still send a notification the new owner also sends, with the
  same idempotency key.
* notifications: at least once per transition, with the idempotency key chosen
  when the transition was logged; a notification whose sender died between the
  receiver's 2xx and the record of it is sent again by the new owner.
* ``llmloop alerts dlq list|replay`` reads the SQLite journal, so it does not see the
  replicated outbox; dead letters are still on ``llmloop.notifications.deadletter.v1``.
* the changelog has no compaction (Tansu ignores it; on Kafka the records are change
  sets, not keyed states): a partition is snapshotted every ``SNAPSHOT_EVERY`` change
  sets and at least hourly (when it changes), and a take-over reads from the last
  snapshot: give the changelog a retention of 7 days or more (a partition with no
  change for that long holds only alerts that ``FORGET_AFTER`` forgets anyway).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from llmloop import topics
from llmloop.bus import BusUnavailable, Record
from llmloop.bus.kafka import KafkaOptions
from llmloop.events import AlertStateChanged
from llmloop_alerting.journal import Notification, _decode_state, _encode_state
from llmloop_alerting.state import AlertState

log = logging.getLogger(__name__)

CHANGELOG = topics.ALERTING_CHANGELOG
# Evaluated metric ids kept per partition: a redelivery is at most the batches after the
# last committed offset, a few thousand ids.
KEEP_PROCESSED = 20_000
SNAPSHOT_EVERY = 500  # change records between snapshots (bounds a take-over's read)
# ... and at least this often, so that a retention of a day never drops the last one.
SNAPSHOT_MAX_AGE_S = 3600.0
_TOPIC_ALREADY_EXISTS = 36


def _b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode()


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def _note_dict(n: Notification) -> dict[str, Any]:
    return {
        "id": n.id,
        "receiver": n.receiver,
        "alert": n.alert.model_dump_json(),
        "attempts": n.attempts,
        "state": n.state,
        "next_at": n.next_at,
        "last_error": n.last_error,
        "last_status": n.last_status,
        "created_at": n.created_at,
    }


def _note(d: dict[str, Any]) -> Notification:
    return Notification(
        d["id"],
        d["receiver"],
        AlertStateChanged.model_validate_json(d["alert"]),
        d["attempts"],
        d["state"],
        d["next_at"],
        d["last_error"],
        d["last_status"],
        d["created_at"],
    )


@dataclass
class PartitionState:
    """What one metrics partition's fingerprints need, rebuilt from the changelog."""

    partition: int
    states: dict[str, AlertState] = field(default_factory=dict)
    processed: OrderedDict[str, None] = field(default_factory=OrderedDict)
    outbox: dict[str, Notification] = field(default_factory=dict)  # pending and dead
    unpublished: dict[str, tuple[str, Record]] = field(default_factory=dict)
    since_snapshot: int = 0
    snapshot_at: float = 0.0  # time.monotonic() of the last snapshot this replica wrote

    def apply(self, change: dict[str, Any]) -> None:
        """One changelog record (a change set or a snapshot) applied to this state."""
        if change.get("k") == "snapshot":
            self.states, self.processed, self.outbox, self.unpublished = {}, OrderedDict(), {}, {}
            self.since_snapshot = 0
        else:
            self.since_snapshot += 1
        for fp, raw in change.get("states", {}).items():
            self.states[fp] = _decode_state(raw.encode())
        for fp in change.get("forget", ()):
            self.states.pop(fp, None)
        for event_id in change.get("processed", ()):
            self.processed[event_id] = None
        while len(self.processed) > KEEP_PROCESSED:
            self.processed.popitem(last=False)
        for d in change.get("notes", ()):
            if d["state"] == "delivered":
                self.outbox.pop(d["id"], None)
            else:
                self.outbox[d["id"]] = _note(d)
        for id_, topic, key, value in change.get("publish", ()):
            self.unpublished[id_] = (topic, Record(_unb64(key), _unb64(value) or b""))
        for id_ in change.get("published", ()):
            self.unpublished.pop(id_, None)

    def snapshot(self) -> dict[str, Any]:
        return {
            "k": "snapshot",
            "states": {fp: _encode_state(s).decode() for fp, s in self.states.items()},
            "processed": list(self.processed),
            "notes": [_note_dict(n) for n in self.outbox.values()],
            "publish": [
                [id_, topic, _b64(r.key), _b64(r.value)]
                for id_, (topic, r) in self.unpublished.items()
            ],
        }


class ReplicatedJournal:
    """The ``Journal`` interface over owned partitions, each logged to the changelog.

    The service and the deliverer call it as they call the SQLite journal; what
    differs is ``recover`` / ``release`` (the rebalance) and the ``partition``
    of a commit.
    """

    def __init__(self, bus_url: str, group: str) -> None:
        self.options = KafkaOptions.from_url(bus_url)
        self.group = group
        self.path = f"kafka topic {CHANGELOG}"  # what the service logs as "state in"
        self.owned: dict[int, PartitionState] = {}
        self.closing: set[int] = set()  # being released: no new deliveries, writes still go
        self._partition_of: dict[str, int] = {}  # fingerprint and notification id -> partition
        self._write = asyncio.Lock()  # one change set at a time: log order == memory order
        self._producer: AIOKafkaProducer | None = None
        self._reader: AIOKafkaConsumer | None = None
        self._seq = 0
        self._by_seq: dict[int, tuple[int, str]] = {}  # publish seq -> (partition, id)

    # --- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        o = self.options
        try:
            await self._ensure_topic()
            self._producer = AIOKafkaProducer(
                bootstrap_servers=o.bootstrap,
                client_id=f"{o.client_id}-alerting-changelog",
                acks="all",
                enable_idempotence=o.idempotence,
                linger_ms=0,
                max_request_size=8 * 1024 * 1024,
                request_timeout_ms=o.request_timeout_ms,
            )
            await self._producer.start()
            self._reader = AIOKafkaConsumer(
                bootstrap_servers=o.bootstrap,
                client_id=f"{o.client_id}-alerting-changelog",
                group_id=f"{self.group}-changelog",  # holds each partition's snapshot offset
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                request_timeout_ms=o.request_timeout_ms,
                max_partition_fetch_bytes=16 * 1024 * 1024,
            )
            await self._reader.start()
        except (KafkaError, OSError) as exc:
            raise BusUnavailable(f"alerting changelog: Kafka is unreachable: {exc}") from exc

    async def _ensure_topic(self) -> None:
        """The changelog has as many partitions as the metrics topic: partition p logs p."""
        o = self.options
        admin = AIOKafkaAdminClient(
            bootstrap_servers=o.bootstrap, request_timeout_ms=o.request_timeout_ms
        )
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            if topics.METRICS not in existing:
                await admin.create_topics([NewTopic(topics.METRICS, o.partitions, o.replication)])
            described = await admin.describe_topics([topics.METRICS])
            count = len(described[0]["partitions"])
            if CHANGELOG not in existing:
                response = await admin.create_topics([NewTopic(CHANGELOG, count, o.replication)])
                for name, code, *_ in response.topic_errors:
                    if code not in (0, _TOPIC_ALREADY_EXISTS):
                        raise BusUnavailable(f"could not create topic {name}: error code {code}")
                log.info("created %s with %d partitions (as %s)", CHANGELOG, count, topics.METRICS)
        finally:
            await admin.close()

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.stop()
            self._reader = None
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    # --- ownership ------------------------------------------------------------------

    def owns(self, partition: int) -> bool:
        return partition in self.owned

    def partition_of(self, key: str) -> int | None:
        """The partition of a fingerprint or a notification id (None: not ours)."""
        return self._partition_of.get(key)

    async def recover(self, partition: int) -> PartitionState:
        """Take partition ``partition`` over: everything logged before now, then a snapshot."""
        assert self._producer is not None and self._reader is not None
        started = time.monotonic()
        token = uuid.uuid4().hex
        await self._append(partition, {"k": "fence", "token": token})
        tp = TopicPartition(CHANGELOG, partition)
        self._reader.assign([tp])
        snapshot_at = await self._reader.committed(tp)
        if snapshot_at is None:
            await self._reader.seek_to_beginning(tp)
        else:
            self._reader.seek(tp, snapshot_at)
        state = PartitionState(partition)
        records = 0
        found = False
        while not found:
            batch = await self._reader.getmany(tp, timeout_ms=1000, max_records=2000)
            for r in batch.get(tp, []):
                change = orjson.loads(r.value)
                records += 1
                if change.get("k") == "fence":
                    if change.get("token") == token:
                        found = True
                        break
                    continue
                state.apply(change)
        # Snapshot before the partition counts as owned: no change set of it can be logged
        # between the snapshot's content and its record.
        await self._snapshot(state)
        self.owned[partition] = state
        for fp in state.states:
            self._partition_of[fp] = partition
        for id_ in state.outbox:
            self._partition_of[id_] = partition
        for id_ in state.unpublished:
            self._by_seq[self._next_seq()] = (partition, id_)
        log.info(
            "alerting: took partition %d over in %.3f s (%d records read, %d alerts, "
            "%d notifications pending, %d events to publish)",
            partition,
            time.monotonic() - started,
            records,
            len(state.states),
            sum(n.state == "pending" for n in state.outbox.values()),
            len(state.unpublished),
        )
        return state

    def forgotten(self, fingerprint: str) -> None:
        self._partition_of.pop(fingerprint, None)

    def retire(self, partition: int) -> set[str]:
        """Start releasing ``partition``: no new deliveries; the ids of its notifications."""
        self.closing.add(partition)
        state = self.owned.get(partition)
        return set(state.outbox) if state else set()

    def release(self, partition: int) -> PartitionState | None:
        """Stop acting for ``partition`` (its new owner recovers it from the changelog)."""
        self.closing.discard(partition)
        state = self.owned.pop(partition, None)
        if state is not None:
            for key in [k for k, p in self._partition_of.items() if p == partition]:
                del self._partition_of[key]
            for seq in [s for s, (p, _) in self._by_seq.items() if p == partition]:
                del self._by_seq[seq]
        return state

    async def _snapshot(self, state: PartitionState) -> None:
        assert self._reader is not None
        offset = await self._append(state.partition, state.snapshot())
        state.since_snapshot, state.snapshot_at = 0, time.monotonic()
        try:
            await self._reader.commit({TopicPartition(CHANGELOG, state.partition): offset})
        except KafkaError as exc:  # the next take-over reads from the previous snapshot
            log.warning(
                "could not record the snapshot offset of partition %d: %s", state.partition, exc
            )

    async def _append(self, partition: int, change: dict[str, Any]) -> int:
        assert self._producer is not None
        try:
            meta = await self._producer.send_and_wait(
                CHANGELOG, orjson.dumps(change), key=b"%d" % partition, partition=partition
            )
        except KafkaError as exc:
            raise BusUnavailable(f"alerting changelog did not acknowledge: {exc}") from exc
        return int(meta.offset)

    async def _change(self, partition: int, change: dict[str, Any]) -> None:
        """Log a change set, then apply it to memory (not applied when the log refused it)."""
        state = self.owned.get(partition)
        if state is None:
            raise BusUnavailable(f"partition {partition} is not owned by this replica any more")
        async with self._write:
            await self._append(partition, change)
            state.apply(change)
            if (
                state.since_snapshot >= SNAPSHOT_EVERY
                or time.monotonic() - state.snapshot_at > SNAPSHOT_MAX_AGE_S
            ):
                await self._snapshot(state)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    # --- the Journal interface ------------------------------------------------------------

    async def load_states(self) -> dict[str, AlertState]:
        return {fp: s for p in self.owned.values() for fp, s in p.states.items()}

    async def unseen(self, event_ids: Sequence[str]) -> set[str]:
        seen = {e for p in self.owned.values() for e in event_ids if e in p.processed}
        return set(event_ids) - seen

    async def commit(
        self,
        *,
        states: Iterable[AlertState] = (),
        forget: Iterable[str] = (),
        notifications: Iterable[Notification] = (),
        records: Iterable[tuple[str, Record]] = (),
        processed: Iterable[str] = (),
        partition: int | None = None,
    ) -> None:
        if partition is None:
            raise ValueError("a replicated commit names its partition")
        now = time.time()
        notes = [
            _note_dict(replace(n, next_at=n.next_at or now, created_at=now)) for n in notifications
        ]
        publish = [[uuid.uuid4().hex, t, _b64(r.key), _b64(r.value)] for t, r in records]
        states = list(states)
        change = {
            "k": "change",
            "states": {s.fingerprint: _encode_state(s).decode() for s in states},
            "forget": list(forget),
            "processed": list(processed),
            "notes": notes,
            "publish": publish,
        }
        await self._change(partition, change)
        for s in states:
            self._partition_of[s.fingerprint] = partition
        for d in notes:
            self._partition_of[d["id"]] = partition
        for id_, *_ in publish:
            self._by_seq[self._next_seq()] = (partition, id_)

    async def due(self, now: float, limit: int, exclude: set[str]) -> list[Notification]:
        found = [
            n
            for p in self.owned.values()
            if p.partition not in self.closing
            for n in p.outbox.values()
            if n.state == "pending" and n.next_at <= now and n.id not in exclude
        ]
        return sorted(found, key=lambda n: n.next_at)[:limit]

    async def record_attempts(
        self, results: Sequence[tuple[Notification, Sequence[tuple[str, Record]]]]
    ) -> None:
        by_partition: dict[int, list[tuple[Notification, Sequence[tuple[str, Record]]]]] = {}
        for n, records in results:
            p = self._partition_of.get(n.id)
            if p is None:
                raise BusUnavailable(f"notification {n.id[:12]} belongs to no partition owned here")
            by_partition.setdefault(p, []).append((n, records))
        for p, items in by_partition.items():
            publish = [
                [uuid.uuid4().hex, t, _b64(r.key), _b64(r.value)]
                for _, records in items
                for t, r in records
            ]
            await self._change(
                p, {"k": "change", "notes": [_note_dict(n) for n, _ in items], "publish": publish}
            )
            for n, _ in items:
                if n.state == "delivered":
                    self._partition_of.pop(n.id, None)
            for id_, *_ in publish:
                self._by_seq[self._next_seq()] = (p, id_)

    async def pending_records(self, limit: int) -> list[tuple[int, str, Record]]:
        out: list[tuple[int, str, Record]] = []
        for seq in sorted(self._by_seq)[:limit]:
            partition, id_ = self._by_seq[seq]
            topic, record = self.owned[partition].unpublished[id_]
            out.append((seq, topic, record))
        return out

    async def published(self, up_to_seq: int) -> None:
        by_partition: dict[int, list[str]] = {}
        for seq in [s for s in self._by_seq if s <= up_to_seq]:
            partition, id_ = self._by_seq.pop(seq)
            by_partition.setdefault(partition, []).append(id_)
        for partition, ids in by_partition.items():
            if partition in self.owned:
                await self._change(partition, {"k": "change", "published": ids})


class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """The consumer group's hand-overs, awaited inside the rebalance by aiokafka.

    ``service`` is the ``AlertingService`` (its ``release`` and ``take_over``).
    """

    def __init__(self, service: Any) -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.service.release([tp.partition for tp in revoked if tp.topic == topics.METRICS])

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.service.take_over(
            [tp.partition for tp in assigned if tp.topic == topics.METRICS]
        )
