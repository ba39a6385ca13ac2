"""Where each completion field lives in the spans of each GenAI instrumentation: data, not code.

Every field lists the attribute names that carry it, the current semantic
convention first and the older spellings that instrumentations still emit
after it; the first one present wins. Sources, as abbreviated in the comments:

* [semconv]  OpenTelemetry GenAI semantic conventions, as published in
  ``opentelemetry-semantic-conventions`` 0.66b2
  (``semconv/_incubating/attributes/gen_ai_attributes.py``); [semconv-old]
  names that release marks deprecated.
* [otel-v2]  ``opentelemetry-instrumentation-openai-v2`` 2.4b0 (deprecated).
* [traceloop] OpenLLMetry: ``opentelemetry-semantic-conventions-ai`` 0.5.1
  (``SpanAttributes``), used by ``traceloop-sdk`` 0.62.
* [openlit]  ``openlit`` 1.45 (``openlit/semcov``).
* [oi]       OpenInference: ``openinference-semantic-conventions`` 0.1.42
  (``SpanAttributes``: ``llm.*``, ``openinference.span.kind``).
* [sentry]   the aliases Sentry's relay conventions list for cache tokens.
"""

from __future__ import annotations

from typing import Any

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "operation": (
        "gen_ai.operation.name",  # [semconv] chat, embeddings, invoke_agent ...
        "llm.request.type",  # [traceloop] chat, completion, embedding, rerank
        "openinference.span.kind",  # [oi] LLM, CHAIN, TOOL, AGENT, EMBEDDING, RETRIEVER ...
        "traceloop.span.kind",  # [traceloop] workflow, task, agent, tool
    ),
    "provider": (
        "gen_ai.provider.name",  # [semconv]
        "gen_ai.system",  # [semconv-old], [otel-v2], [traceloop], [openlit]
        "llm.provider",  # [oi]
        "llm.system",  # [oi]
    ),
    "request_model": (
        "gen_ai.request.model",  # [semconv]
        "llm.request.model",  # [traceloop] before 0.30
    ),
    "response_model": (
        "gen_ai.response.model",  # [semconv]
        "llm.response.model",  # [traceloop] before 0.30
        "llm.model_name",  # [oi]: the model the response names
    ),
    "response_id": ("gen_ai.response.id",),  # [semconv], [traceloop], [openlit]
    "finish_reasons": (
        "gen_ai.response.finish_reasons",  # [semconv] string[]
        "gen_ai.response.finish_reason",  # [openlit] before 1.30: one string
    ),
    "input_tokens": (
        "gen_ai.usage.input_tokens",  # [semconv]
        "gen_ai.usage.prompt_tokens",  # [semconv-old], [traceloop]
        "llm.usage.prompt_tokens",  # [traceloop] before 0.30
        "llm.token_count.prompt",  # [oi]
    ),
    "output_tokens": (
        "gen_ai.usage.output_tokens",  # [semconv]
        "gen_ai.usage.completion_tokens",  # [semconv-old], [traceloop]
        "llm.usage.completion_tokens",  # [traceloop] before 0.30
        "llm.token_count.completion",  # [oi]
    ),
    "cache_read_tokens": (
        "gen_ai.usage.cache_read.input_tokens",  # [semconv]
        "gen_ai.usage.cache_read_input_tokens",  # [traceloop], [sentry] underscore form
        "gen_ai.usage.input_tokens.cached",  # [sentry]
        "gen_ai.usage.cached_tokens",  # [openlit]
        "llm.token_count.prompt_details.cache_read",  # [oi]
    ),
    "cache_write_tokens": (
        "gen_ai.usage.cache_creation.input_tokens",  # [semconv]
        "gen_ai.usage.cache_creation_input_tokens",  # [traceloop], [sentry] underscore form
        "gen_ai.usage.input_tokens.cache_write",  # [sentry]
        "gen_ai.usage.cache_write.input_tokens",  # spelling some SDKs use
        "llm.token_count.prompt_details.cache_write",  # [oi]
    ),
    "reasoning_tokens": (
        "gen_ai.usage.reasoning.output_tokens",  # [semconv]
        "gen_ai.usage.reasoning_tokens",  # [openlit], [traceloop]
        "gen_ai.usage.completion_tokens_details.reasoning_tokens",  # [openlit] older
        "llm.usage.reasoning_tokens",  # [traceloop] older
        "llm.token_count.completion_details.reasoning",  # [oi]
    ),
    # The conventions' own id wins over the generic session attribute.
    "conversation": (
        "gen_ai.conversation.id",  # [semconv]
        "session.id",  # [oi], general semconv
        "traceloop.association.properties.session_id",  # [traceloop] association properties
        "traceloop.association.properties.conversation_id",  # [traceloop]
    ),
    "user": (
        "gen_ai.user",  # some SDKs
        "gen_ai.request.user",  # [traceloop], [openlit]: the OpenAI `user` parameter
        "enduser.id",  # [semconv-old] general
        "user.id",  # [oi], general semconv
        "traceloop.association.properties.user_id",  # [traceloop] association properties
    ),
    "agent": ("gen_ai.agent.name",),  # [semconv]
    "error_type": ("error.type",),  # [semconv] exception class, HTTP status, or _OTHER
}

# Values of the operation attributes above, lowercased, that are one model inference.
INFERENCE_OPERATIONS = frozenset(
    {
        "chat",  # [semconv]
        "text_completion",  # [semconv]
        "generate_content",  # [semconv]
        "completion",  # [traceloop] llm.request.type
        "llm",  # [oi] openinference.span.kind
        "responses",  # Responses API spellings of some instrumentations
        "response",
    }
)
# Operations that are trace context around or beside inferences, never completions
# themselves: an agent span around a chat span would count the chat twice.
CONTEXT_OPERATIONS = frozenset(
    {
        "invoke_agent",  # [semconv]
        "create_agent",  # [semconv]
        "execute_tool",  # [semconv]
        "invoke_workflow",  # [semconv]
        "embeddings",  # [semconv]
        "retrieval",  # [semconv]
        "embedding",  # [traceloop], [oi]
        "rerank",  # [traceloop]
        "reranker",  # [oi]
        "retriever",  # [oi]
        "chain",  # [oi]
        "tool",  # [oi], [traceloop]
        "agent",  # [oi], [traceloop]
        "guardrail",  # [oi]
        "evaluator",  # [oi]
        "workflow",  # [traceloop]
        "task",  # [traceloop]
    }
)

# Message content, as attributes (semconv: JSON strings on spans; structured on events).
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"  # [semconv] list of parts
INPUT_MESSAGES = "gen_ai.input.messages"  # [semconv] list of {role, parts, name}
OUTPUT_MESSAGES = "gen_ai.output.messages"  # [semconv] list of {role, parts, finish_reason}
# Indexed message prefixes, one attribute per field: ``PREFIX.N.role``, ``.content``,
# ``.tool_calls.M.{id,name,arguments}``, ``.tool_call_id``, ``.finish_reason``.
INDEXED_PROMPTS = ("gen_ai.prompt", "llm.prompts")  # [traceloop] current, before 0.30
INDEXED_COMPLETIONS = ("gen_ai.completion", "llm.completions")  # [traceloop]
# [oi] ``llm.input_messages.N.message.role`` / ``.content`` / ``.name`` /
# ``.tool_call_id`` / ``.contents.M.message_content.{type,text,image.image.url}`` /
# ``.tool_calls.M.tool_call.{id,function.name,function.arguments}``.
OI_INPUT = "llm.input_messages"
OI_OUTPUT = "llm.output_messages"
OI_INVOCATION_PARAMETERS = "llm.invocation_parameters"  # [oi] JSON: the request's model ...
# Whole-prompt attributes of older OpenLIT versions and span events (plain text).
LEGACY_PROMPT = "gen_ai.prompt"  # [openlit] event gen_ai.content.prompt, attribute
LEGACY_COMPLETION = "gen_ai.completion"  # [openlit] event gen_ai.content.completion

# Event names (span events and log records).
DETAILS_EVENT = "gen_ai.client.inference.operation.details"  # [semconv] content on an event
EVALUATION_EVENT = "gen_ai.evaluation.result"  # [semconv]
CHOICE_EVENT = "gen_ai.choice"  # [semconv-old], [otel-v2] default mode
# gen_ai.system.message / user / assistant / tool: [semconv-old], [otel-v2] default mode
MESSAGE_EVENT_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
CONTENT_PROMPT_EVENT = "gen_ai.content.prompt"  # [openlit] older
CONTENT_COMPLETION_EVENT = "gen_ai.content.completion"  # [openlit] older
EVALUATION = {
    "name": "gen_ai.evaluation.name",  # [semconv]
    "score": "gen_ai.evaluation.score.value",  # [semconv]
    "label": "gen_ai.evaluation.score.label",  # [semconv]
    "explanation": "gen_ai.evaluation.explanation",  # [semconv]
    "response_id": "gen_ai.response.id",  # [semconv]
}


def first(attrs: dict[str, Any], field: str) -> Any:
    """The value of ``field``: the first of its attribute names present and not empty."""
    for name in ATTRIBUTES[field]:
        value = attrs.get(name)
        if value is not None and value != "" and value != []:
            return value
    return None
