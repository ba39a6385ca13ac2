"""Read a Kafka-protocol broker from the outside, for tests: a topic's messages, its
length, and what a consumer group has committed on it.

Tansu's end-offset look-ups are off by a batch, so lengths are counted from the
messages themselves rather than asked for. Needs aiokafka (the kafka extra).
"""

from __future__ import annotations

from typing import Any


async def read_topic(bootstrap: str, topic: str) -> list[Any]:
    """Every message of ``topic``, from the start, as aiokafka ``ConsumerRecord``s."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await reader.start()
    out: list[Any] = []
    try:
        tps = [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic) or ()]
        if not tps:
            return out
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        while got := await reader.getmany(timeout_ms=300, max_records=10_000):
            for messages in got.values():
                out.extend(messages)
        return out
    finally:
        await reader.stop()


async def topic_length(bootstrap: str, topic: str) -> int:
    """The offset a group that consumed everything would have committed, over partitions."""
    last: dict[int, int] = {}
    for m in await read_topic(bootstrap, topic):
        last[m.partition] = max(last.get(m.partition, 0), m.offset + 1)
    return sum(last.values())


async def committed(bootstrap: str, group: str, topic: str) -> int:
    """The group's committed offsets on ``topic``, summed over partitions."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await reader.start()  # not subscribed: reads the group's offsets without joining it
    try:
        partitions = reader.partitions_for_topic(topic) or set()
        offsets = [await reader.committed(TopicPartition(topic, p)) for p in partitions]
    finally:
        await reader.stop()
    return sum(o or 0 for o in offsets)
