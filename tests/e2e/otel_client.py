"""One instrumented ``openai`` client run, inside an instrumentation library's own venv.

Run by ``test_otel_conformance.py`` as ``.otel-envs/LIB/bin/python otel_client.py`` with
a JSON config on stdin: ``{"library", "mode", "ingest", "key", "openai", "run"}``.
It instruments the real client the way each library's documentation says, runs
every scenario inside a ``scenario NAME`` span, emits one
``gen_ai.evaluation.result`` for the first chat call, flushes, and prints one
JSON line per scenario (its trace id) for the test to look the rows up by.
Imports only the venv's packages: llmloop is not installed there.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from typing import Any

config = json.loads(sys.stdin.read())
LIB, MODE = config["library"], config.get("mode", "default")
AUTH = {"Authorization": f"Bearer {config['key']}"}
OTLP = f"{config['ingest']}/v1/otlp"

# Content capture on, as each library documents it (before the instrumentation imports).
ENV = {
    "genai-openai": {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "span_only"},
    "openai-v2": (
        {
            "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "span_only",
        }
        if MODE == "latest"
        else {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}
    ),
    "traceloop": {"TRACELOOP_TRACE_CONTENT": "true", "TRACELOOP_TELEMETRY": "false"},
    "openlit": {},
    "openinference": {},
}[LIB]
os.environ.update(ENV)

from opentelemetry import _logs, trace  # noqa: E402
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter  # noqa: E402
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter  # noqa: E402
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.sdk._logs import LoggerProvider  # noqa: E402
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: E402

resource = Resource.create({"service.name": f"conformance-{config['run']}"})


class GenAiSpans(SpanProcessor):
    """Remembers the ended spans that name a model, to parent the evaluation result to."""

    def __init__(self) -> None:
        self.ended: list[Any] = []

    def on_end(self, span: Any) -> None:
        attrs = span.attributes or {}
        if any(k in attrs for k in ("gen_ai.request.model", "llm.model_name")):
            self.ended.append(span)


genai_spans = GenAiSpans()
logs = LoggerProvider(resource=resource)
logs.add_log_record_processor(
    SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{OTLP}/v1/logs", headers=AUTH))
)
metrics = MeterProvider(
    resource=resource,
    metric_readers=[
        PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"{OTLP}/v1/metrics", headers=AUTH),
            export_interval_millis=60_000,
        )
    ],
)


def own_tracer_provider() -> TracerProvider:
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{OTLP}/v1/traces", headers=AUTH))
    )
    trace.set_tracer_provider(provider)
    _logs.set_logger_provider(logs)
    return provider


if LIB == "genai-openai":
    from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor

    tracer_provider = own_tracer_provider()
    OpenAIInstrumentor().instrument(
        tracer_provider=tracer_provider, logger_provider=logs, meter_provider=metrics
    )
    if MODE == "two":  # OpenLLMetry's instrumentation on the same client, as well
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor as OpenLLMetry

        OpenLLMetry().instrument(tracer_provider=tracer_provider)
elif LIB == "openai-v2":
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(
        tracer_provider=own_tracer_provider(), logger_provider=logs, meter_provider=metrics
    )
elif LIB == "openinference":
    from openinference.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(tracer_provider=own_tracer_provider())
elif LIB == "traceloop":
    from traceloop.sdk import Traceloop
    from traceloop.sdk.instruments import Instruments

    Traceloop.init(
        app_name=f"conformance-{config['run']}",
        exporter=OTLPSpanExporter(endpoint=f"{OTLP}/v1/traces", headers=AUTH),
        metrics_exporter=OTLPMetricExporter(endpoint=f"{OTLP}/v1/metrics", headers=AUTH),
        instruments={Instruments.OPENAI},
        disable_batch=True,
        telemetry_enabled=False,
    )
elif LIB == "openlit":
    import openlit

    openlit.init(
        otlp_endpoint=OTLP,
        otlp_headers=f"Authorization=Bearer {config['key']}",
        application_name=f"conformance-{config['run']}",
        capture_message_content=True,
        disable_batch=True,
    )
provider = trace.get_tracer_provider()
provider.add_span_processor(genai_spans)  # type: ignore[attr-defined]

import openai  # noqa: E402

client = openai.OpenAI(
    base_url=config["openai"],
    api_key="sk-test",
    max_retries=0,
    default_headers={"X-Run": config["run"]},
)
tracer = trace.get_tracer("conformance")
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def plain() -> None:
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "true"}],
        user="user-7",
    )


def tools() -> None:
    asked = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.chat.completions.create(model="gpt-4o-mini", messages=asked, tools=[WEATHER])
    call = first.choices[0].message.tool_calls[0]
    client.chat.completions.create(
        model="gpt-4o-mini",
        tools=[WEATHER],
        messages=[
            *asked,
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "rainy, 57F"},
        ],
    )


def stream() -> None:
    chunks = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Say hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    for _ in chunks:
        pass


def choices() -> None:
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello"}], n=2
    )


def responses() -> None:
    client.responses.create(model="gpt-4o-mini", input="null")


def error() -> None:
    with contextlib.suppress(openai.RateLimitError):
        client.chat.completions.create(
            model="fail-429", messages=[{"role": "user", "content": "Say hello"}]
        )


def embeddings() -> None:
    client.embeddings.create(model="text-embedding-3-small", input="hello")


def evaluate() -> None:
    """A judge's verdict on the first chat call, as the conventions' log event."""
    judged_span = genai_spans.ended[0]
    judged = judged_span.context
    response_id = (judged_span.attributes or {}).get("gen_ai.response.id")
    logs.get_logger("conformance").emit(
        _logs.LogRecord(
            timestamp=time.time_ns(),
            trace_id=judged.trace_id,
            span_id=judged.span_id,
            trace_flags=judged.trace_flags,
            event_name="gen_ai.evaluation.result",
            attributes={
                "gen_ai.evaluation.name": "relevance",
                "gen_ai.evaluation.score.value": 0.75,
                "gen_ai.evaluation.score.label": "relevant",
                "gen_ai.evaluation.explanation": "Answers the question.",
                **({"gen_ai.response.id": response_id} if response_id else {}),
            },
        )
    )


SCENARIOS = (plain, tools, stream, choices, responses, error, embeddings)
for scenario in [s for s in SCENARIOS if config.get("only") in (None, s.__name__)]:
    with tracer.start_as_current_span(f"scenario {scenario.__name__}") as span:
        failure = None
        try:
            scenario()
        except Exception as exc:  # a library that cannot instrument a call: reported, not fatal
            failure = f"{type(exc).__name__}: {exc}"
        context = span.get_span_context()
    print(
        json.dumps(
            {
                "scenario": scenario.__name__,
                "trace_id": f"{context.trace_id:032x}",
                "failure": failure,
            }
        ),
        flush=True,
    )
if genai_spans.ended:
    evaluate()
provider.force_flush()  # type: ignore[attr-defined]
logs.force_flush()
metrics.force_flush()
_logger_provider = _logs.get_logger_provider()
if hasattr(_logger_provider, "force_flush"):
    _logger_provider.force_flush()
