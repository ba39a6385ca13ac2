"""The bus port: publish records durably, consume them in groups that commit.

Every adapter gives the same guarantees, so the services' logic runs the same
on ``memory://`` (unit tests), ``sqlite://`` (the embedded runtime) and
``kafka://`` (production):

* ``publish`` returns only when every record is durable (Kafka: acks=all;
  sqlite: fsync'd); otherwise it raises ``BusUnavailable`` and the caller
  knows nothing of the batch was acknowledged.
* A consumer group resumes from its last commit; a consumer commits only after
  its handler finished, so a crash redelivers a batch rather than losing it.
  Handlers must therefore be idempotent (downstream dedup by ``event_id``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from llmloop.retry import backoff

log = logging.getLogger(__name__)


class BusError(Exception):
    """A bus operation failed."""


class BusUnavailable(BusError):
    """The bus did not acknowledge in time; nothing of the batch may be assumed durable."""


@dataclass(frozen=True, slots=True)
class Record:
    """What a producer publishes.

    ``event``: the validated event that ``value`` encodes, when the producer has it
    (ingest). Never sent anywhere; an adapter that delivers the record to consumers
    in this process may hand it on (``Message.event``), so they need not parse again.
    """

    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()
    event: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Message:
    """What a consumer receives."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()
    event: Any = field(default=None, compare=False, repr=False)  # see Record.event


class Consumer(Protocol):
    """One member of a consumer group."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def poll(self, max_records: int, timeout_s: float) -> list[Message]:
        """Up to ``max_records`` messages; waits up to ``timeout_s`` when none are ready."""
        ...

    async def commit(self) -> None:
        """Commit everything that ``poll`` returned so far."""
        ...


class EventBus(Protocol):
    """A durable, partitioned log of records."""

    url: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, topic: str, records: Sequence[Record]) -> None:
        """Append records; returns once all are durable, raises ``BusUnavailable`` if not."""
        ...

    async def ping(self) -> None:
        """Raise ``BusUnavailable`` unless the bus answers now (readiness probes)."""
        ...

    def consumer(self, topics: Sequence[str], group: str) -> Consumer:
        """A consumer in ``group`` reading ``topics`` from the group's last commit."""
        ...


Handler = Callable[[list[Message]], Awaitable[None]]


async def consume(
    consumer: Consumer,
    handler: Handler,
    *,
    batch_size: int,
    max_wait_s: float,
    stop: asyncio.Event,
    idle_poll_s: float = 1.0,
    max_backoff_s: float = 30.0,
) -> None:
    """Feed batches to ``handler`` and commit after each one it finished.

    A batch closes at ``batch_size`` messages or ``max_wait_s`` after its first
    message. When the handler raises (the store is down, say), the same batch
    is retried with backoff (``retry_until_done``) and nothing is committed.
    Unreadable messages are the handler's to dead-letter.
    """
    while not stop.is_set():
        batch = await consumer.poll(batch_size, idle_poll_s)
        if not batch:
            continue
        deadline = time.monotonic() + max_wait_s
        while len(batch) < batch_size and (left := deadline - time.monotonic()) > 0:
            more = await consumer.poll(batch_size - len(batch), left)
            if not more:
                break
            batch.extend(more)
        if not await retry_until_done(handler, batch, stop, max_backoff_s=max_backoff_s):
            return  # stopping: the batch stays uncommitted and is redelivered
        await consumer.commit()


async def retry_until_done(
    handler: Handler, batch: list[Message], stop: asyncio.Event, *, max_backoff_s: float = 30.0
) -> bool:
    """Run ``handler`` on ``batch`` until it succeeds; False if ``stop`` was set first.

    A failing handler (the store is down, say) is retried with exponential
    backoff and the caller commits nothing meanwhile: the stream pauses instead
    of skipping. ``consume`` and the faust agents share this loop.
    """
    attempt = 0
    while True:
        try:
            await handler(batch)
            return True
        except asyncio.CancelledError:
            raise
        except Exception:
            delay = backoff(attempt, 0.2, max_backoff_s)
            log.exception(
                "handler failed on a batch of %d; retrying in %.1f s, offsets not committed",
                len(batch),
                delay,
            )
            try:
                await asyncio.wait_for(stop.wait(), delay)
                return False
            except TimeoutError:
                attempt += 1
