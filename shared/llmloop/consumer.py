"""The one base of the services' event consumers.

Every consumer of the bus does the same things: start a consumer in its group,
take batches, parse each batch once into good events and errors, hand the
events to its logic, commit, report progress, stop after the batch in flight.
``EventConsumer`` does them once; a service writes only ``handle_events``.

* **Parse once.** A record that this process published (ingest in ``llmloop
  up``) carries the event ingest validated (``Record.event``); the local log
  hands it to every consumer in the process (``Message.event``), so an event
  is validated once, at the edge. Records from elsewhere (Kafka, another
  process) are parsed, once per consumer.
* **One dead-letter policy.** Unreadable messages go to the dead-letter topic
  from the one consumer of every topic, the sink (``dead_letters = True``), with
  the reason; every other consumer counts them and passes over them.
* **Stop.** ``stop`` lets the batch in flight finish for ``stop_grace_s``, then
  abandons it (``abandon``): it was not committed, so the next start takes it again.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from llmloop import topics
from llmloop.bus import Consumer, EventBus, Message, Record, consume
from llmloop.events import (
    STAMPED_AT_INGEST,
    AnyEvent,
    error_field,
    mark_stamped_at_ingest,
    parse_event,
)

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 30.0


def decode(message: Message) -> AnyEvent:
    """The event of ``message``: the one its producer in this process validated, else
    parsed from its bytes (raises ``pydantic.ValidationError``)."""
    given: AnyEvent | None = message.event
    if given is not None:
        return given
    event = parse_event(message.value)
    return mark_stamped_at_ingest(event) if STAMPED_AT_INGEST in message.headers else event


@dataclass
class Parsed:
    """A batch, parsed: the events in order, and the messages that could not be read."""

    events: list[AnyEvent] = field(default_factory=list)
    errors: list[tuple[Message, str]] = field(default_factory=list)


def parse_batch(batch: Sequence[Message]) -> Parsed:
    """Each message of ``batch`` parsed once; an error names the field and the reason."""
    out = Parsed()
    for message in batch:
        try:
            out.events.append(decode(message))
        except ValidationError as exc:
            out.errors.append((message, reason(exc)))
    return out


def reason(exc: ValidationError) -> str:
    """Why an event could not be read, in one line: the first field and its error."""
    first = exc.errors(include_url=False, include_input=False)[0]
    return f"{error_field(first)}: {first['msg']} ({exc.error_count()} error(s))"


def dead_letter(message: Message, why: str) -> Record:
    """A record for the dead-letter topic: the original bytes, where they came from, why."""
    return Record(
        key=message.key,
        value=message.value,
        headers=(
            ("error", why[:2000].encode()),
            ("topic", message.topic.encode()),
            ("partition", str(message.partition).encode()),
            ("offset", str(message.offset).encode()),
        ),
    )


class EventConsumer(abc.ABC):
    """A consumer group member that hands parsed batches to ``handle_events``.

    Subclasses set ``name``, ``group`` and ``topics`` and implement
    ``handle_events``; ``handle(batch)`` is what the bus loop (``consume``) and the
    faust agents call with raw messages.
    """

    name: str
    group: str
    topics: Sequence[str]
    dead_letters = False  # only the sink: it consumes every topic
    stop_grace_s: float | None = 1.0  # None: the batch in flight always finishes

    def __init__(self, bus: EventBus, *, batch_size: int, max_wait_s: float) -> None:
        self.bus = bus
        self.batch_size = batch_size
        self.max_wait_s = max_wait_s
        self.consumer: Consumer | None = None
        self.handled = 0
        self.unreadable = 0
        self._last_report = time.monotonic()

    @abc.abstractmethod
    async def handle_events(self, events: list[AnyEvent]) -> None:
        """Act on one batch's readable events; raise to have the batch retried."""

    def progress(self) -> str:
        """One line for the progress log (subclasses say what they did)."""
        return f"{self.handled} events handled"

    def abandon(self) -> None:  # noqa: B027 (optional hook)
        """Interrupt work in flight when stopping (a model call, say); default: nothing."""

    async def close(self) -> None:  # noqa: B027 (optional hook)
        """Release what the consumer holds, after its last batch."""

    async def handle(self, batch: list[Message]) -> None:
        parsed = parse_batch(batch)
        # The batch's events first: when they fail (the store is down), the whole batch
        # is retried, and its unreadable messages must not be dead-lettered once per try.
        await self.handle_events(parsed.events)
        if parsed.errors:
            if self.dead_letters:
                await self.bus.publish(
                    topics.DEADLETTER, [dead_letter(m, why) for m, why in parsed.errors]
                )
                log.warning(
                    "%s: dead-lettered %d unreadable messages (first: %s)",
                    self.name,
                    len(parsed.errors),
                    parsed.errors[0][1],
                )
            self.unreadable += len(parsed.errors)
        self.handled += len(parsed.events)
        if time.monotonic() - self._last_report > PROGRESS_EVERY_S:
            self._last_report = time.monotonic()
            log.info("%s: %s", self.name, self.progress())

    async def run(self, stop: asyncio.Event) -> None:
        consumer = self.bus.consumer(self.topics, self.group)
        self.consumer = consumer
        await consumer.start()
        log.info("%s consuming %s as group %s", self.name, ", ".join(self.topics), self.group)
        consuming = asyncio.create_task(
            consume(
                consumer,
                self.handle,
                batch_size=self.batch_size,
                max_wait_s=self.max_wait_s,
                stop=stop,
            )
        )
        try:
            await self._until_stopped(consuming, stop)
        finally:
            await consumer.close()
            await self.close()

    async def _until_stopped(self, consuming: asyncio.Task[Any], stop: asyncio.Event) -> None:
        waiting = asyncio.create_task(stop.wait())
        await asyncio.wait({consuming, waiting}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        done, _ = await asyncio.wait({consuming}, timeout=self.stop_grace_s)
        if not done:
            self.abandon()
            consuming.cancel()
            log.info("%s stopped mid-batch; the batch is redelivered on restart", self.name)
        with contextlib.suppress(asyncio.CancelledError):
            await consuming  # re-raises what made the loop fail
