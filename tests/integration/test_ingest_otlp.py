"""The real OpenTelemetry SDK and its OTLP/HTTP exporter -> ingest -> processor -> chDB rows."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from llmloop.bus import open_bus
from llmloop.store import Store
from llmloop.testing.server import ServedApp
from llmloop_ingest.app import create_app
from llmloop_ingest.keys import KeyStore
from llmloop_ingest.settings import IngestSettings
from llmloop_processor.sink import Sink


def chat_span(tracer, compression_label: str) -> None:
    """A GenAI client span as an instrumented OpenAI call records it (semconv 1.37+)."""
    with tracer.start_as_current_span("chat gpt-4o-mini") as span:
        span.set_attribute("gen_ai.operation.name", "chat")
        span.set_attribute("gen_ai.provider.name", "openai")
        span.set_attribute("gen_ai.request.model", "gpt-4o-mini")
        span.set_attribute("gen_ai.response.model", "gpt-4o-mini-2024-07-18")
        span.set_attribute("gen_ai.usage.input_tokens", 21)
        span.set_attribute("gen_ai.usage.output_tokens", 9)
        span.set_attribute(
            "gen_ai.input.messages",
            orjson.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": "Where is my order?"}]}]
            ).decode(),
        )
        span.set_attribute(
            "gen_ai.output.messages",
            orjson.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": "It shipped."}]}]
            ).decode(),
        )
        span.set_attribute("user.id", compression_label)
        time.sleep(0.01)


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
async def test_otel_sdk_spans_become_completion_rows(
    store: Store, tmp_path: Path, compression: Compression
):
    bus = open_bus("memory://")
    await bus.start()
    key = KeyStore(tmp_path / "keys.db").create("shop")[0]
    app = create_app(IngestSettings(data_dir=tmp_path), bus=bus)
    stop = asyncio.Event()
    processor = asyncio.create_task(Sink(bus, store, batch_size=100, max_wait_s=0.05).run(stop))
    try:
        with ServedApp(app) as ingest:
            exporter = OTLPSpanExporter(
                endpoint=f"{ingest.url}/v1/otlp/v1/traces",
                headers={"Authorization": f"Bearer {key}"},
                compression=compression,
            )
            provider = TracerProvider(resource=Resource.create({"service.name": "shop-bot"}))
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            tracer = provider.get_tracer("test")
            await asyncio.to_thread(chat_span, tracer, compression.value)
            with tracer.start_as_current_span("GET /orders"):  # not GenAI: no row
                pass
            await asyncio.to_thread(provider.shutdown)
            deadline = time.monotonic() + 20
            while not store.query("SELECT count() FROM completions").scalar():
                assert time.monotonic() < deadline, "no completion row"
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await processor
        await bus.close()
    rows = store.query(
        "SELECT project_id, model, prompt, completion, prompt_tokens, completion_tokens, "
        "latency_ms, user_id, attributes['service'], attributes['provider'], length(trace_id) "
        "FROM completions"
    ).rows
    assert len(rows) == 1
    (
        project,
        model,
        prompt,
        completion,
        tokens_in,
        tokens_out,
        latency,
        user,
        service,
        provider_name,
        trace_len,
    ) = rows[0]
    assert (project, model) == ("shop", "gpt-4o-mini-2024-07-18")
    assert (prompt, completion) == ("Where is my order?", "It shipped.")
    assert (tokens_in, tokens_out) == (21, 9)
    assert latency >= 10 and user == compression.value
    assert (service, provider_name, trace_len) == ("shop-bot", "openai", 32)
