"""The faust-streaming app of the distributed runtime: ``faust -A llmloop_processor.app worker``.

Agents stay thin: each takes a batch of events (``stream.take_events``), turns
them into the bus port's ``Message`` and hands them to the same handlers the
embedded runtime runs through ``consume()``: the sink (``sink.Sink``)
the enricher (``enrichment.EnrichmentService``) and the embedding stage
(``embedding.EmbeddingService``). The statistics timer runs
as an app task. Faust acknowledges an event once both agents are done with it
and commits only acknowledged offsets, so a worker killed mid-batch redelivers
the batch and the writers' dedup by ``event_id`` keeps every count exact. A
handler that fails (the store is down) is retried on the same batch until it
succeeds, as ``consume()`` does: the agent pauses, its offsets stay put.

Configuration is read when the worker starts, never at import: ``LLMLOOP_BUS_URL``
(``kafka://HOST:PORT``), ``LLMLOOP_STORE_URL`` (this process owns the store; one
process per chDB path), ``LLMLOOP_PROCESSOR_*`` (see ``settings.py``).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import faust

from llmloop import topics
from llmloop.bus import EventBus, Message, open_bus, retry_until_done
from llmloop.lifecycle import tune_gc
from llmloop.store import Store, open_store
from llmloop_processor.runtime import services
from llmloop_processor.settings import ProcessorSettings
from llmloop_processor.shard import Shard, from_assignment
from llmloop_processor.sink import TOPICS

log = logging.getLogger(__name__)

app = faust.App("llmloop-processor", autodiscover=False)


def faust_broker(bus_url: str) -> str:
    """``kafka://h1:9092,h2:9092?opts`` (the bus URL) -> faust's ``kafka://h1:9092;h2:9092``."""
    parts = urlsplit(bus_url)
    if parts.scheme != "kafka":
        raise SystemExit(
            f"the faust worker needs LLMLOOP_BUS_URL=kafka://HOST:PORT, not {bus_url!r}; "
            "the embedded runtime (llmloop up) runs the same handlers without faust"
        )
    from llmloop.bus.kafka import KafkaOptions

    hosts = KafkaOptions.from_url(bus_url).bootstrap  # refuses credentials, as the bus does
    return ";".join(f"kafka://{host}" for host in hosts.split(","))


@app.on_configured.connect
def _configure(sender: Any, settings: Any, **_: Any) -> None:
    s = ProcessorSettings()
    settings.id = s.processor_faust_app_id
    settings.broker = faust_broker(s.bus_url)
    settings.broker_session_timeout = s.processor_faust_session_timeout_s
    settings.broker_heartbeat_interval = s.processor_faust_heartbeat_s
    settings.broker_rebalance_timeout = s.processor_faust_session_timeout_s
    settings.broker_request_timeout = max(10.0, s.processor_faust_session_timeout_s * 2)
    settings.consumer_auto_offset_reset = "earliest"
    settings.topic_partitions = s.processor_faust_partitions
    settings.web_enabled = False
    # A rebalance must not wait for in-flight events to be acknowledged: faust 0.15's
    # wait_empty waited for ever on events one agent never acknowledged (the group stayed
    # rebalancing, nothing was consumed: tests/faults/test_scale_out.py). Every handler
    # is idempotent (the writers skip stored event_ids), and faust commits only
    # acknowledged offsets, so an event in flight at a revocation is redelivered to the
    # partition's next owner and written once: what faust's docs say the setting is for.
    settings.stream_wait_empty = False
    settings.store = "memory://"
    datadir = s.data_dir / "faust"
    datadir.mkdir(parents=True, exist_ok=True)  # faust makes only the last level
    settings.datadir = str(datadir)


class _Runtime:
    """The process's store, bus and handlers, opened once when the worker starts."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self.ready = False
        self.stop = asyncio.Event()

    async def open(self) -> _Runtime:
        async with self._lock:
            if not self.ready:
                s = ProcessorSettings()
                self.store: Store = open_store(s.store_url)
                # Closed when the interpreter exits, after faust stopped the agents and
                # their writer threads finished: chDB crashes at exit if left open.
                atexit.register(self.store.close)
                self.bus: EventBus = open_bus(s.bus_url)
                await self.bus.start()
                # The same parts as `llmloop up` and `llmloop processor`; the agents below
                # feed them faust's batches instead of running their own consumers.
                parts = services(s, self.bus, self.store, ownership=stats_shard)
                self.sink = parts["processor"]
                self.enricher = parts["enricher"]
                self.embedder = parts.get("embedder")
                self.stats = parts["stats"]
                self.settings = s
                self.ready = True
                tune_gc()  # after start-up: its heap is frozen, batches collect less often
                log.info("processor worker: store %s, bus %s", self.store.url, self.bus.url)
        return self

    async def close(self) -> None:
        """Stop the handlers and close the bus; the store closes at exit (``open``)."""
        self.stop.set()
        if self.ready:
            await self.bus.close()


runtime = _Runtime()


def stats_shard() -> Shard:
    """The statistics keys of this worker: those of the events-topic partitions the
    consumer group assigned to it now (``shard``); none before the first assignment."""
    try:
        total = app.consumer.topic_partitions(topics.EVENTS) or _cluster_partitions(topics.EVENTS)
        assigned = [(tp.topic, tp.partition) for tp in app.consumer.assignment()]
    except Exception:  # the consumer is not up yet
        return Shard(frozenset(), 0)
    return from_assignment(topics.EVENTS, assigned, total)


def _cluster_partitions(topic: str) -> int:
    """Partitions of ``topic`` in the client's cluster metadata. faust's
    ``topic_partitions`` reads the group coordinator's metadata snapshot, which only
    some members hold: two of three workers found none and never computed statistics
    (tests/faults/test_scale_out.py)."""
    try:
        cluster = app.consumer._thread._consumer._client.cluster  # type: ignore[attr-defined]
        return len(cluster.partitions_for_topic(topic) or ())
    except AttributeError:
        return 0


def _message(event: Any) -> Message:
    m = event.message
    return Message(
        topic=m.topic,
        partition=m.partition,
        offset=m.offset,
        key=m.key,
        value=m.value,
        headers=tuple((k, v) for k, v in (m.headers or ())),
    )


async def _batches(stream: Any, size: int, within: float) -> AsyncIterator[list[Message]]:
    async for events in stream.take_events(size, within=within):
        yield [_message(e) for e in events]


_raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}


@app.agent(app.topic(*TOPICS, **_raw), name="llmloop-processor-sink")
async def sink(stream: Any) -> None:
    """Every topic into its table, each event once."""
    rt = await runtime.open()
    s = rt.settings
    async for batch in _batches(stream, s.writer_batch_size, s.writer_max_wait_s):
        if not await retry_until_done(rt.sink.handle, batch, rt.stop):
            return


@app.agent(app.topic(topics.EVENTS, **_raw), name="llmloop-processor-enrich")
async def enrich(stream: Any) -> None:
    """Completions into completion_enrichments (features, embeddings), each once."""
    rt = await runtime.open()
    async for batch in _batches(stream, rt.enricher.batch_size, rt.enricher.max_wait_s):
        if not await retry_until_done(rt.enricher.handle, batch, rt.stop):
            return


@app.agent(app.topic(topics.EVENTS, **_raw), name="llmloop-processor-embed")
async def embed(stream: Any) -> None:
    """The sampled completions' vectors into completion_embeddings, each once (issue 18)."""
    rt = await runtime.open()
    if rt.embedder is None:  # embeddings off: acknowledge and move on
        async for _ in stream:
            pass
        return
    async for batch in _batches(stream, rt.embedder.batch_size, rt.embedder.max_wait_s):
        if not await retry_until_done(rt.embedder.handle, batch, rt.stop):
            return


@app.task
async def statistics() -> None:
    """Windowed drift, bias and feedback statistics on a timer."""
    rt = await runtime.open()
    await rt.stats.run(rt.stop)


@app.on_before_shutdown.connect
async def _shutdown(sender: Any, **_: Any) -> None:
    await runtime.close()
