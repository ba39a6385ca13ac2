"""``kafka://HOST:PORT[,HOST:PORT][?option=value&...]``: any Kafka-protocol broker.

Producer: ``acks=all`` (an acknowledged event survives the loss of a broker)
and idempotence on by default. Consumers: auto-commit off; ``commit`` is called
after the handler finished, so a crash redelivers instead of losing.

URL options (all optional)::

    idempotence=true|false      producer idempotence (Tansu, the test broker, needs false)
    partitions=6                partitions of topics this client creates
    replication=1               replication factor of topics this client creates
    linger_ms=5                 producer batching delay
    session_timeout_ms=10000    consumer-group session timeout
    heartbeat_interval_ms=3000  consumer heartbeat
    request_timeout_ms=30000    client request timeout
    client_id=llmloop           client id shown by the broker
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import CommitFailedError, KafkaError

from llmloop import topics as topic_names
from llmloop.bus.base import BusError, BusUnavailable, Message, Record
from llmloop.urls import redact_url

log = logging.getLogger(__name__)

_TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True)
class KafkaOptions:
    bootstrap: str
    idempotence: bool = True
    partitions: int = 6
    replication: int = 1
    linger_ms: int = 5
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    request_timeout_ms: int = 30_000
    client_id: str = "llmloop"

    @classmethod
    def from_url(cls, url: str) -> KafkaOptions:
        parts = urlsplit(url)
        if not parts.netloc:
            raise ValueError(f"bus URL {redact_url(url)!r}: expected kafka://HOST:PORT[,HOST:PORT]")
        if "@" in parts.netloc:
            # No SASL yet: a user and password would otherwise end up in the bootstrap
            # address, fail as an unknown host and be echoed in every error that names it.
            raise ValueError(
                f"bus URL {redact_url(url)!r}: credentials in a Kafka URL are not supported "
                "(no SASL); use a listener that needs none, e.g. on a private network"
            )
        known = {f.name: f.type for f in fields(cls) if f.name != "bootstrap"}
        options: dict[str, Any] = {"bootstrap": parts.netloc}
        for name, raw in parse_qsl(parts.query, strict_parsing=bool(parts.query)):
            if name not in known:
                raise ValueError(
                    f"bus URL option {name!r} is unknown; known: {', '.join(sorted(known))}"
                )
            if known[name] == "bool":
                if raw.lower() not in {"true", "false", "1", "0"}:
                    raise ValueError(f"bus URL option {name}={raw!r}: expected true or false")
                options[name] = raw.lower() in {"true", "1"}
            elif known[name] == "int":
                try:
                    options[name] = int(raw)
                except ValueError:
                    raise ValueError(
                        f"bus URL option {name}={raw!r}: expected an integer"
                    ) from None
            else:
                options[name] = raw
        return cls(**options)


class KafkaBus:
    """``EventBus`` on aiokafka."""

    def __init__(self, url: str, *, create_topics: Sequence[str] = topic_names.ALL) -> None:
        self.url = url
        self.options = KafkaOptions.from_url(url)
        self._create_topics = list(create_topics)
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        o = self.options
        try:
            await self._ensure_topics()
            producer = AIOKafkaProducer(
                bootstrap_servers=o.bootstrap,
                client_id=o.client_id,
                acks="all",
                enable_idempotence=o.idempotence,
                linger_ms=o.linger_ms,
                max_batch_size=256 * 1024,
                max_request_size=8 * 1024 * 1024,
                request_timeout_ms=o.request_timeout_ms,
            )
            await producer.start()
        except (KafkaError, OSError) as exc:
            raise BusUnavailable(f"Kafka at {o.bootstrap} is unreachable: {exc}") from exc
        self._producer = producer

    async def _ensure_topics(self) -> None:
        if not self._create_topics:
            return
        o = self.options
        admin = AIOKafkaAdminClient(
            bootstrap_servers=o.bootstrap,
            client_id=o.client_id,
            request_timeout_ms=o.request_timeout_ms,
        )
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            missing = [t for t in self._create_topics if t not in existing]
            if missing:
                response = await admin.create_topics(
                    [NewTopic(t, o.partitions, o.replication) for t in missing]
                )
                for name, code, *_ in response.topic_errors:
                    if code not in (0, _TOPIC_ALREADY_EXISTS):
                        raise BusError(f"could not create topic {name}: error code {code}")
                log.info("created topics %s with %d partitions", missing, o.partitions)
        finally:
            await admin.close()

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def publish(self, topic: str, records: Sequence[Record]) -> None:
        if self._producer is None:
            raise BusUnavailable("Kafka producer is not started")
        try:
            sends = [
                await self._producer.send(
                    topic, r.value, key=r.key, headers=list(r.headers) or None
                )
                for r in records
            ]
            await asyncio.gather(*sends)
        except KafkaError as exc:
            raise BusUnavailable(f"Kafka did not acknowledge: {exc}") from exc

    async def ping(self) -> None:
        if self._producer is None:
            raise BusUnavailable("Kafka producer is not started")
        try:
            await self._producer.client.fetch_all_metadata()
        except (KafkaError, OSError) as exc:
            raise BusUnavailable(f"Kafka at {self.options.bootstrap}: {exc}") from exc

    def consumer(
        self,
        topics: Sequence[str],
        group: str,
        *,
        listener: ConsumerRebalanceListener | None = None,
    ) -> KafkaConsumer:
        """A group member; ``listener`` hears of partitions assigned and revoked (services
        whose state is partitioned like their input: replicated alerting, issue 16)."""
        return KafkaConsumer(self.options, list(topics), group, listener=listener)


class KafkaConsumer:
    """A consumer-group member; commits only when told to."""

    def __init__(
        self,
        options: KafkaOptions,
        topics: list[str],
        group: str,
        *,
        listener: ConsumerRebalanceListener | None = None,
    ) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=options.bootstrap,
            client_id=options.client_id,
            group_id=group,
            enable_auto_commit=False,
            # "earliest": a new group reads history rather than skipping it, and
            # Tansu's "latest" look-ups are off by a batch (TESTING.md).
            auto_offset_reset="earliest",
            session_timeout_ms=options.session_timeout_ms,
            heartbeat_interval_ms=options.heartbeat_interval_ms,
            request_timeout_ms=options.request_timeout_ms,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
        )
        # aiokafka awaits the listener's coroutines inside the rebalance: every member has
        # run ``on_partitions_revoked`` before any runs ``on_partitions_assigned``.
        self._consumer.subscribe(topics, listener=listener)

    async def start(self) -> None:
        try:
            await self._consumer.start()
        except (KafkaError, OSError) as exc:
            raise BusUnavailable(f"Kafka consumer could not start: {exc}") from exc

    async def close(self) -> None:
        await self._consumer.stop()

    async def poll(self, max_records: int, timeout_s: float) -> list[Message]:
        batches = await self._consumer.getmany(
            timeout_ms=int(timeout_s * 1000), max_records=max_records
        )
        return [
            Message(r.topic, r.partition, r.offset, r.key, r.value, tuple(r.headers or ()))
            for records in batches.values()
            for r in records
        ]

    async def commit(self) -> None:
        try:
            await self._consumer.commit()
        except CommitFailedError as exc:
            # The group rebalanced: the new owner of these partitions re-reads
            # from the last commit, and downstream dedup makes that harmless.
            log.warning("commit failed after a rebalance, batch will be redelivered: %s", exc)
