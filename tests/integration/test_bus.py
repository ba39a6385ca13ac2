"""Contract tests of the bus port: every adapter keeps the same promises.

``memory://`` (unit tests), ``sqlite://`` (the embedded runtime) and ``kafka://``
(Tansu, a real Kafka-protocol broker) run the same tests; tests of what only one
adapter can promise (durability across processes, an unreachable broker) follow.
Topics and groups are unique per test: a Tansu group keeps the session timeout
of its first member for the broker's life.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

from llmloop.bus import (
    BusUnavailable,
    Consumer,
    EventBus,
    Message,
    Record,
    consume,
    open_bus,
)
from llmloop.bus import sqlite as sqlite_adapter
from llmloop.bus.kafka import KafkaBus
from llmloop.testing.tansu import TansuBroker

pytestmark = pytest.mark.timeout(60)

DEADLINE_S = 15.0  # longest wait for messages that should arrive (a Tansu rejoin takes ~4 s)
MARKER_KEYS = [f"marker-{i}".encode() for i in range(12)]  # hash onto all 3 Kafka partitions


class Startable(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...


S = TypeVar("S", bound=Startable)


@contextlib.asynccontextmanager
async def started(thing: S) -> AsyncIterator[S]:
    await thing.start()
    try:
        yield thing
    finally:
        await thing.close()


@dataclass(frozen=True)
class Backend:
    name: str
    partitions: int
    make: Callable[[Sequence[str]], EventBus]

    def bus(self, *topics: str) -> EventBus:
        """A new, unstarted bus; Kafka creates ``topics`` at start."""
        return self.make(topics)


@pytest.fixture(params=["memory", "sqlite", pytest.param("kafka", marks=pytest.mark.kafka)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "memory":
        return Backend("memory", 1, lambda _: open_bus("memory://"))
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'bus.db'}"
        return Backend("sqlite", 1, lambda _: open_bus(url))
    url = request.getfixturevalue("kafka_url") + "&partitions=3"
    return Backend("kafka", 3, lambda topics: KafkaBus(url, create_topics=topics))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def values(messages: Sequence[Message | Record]) -> Counter[bytes]:
    return Counter(m.value for m in messages)


async def collect(consumer: Consumer, n: int, deadline_s: float = DEADLINE_S) -> list[Message]:
    """Exactly ``n`` messages, polled until they arrived or the deadline passed."""
    got: list[Message] = []
    deadline = time.monotonic() + deadline_s
    while len(got) < n and (left := deadline - time.monotonic()) > 0:
        got += await consumer.poll(n - len(got), min(left, 1.0))
    assert len(got) == n, f"expected {n} messages within {deadline_s} s, got {len(got)}"
    return got


async def pending(bus: EventBus, consumer: Consumer, topic: str, partitions: int) -> list[Message]:
    """What the group still had to read in ``topic``: everything before fresh markers.

    Markers go to every partition, and a partition is read in order, so once all
    markers arrived nothing that was pending before them can still be on its way.
    This holds however long a Kafka group join takes, unlike "nothing came in N s".
    """
    run = uuid.uuid4().hex.encode()
    await bus.publish(topic, [Record(key, b"marker:" + run) for key in MARKER_KEYS])
    got: list[Message] = []
    markers: list[Message] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(markers) < len(MARKER_KEYS):
        left = deadline - time.monotonic()
        assert left > 0, f"markers did not arrive within {DEADLINE_S} s"
        for m in await consumer.poll(1000, min(left, 1.0)):
            (markers if m.value == b"marker:" + run else got).append(m)
    assert len({m.partition for m in markers}) == partitions, "markers missed a partition"
    return got


async def wait_until(predicate: Callable[[], bool], deadline_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + deadline_s
    while not predicate():
        assert time.monotonic() < deadline, f"condition not met within {deadline_s} s"
        await asyncio.sleep(0.02)


# -- every adapter ------------------------------------------------------------------------


async def test_publish_then_consume_keeps_key_value_headers_and_order_per_key(
    backend: Backend,
) -> None:
    topic, group = unique("roundtrip"), unique("group")
    headers = (("trace", b"\x00\xff"), ("trace", b"again"), ("empty", b""))
    records = [
        Record(f"completion-{i % 3}".encode(), f"value-{i}".encode(), headers) for i in range(15)
    ]
    records += [Record(None, b"no key"), Record(b"empty value", b"", (("h", b"1"),))]

    async with started(backend.bus(topic)) as bus:
        await bus.publish(topic, records[:10])
        await bus.publish(topic, records[10:])
        async with started(bus.consumer([topic], group)) as consumer:
            got = await collect(consumer, len(records))

    assert {m.topic for m in got} == {topic}
    assert Counter((m.key, m.value, m.headers) for m in got) == Counter(
        (r.key, r.value, r.headers) for r in records
    )
    by_key_sent: dict[bytes | None, list[bytes]] = defaultdict(list)
    by_key_got: dict[bytes | None, list[bytes]] = defaultdict(list)
    for r in records:
        by_key_sent[r.key].append(r.value)
    offsets: dict[int, list[int]] = defaultdict(list)
    for m in got:
        by_key_got[m.key].append(m.value)
        offsets[m.partition].append(m.offset)
    assert by_key_got == by_key_sent
    for partition, seen in offsets.items():
        assert seen == sorted(set(seen)), f"partition {partition} offsets out of order: {seen}"


async def test_records_larger_than_a_batch_keep_their_order(backend: Backend) -> None:
    """A 1 MB prompt is bigger than a producer batch (256 KB): it still lands, in order."""
    topic, group = unique("big"), unique("group")
    key = b"one-completion"
    records = [Record(key, b"small-1"), Record(key, b"x" * 1_000_000), Record(key, b"small-2")]
    records += [Record(key, f"tail-{i}".encode() * 10_000) for i in range(40)]  # > one batch
    async with started(backend.bus(topic)) as bus:
        await bus.publish(topic, records)
        async with started(bus.consumer([topic], group)) as consumer:
            got = await collect(consumer, len(records))
    assert [m.value for m in got] == [r.value for r in records]
    assert len({m.partition for m in got}) == 1


@pytest.mark.kafka
async def test_kafka_batches_go_where_the_clients_own_partitioner_sends_them(
    kafka_url: str,
) -> None:
    """Completions and their feedback must share a partition, whoever produced them."""
    from aiokafka import AIOKafkaProducer

    topic = unique("keys")
    keys = [uuid.uuid4().bytes for _ in range(30)]
    bus = KafkaBus(kafka_url + "&partitions=3", create_topics=[topic])
    async with started(bus):
        await bus.publish(topic, [Record(k, b"via-bus") for k in keys])
        producer = AIOKafkaProducer(bootstrap_servers=bus.options.bootstrap)
        await producer.start()
        try:
            direct = [await (await producer.send(topic, b"direct", key=k)) for k in keys]
        finally:
            await producer.stop()
        async with started(bus.consumer([topic], unique("group"))) as consumer:
            got = await collect(consumer, 2 * len(keys))
    via_bus = {m.key: m.partition for m in got if m.value == b"via-bus"}
    assert via_bus == {k: meta.partition for k, meta in zip(keys, direct, strict=True)}
    assert len(set(via_bus.values())) == 3


async def test_group_resumes_from_its_last_commit(backend: Backend) -> None:
    topic, group = unique("resume"), unique("group")
    committed = [Record(f"k{i % 3}".encode(), f"committed-{i}".encode()) for i in range(6)]
    uncommitted = [Record(f"k{i % 3}".encode(), f"uncommitted-{i}".encode()) for i in range(4)]

    async with started(backend.bus(topic)) as bus:
        await bus.publish(topic, committed)
        async with started(bus.consumer([topic], group)) as consumer:
            assert values(await collect(consumer, len(committed))) == values(committed)
            await consumer.commit()
            await bus.publish(topic, uncommitted)
            assert values(await collect(consumer, len(uncommitted))) == values(uncommitted)
            # closed without committing: a crash after reading

        async with started(bus.consumer([topic], group)) as consumer:
            redelivered = await pending(bus, consumer, topic, backend.partitions)

    assert values(redelivered) == values(uncommitted)


async def test_consume_commits_only_after_the_handler_finished(backend: Backend) -> None:
    topic, group = unique("consume"), unique("group")
    records = [Record(f"k{i % 2}".encode(), f"event-{i}".encode()) for i in range(5)]
    failed_batches: list[Counter[bytes]] = []
    handled: list[Message] = []

    async def store_down(batch: list[Message]) -> None:
        failed_batches.append(values(batch))
        raise RuntimeError("store is down")

    async def store_up(batch: list[Message]) -> None:
        handled.extend(batch)
        if len(handled) >= len(records):
            done.set()

    async with started(backend.bus(topic)) as bus:
        await bus.publish(topic, records)

        stop = asyncio.Event()
        async with started(bus.consumer([topic], group)) as consumer:
            task = asyncio.create_task(
                consume(consumer, store_down, batch_size=100, max_wait_s=0.3, stop=stop,
                        idle_poll_s=0.2)
            )  # fmt: skip
            await wait_until(lambda: len(failed_batches) >= 2)
            stop.set()
            await asyncio.wait_for(task, 5)
        assert failed_batches[0], "the failing handler got an empty batch"
        assert failed_batches[1] == failed_batches[0], "a failed batch must be retried as is"

        # Nothing was committed while the handler failed: the group starts over.
        done = asyncio.Event()
        async with started(bus.consumer([topic], group)) as consumer:
            await asyncio.wait_for(
                consume(consumer, store_up, batch_size=100, max_wait_s=0.3, stop=done,
                        idle_poll_s=0.2),
                DEADLINE_S,
            )  # fmt: skip
        assert values(handled) == values(records)

        # The successful batches were committed: a restarted member has nothing to redo.
        async with started(bus.consumer([topic], group)) as consumer:
            assert await pending(bus, consumer, topic, backend.partitions) == []


async def test_two_groups_each_see_every_message(backend: Backend) -> None:
    topic = unique("fanout")
    records = [Record(f"k{i % 3}".encode(), f"event-{i}".encode()) for i in range(6)]

    async with started(backend.bus(topic)) as bus:
        await bus.publish(topic, records)
        async with (
            started(bus.consumer([topic], unique("writer"))) as first,
            started(bus.consumer([topic], unique("alerting"))) as second,
        ):
            got_first, got_second = await asyncio.gather(
                collect(first, len(records)), collect(second, len(records))
            )

    assert values(got_first) == values(records)
    assert values(got_second) == values(records)


async def test_ping_answers_when_the_bus_is_up(backend: Backend) -> None:
    async with started(backend.bus()) as bus:
        await bus.ping()


# -- sqlite: the embedded runtime's durable log --------------------------------------------


async def test_sqlite_records_are_durable_and_shared_between_bus_objects(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bus.db'}"
    topic, group = "llmloop.events.v1", "processor"
    records = [Record(b"c1", f"event-{i}".encode(), (("n", str(i).encode()),)) for i in range(5)]

    async with (
        started(open_bus(url)) as writer,
        started(open_bus(url)) as reader,
        started(reader.consumer([topic], group)) as consumer,
    ):
        waiting = asyncio.create_task(consumer.poll(3, DEADLINE_S))
        await writer.publish(topic, records)
        first = await asyncio.wait_for(waiting, DEADLINE_S)  # woken by another bus's append
        assert [m.value for m in first] == [r.value for r in records[:3]]
        await consumer.commit()

    # A restarted process: new bus objects on the same file.
    async with started(open_bus(url)) as restarted:
        async with started(restarted.consumer([topic], group)) as consumer:
            rest = await collect(consumer, 2)
            assert await consumer.poll(100, 0.05) == []
        async with started(restarted.consumer([topic], "a-new-group")) as consumer:
            everything = await collect(consumer, len(records))

    assert [(m.key, m.value, m.headers) for m in rest] == [
        (r.key, r.value, r.headers) for r in records[3:]
    ]
    assert [m.value for m in everything] == [r.value for r in records]


async def test_sqlite_trimming_consumed_records_never_reuses_offsets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'bus.db'}"
    topic, group = "llmloop.retrain.v1", "retraining"
    monkeypatch.setattr(sqlite_adapter, "RETENTION_S", 0)  # consumed records are old at once

    async with started(open_bus(url)) as bus, started(bus.consumer([topic], group)) as consumer:
        await bus.publish(topic, [Record(b"k", f"old-{i}".encode()) for i in range(3)])
        await collect(consumer, 3)
        await consumer.commit()

    async with started(open_bus(url)) as bus:  # trims at start
        await bus.publish(topic, [Record(b"k", b"new")])
        async with started(bus.consumer([topic], group)) as consumer:
            (new,) = await collect(consumer, 1)
        async with started(bus.consumer([topic], "a-new-group")) as consumer:
            left = values(await consumer.poll(100, 0.05))

    assert (new.value, new.offset) == (b"new", 3)
    assert b"old-0" not in left, "nothing was trimmed: the test proves nothing"


async def test_sqlite_closed_bus_raises_bus_unavailable(tmp_path: Path) -> None:
    bus = open_bus(f"sqlite:///{tmp_path / 'bus.db'}")
    await bus.start()
    await bus.close()
    await bus.close()  # idempotent, like the Kafka adapter
    with pytest.raises(BusUnavailable):
        await bus.publish("llmloop.events.v1", [Record(b"k", b"late")])


_PUBLISHER = """
import asyncio, sys
from llmloop.bus import Record, open_bus

async def main() -> None:
    bus = open_bus(sys.argv[1])
    await bus.start()
    batch = 0
    while True:
        await bus.publish("acked", [Record(b"k", f"{batch}:{i}".encode()) for i in range(10)])
        print(batch, flush=True)  # acknowledged
        batch += 1

asyncio.run(main())
"""


async def test_sqlite_keeps_every_acknowledged_record_after_sigkill(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bus.db'}"
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _PUBLISHER, url, stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    acked: list[int] = []
    try:
        while len(acked) < 20:
            line = await asyncio.wait_for(child.stdout.readline(), DEADLINE_S)
            assert line, "the publisher died before it was killed"
            acked.append(int(line))
    finally:
        child.kill()  # SIGKILL, in the middle of the next publish
        tail = await child.stdout.read()
        await child.wait()
    acked += [int(line) for line in tail.split()]

    async with started(open_bus(url)) as bus, started(bus.consumer(["acked"], "check")) as c:
        stored: list[Message] = []
        while batch := await c.poll(10_000, 0.05):
            stored += batch

    per_batch = Counter(int(m.value.split(b":")[0]) for m in stored)
    assert set(acked) <= set(per_batch), "an acknowledged batch was lost"
    assert sorted(per_batch) == list(range(len(per_batch))), "batches out of order"
    assert len(per_batch) <= len(acked) + 1  # at most the batch in flight at the kill
    assert set(per_batch.values()) == {10}, "a batch was stored in part"


# -- kafka ---------------------------------------------------------------------------------


@pytest.mark.kafka
async def test_kafka_publish_raises_bus_unavailable_when_the_broker_is_down() -> None:
    topic = unique("outage")
    with TansuBroker() as broker:  # its own broker: stopping the session one would hurt others
        bus = KafkaBus(broker.url(partitions=1, request_timeout_ms=1500), create_topics=[topic])
        async with started(bus):
            await bus.publish(topic, [Record(b"k", b"before")])

            broker.kill()
            t0 = time.monotonic()
            with pytest.raises(BusUnavailable):
                await asyncio.wait_for(bus.publish(topic, [Record(b"k", b"during")]), DEADLINE_S)
            assert time.monotonic() - t0 < 6, "publish must fail within about request_timeout_ms"
            with pytest.raises(BusUnavailable):
                await asyncio.wait_for(bus.ping(), DEADLINE_S)
            with pytest.raises(BusUnavailable):
                await asyncio.wait_for(KafkaBus(broker.url()).start(), DEADLINE_S)

            broker.restart()  # same port, empty memory storage
            await asyncio.wait_for(bus.ping(), DEADLINE_S)


@pytest.mark.kafka
@pytest.mark.parametrize(
    ("option", "complaint"),
    [("lingerms=5", "'lingerms' is unknown"), ("partitions=many", "partitions='many'")],
)
def test_open_bus_rejects_bad_kafka_url_options(
    kafka_url: str, option: str, complaint: str
) -> None:
    bus = open_bus(kafka_url)
    assert isinstance(bus, KafkaBus)
    assert not bus.options.idempotence
    with pytest.raises(ValueError, match=complaint):
        open_bus(f"{kafka_url}&{option}")
