"""``memory://``: the local log in a dict, for unit tests. Lost with the process."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from llmloop.bus.base import Message, Record
from llmloop.bus.local import LocalLogBus, LogStorage


class MemoryStorage(LogStorage):
    def __init__(self) -> None:
        self.topics: dict[str, list[Message]] = defaultdict(list)
        self.offsets: dict[tuple[str, str], int] = {}

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def append(self, topic: str, records: Sequence[Record]) -> int:
        log = self.topics[topic]
        start = len(log)
        log.extend(
            Message(topic, 0, start + i, r.key, r.value, r.headers) for i, r in enumerate(records)
        )
        return start

    async def read(self, topic: str, from_offset: int, limit: int) -> list[Message]:
        return self.topics[topic][from_offset : from_offset + limit]

    async def committed(self, group: str, topic: str) -> int:
        return self.offsets.get((group, topic), 0)

    async def end_offset(self, topic: str) -> int:
        return len(self.topics.get(topic, ()))

    async def commit(self, group: str, positions: dict[str, int]) -> None:
        for topic, offset in positions.items():
            self.offsets[(group, topic)] = offset


def memory_bus(url: str = "memory://") -> LocalLogBus:
    return LocalLogBus(url, MemoryStorage())
