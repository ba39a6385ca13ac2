"""A single-node log: the part that ``memory://`` and ``sqlite://`` share.

One partition per topic, offsets from 0, committed offsets per consumer group.
The storage (a dict, or an fsync'd SQLite file) sits behind ``LogStorage``;
publishing, waiting for new data and group offsets live here once.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from llmloop.bus.base import Consumer, Message, Record

_CROSS_PROCESS_POLL_S = 0.05  # another process may append to a shared file
# Events published by this process, kept for its consumers by (topic, offset): the newest
# this many. Consumers at the head of the log (all of them, when they keep up) get the
# event its producer validated instead of parsing the bytes again (llmloop.consumer).
RECENT_EVENTS = 16_384


class LogStorage(abc.ABC):
    """Appends, reads and group offsets of a local log."""

    shared_between_processes = False

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def append(self, topic: str, records: Sequence[Record]) -> int:
        """Durably append, all or nothing; the offset the first record got."""

    @abc.abstractmethod
    async def read(self, topic: str, from_offset: int, limit: int) -> list[Message]:
        """Messages of ``topic`` at offsets ``>= from_offset``, oldest first."""

    @abc.abstractmethod
    async def committed(self, group: str, topic: str) -> int:
        """The next offset the group should read (0 when it never committed)."""

    @abc.abstractmethod
    async def commit(self, group: str, positions: dict[str, int]) -> None:
        """Store the next offset to read, per topic, for the group."""

    async def end_offset(self, topic: str) -> int:
        """The offset the next appended message will get (issue 18: consumer lag)."""
        raise NotImplementedError


class LocalLogBus:
    """``EventBus`` over a ``LogStorage``."""

    def __init__(self, url: str, storage: LogStorage) -> None:
        self.url = url
        self.storage = storage
        self._appended = asyncio.Condition()
        self._version = 0
        self.recent: OrderedDict[tuple[str, int], Any] = OrderedDict()

    async def start(self) -> None:
        await self.storage.open()

    async def close(self) -> None:
        await self.storage.close()

    async def publish(self, topic: str, records: Sequence[Record]) -> None:
        if not records:
            return
        start = await self.storage.append(topic, records)
        self._remember(topic, start, records)
        async with self._appended:
            self._version += 1
            self._appended.notify_all()

    def _remember(self, topic: str, start: int, records: Sequence[Record]) -> None:
        recent = self.recent
        for i, record in enumerate(records):
            if record.event is not None:
                recent[(topic, start + i)] = record.event
        for _ in range(len(recent) - RECENT_EVENTS):
            recent.popitem(last=False)  # the oldest, in O(1) (a dict's first key is not)

    def with_events(self, topic: str, messages: list[Message]) -> list[Message]:
        """``messages`` with the events this process published for them attached."""
        recent = self.recent
        if not recent:
            return messages
        return [
            m
            if (event := recent.get((topic, m.offset))) is None
            else Message(m.topic, m.partition, m.offset, m.key, m.value, m.headers, event)
            for m in messages
        ]

    async def ping(self) -> None:
        await self.storage.read("__ping__", 0, 1)

    def consumer(self, topics: Sequence[str], group: str) -> Consumer:
        return LocalLogConsumer(self, list(topics), group)

    async def lag(self, group: str, topics: Sequence[str]) -> dict[str, int]:
        """Messages per topic that ``group`` has not committed yet."""
        return {
            topic: max(
                0,
                await self.storage.end_offset(topic) - await self.storage.committed(group, topic),
            )
            for topic in topics
        }

    async def wait_for_append(self, seen_version: int, timeout_s: float) -> None:
        poll = _CROSS_PROCESS_POLL_S if self.storage.shared_between_processes else timeout_s
        async with self._appended:
            if self._version != seen_version:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._appended.wait(), min(timeout_s, poll))


class LocalLogConsumer:
    """A consumer of a ``LocalLogBus``: the group's only member."""

    def __init__(self, bus: LocalLogBus, topics: list[str], group: str) -> None:
        self._bus = bus
        self._topics = topics
        self._group = group
        self._positions: dict[str, int] = {}
        self._next_topic = 0

    async def start(self) -> None:
        for topic in self._topics:
            self._positions[topic] = await self._bus.storage.committed(self._group, topic)

    async def close(self) -> None:
        self._positions.clear()

    async def poll(self, max_records: int, timeout_s: float) -> list[Message]:
        deadline = time.monotonic() + timeout_s
        while True:
            seen = self._bus._version
            batch = await self._read(max_records)
            left = deadline - time.monotonic()
            if batch or left <= 0:
                return batch
            await self._bus.wait_for_append(seen, left)

    async def _read(self, max_records: int) -> list[Message]:
        # Round-robin over topics so a busy topic cannot starve a quiet one.
        batch: list[Message] = []
        for i in range(len(self._topics)):
            topic = self._topics[(self._next_topic + i) % len(self._topics)]
            got = await self._bus.storage.read(
                topic, self._positions[topic], max_records - len(batch)
            )
            if got:
                self._positions[topic] = got[-1].offset + 1
                batch.extend(self._bus.with_events(topic, got))
            if len(batch) >= max_records:
                break
        self._next_topic = (self._next_topic + 1) % len(self._topics)
        return batch

    async def commit(self) -> None:
        await self._bus.storage.commit(self._group, dict(self._positions))
