"""Chat messages from the shapes GenAI instrumentations write them in, kept faithfully.

Each shape becomes ``{"role", "content", "parts"?, "name"?, "finish_reason"?}``
(``llmloop.events.ChatMessage``): ``content`` is the message's text parts joined,
verbatim; ``parts`` keeps every part (tool calls, tool results, reasoning, blobs,
URIs, files) when there is more than one text. JSON is decoded only where a
convention says a value *is* JSON (the message lists of ``gen_ai.input.messages``);
a text is never decoded, so a prompt ``true`` stays the string ``true``.
"""

from __future__ import annotations

from typing import Any

import orjson

from llmloop_ingest import semconv

ROLES = {"system", "user", "assistant", "tool", "developer"}
_ROLE_ALIASES = {"model": "assistant", "ai": "assistant", "human": "user", "function": "tool"}
# OpenAI's own part types (chat content lists, Responses API items) -> semconv types.
_TEXT_TYPES = {"text", "input_text", "output_text"}
_PART_FIELDS = ("id", "name", "mime_type", "modality", "uri", "file_id")


def as_text(value: Any) -> str:
    """A value that is meant as text: strings verbatim, anything else as JSON text."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):  # nested past orjson's limit
        return str(value)[:100_000]


def decode_list(value: Any) -> list[Any] | None:
    """A JSON list attribute (a string on spans, structured on events), or None."""
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    return value if isinstance(value, list) else None


def decode_object(value: str) -> dict[str, Any] | None:
    """A JSON object attribute, or None when ``value`` is not one."""
    try:
        decoded = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return decoded if isinstance(decoded, dict) else None


def role(value: Any, default: str = "user") -> str:
    name = str(value or default).lower()
    name = _ROLE_ALIASES.get(name, name)
    return name if name in ROLES else default


def part(raw: Any) -> dict[str, Any]:
    """One semconv part (or an OpenAI content part) as a ``MessagePart`` dict."""
    if not isinstance(raw, dict):
        return {"type": "text", "content": as_text(raw)}
    kind = str(raw.get("type") or "text")
    out: dict[str, Any] = {"type": kind}
    if kind in _TEXT_TYPES:
        out["type"] = "text"
        out["content"] = as_text(raw.get("content", raw.get("text", "")))
        return out
    if kind == "image_url":  # OpenAI chat content part
        url = raw.get("image_url")
        url = url.get("url") if isinstance(url, dict) else url
        return {"type": "uri", "modality": "image", "uri": as_text(url)[:8192]}
    for name in _PART_FIELDS:
        if raw.get(name) not in (None, ""):
            out[name] = as_text(raw[name])
    if kind == "tool_call":
        out["arguments"] = as_text(raw.get("arguments"))
    elif kind == "tool_call_response":
        out["response"] = as_text(raw.get("response", raw.get("result")))
    elif kind in ("reasoning", "blob"):
        out["content"] = as_text(raw.get("content"))
    elif kind not in ("uri", "file"):  # a type this llmloop does not know: keep it all
        rest = {k: v for k, v in raw.items() if k not in ("type", *_PART_FIELDS)}
        if rest:
            out["content"] = as_text(rest)
    return out


def message(
    role_name: Any,
    parts: list[dict[str, Any]],
    *,
    name: Any = None,
    finish_reason: Any = None,
    default_role: str = "user",
) -> dict[str, Any]:
    """A message from its parts; its text is the text parts only."""
    texts = [p.get("content", "") for p in parts if p["type"] == "text"]
    out: dict[str, Any] = {"role": role(role_name, default_role), "content": "\n".join(texts)}
    if len(parts) > 1 or any(p["type"] != "text" for p in parts):
        out["parts"] = parts
    if name not in (None, ""):
        out["name"] = as_text(name)[:256]
    if finish_reason not in (None, ""):
        out["finish_reason"] = as_text(finish_reason)[:256]
    return out


def from_semconv(value: Any, default_role: str = "user") -> list[dict[str, Any]]:
    """``gen_ai.input.messages`` / ``gen_ai.output.messages``: a list of messages with parts.

    A value that is not such a list (older instrumentations put plain text there)
    is one message holding it verbatim.
    """
    items = decode_list(value)
    if items is None:
        return [] if value in (None, "") else [message(default_role, [part(as_text(value))])]
    out = []
    for item in items:
        if not isinstance(item, dict):
            out.append(message(default_role, [part(item)]))
            continue
        raw_parts = item.get("parts", item.get("content"))
        if isinstance(raw_parts, list):
            parts = [part(p) for p in raw_parts]
        else:  # content as a plain string (OpenAI style)
            parts = [part(raw_parts)] if raw_parts not in (None, "") else []
        parts += tool_calls(item.get("tool_calls"))
        out.append(
            message(
                item.get("role"),
                parts,
                name=item.get("name"),
                finish_reason=item.get("finish_reason"),
                default_role=default_role,
            )
        )
    return out


def system_instructions(value: Any) -> list[dict[str, Any]]:
    """``gen_ai.system_instructions``: a list of parts (or, from older emitters, text)."""
    items = decode_list(value)
    if items is None:
        return [] if value in (None, "") else [message("system", [part(as_text(value))])]
    return [message("system", [part(p) for p in items])] if items else []


def tool_calls(value: Any) -> list[dict[str, Any]]:
    """OpenAI-style ``tool_calls`` ({id, function: {name, arguments}}) as tool_call parts."""
    out = []
    for call in value if isinstance(value, list) else []:
        if not isinstance(call, dict):
            continue
        function = call.get("function") if isinstance(call.get("function"), dict) else call
        raw = {"type": "tool_call", "id": call.get("id"), "name": function.get("name")}
        raw["arguments"] = function.get("arguments")
        out.append(part(raw))
    return out


def legacy_text(value: Any, default_role: str) -> list[dict[str, Any]]:
    """A whole-prompt attribute (``gen_ai.prompt``): a JSON list of role messages, else text."""
    items = decode_list(value)
    if items and all(isinstance(m, dict) and "role" in m for m in items):
        return from_semconv(items, default_role)
    if value in (None, ""):
        return []
    return [message(default_role, [part(as_text(value))])]


def event_body(role_name: str, body: Any) -> dict[str, Any]:
    """A deprecated per-message event (``gen_ai.user.message`` ...).

    Its body is ``{content, tool_calls, id}``; a tool message answers the call ``id``.
    """
    if not isinstance(body, dict):
        return message(role_name, [part(as_text(body))] if body not in (None, "") else [])
    content = body.get("content", body.get("message"))
    if isinstance(content, list):
        parts = [part(p) for p in content]
    else:
        parts = [part(as_text(content))] if content not in (None, "") else []
    if role_name == "tool" and body.get("id"):  # a tool result answers a call id
        text = "\n".join(p.get("content", "") for p in parts)
        parts = [{"type": "tool_call_response", "id": as_text(body["id"]), "response": text}]
    parts += tool_calls(body.get("tool_calls"))
    return message(body.get("role") or role_name, parts, name=body.get("name"))


def choice_body(body: Any) -> dict[str, Any]:
    """A deprecated ``gen_ai.choice`` event: ``{index, finish_reason, message: {...}}``."""
    if not isinstance(body, dict):
        return message("assistant", [part(as_text(body))], default_role="assistant")
    inner = body.get("message")
    if isinstance(inner, str):  # a span event can only hold the message object as JSON
        decoded = decode_object(inner)  # only a message object: a JSON answer stays text
        is_message = decoded is not None and bool({"content", "role", "tool_calls"} & set(decoded))
        inner = decoded if is_message else {"content": inner}
    inner = inner if isinstance(inner, dict) else {"content": inner}
    out = event_body("assistant", inner)
    out["role"] = role(inner.get("role"), "assistant")
    if body.get("finish_reason"):
        out["finish_reason"] = as_text(body["finish_reason"])[:256]
    return out


def indexed(attrs: dict[str, Any], prefix: str, default_role: str) -> list[dict[str, Any]]:
    """OpenLLMetry's one attribute per field: ``gen_ai.prompt.0.role`` / ``.content`` ..."""
    out = []
    i = 0
    while any(f"{prefix}.{i}.{k}" in attrs for k in ("content", "role", "tool_calls.0.name")):
        at = f"{prefix}.{i}."
        parts = []
        content = attrs.get(at + "content")
        if content not in (None, ""):
            parts.append(part(as_text(content)))
        if attrs.get(at + "tool_call_id"):
            parts = [
                {
                    "type": "tool_call_response",
                    "id": as_text(attrs[at + "tool_call_id"]),
                    "response": as_text(content),
                }
            ]
        j = 0
        while f"{at}tool_calls.{j}.name" in attrs:
            call = {k: attrs.get(f"{at}tool_calls.{j}.{k}") for k in ("id", "name", "arguments")}
            parts.append(part({"type": "tool_call", **call}))
            j += 1
        out.append(
            message(
                attrs.get(at + "role"),
                parts,
                finish_reason=attrs.get(at + "finish_reason"),
                default_role=default_role,
            )
        )
        i += 1
    return out


def openinference(attrs: dict[str, Any], prefix: str, default_role: str) -> list[dict[str, Any]]:
    """OpenInference's ``llm.input_messages.N.message.*`` attributes."""
    out = []
    i = 0
    while any(k.startswith(f"{prefix}.{i}.message.") for k in attrs):
        at = f"{prefix}.{i}.message."
        parts = []
        j = 0
        while f"{at}contents.{j}.message_content.type" in attrs:
            c = f"{at}contents.{j}.message_content."
            if attrs[c + "type"] == "image":
                parts.append(
                    part({"type": "image_url", "image_url": attrs.get(c + "image.image.url")})
                )
            else:
                parts.append(part(as_text(attrs.get(c + "text"))))
            j += 1
        if not parts and attrs.get(at + "content") not in (None, ""):
            parts.append(part(as_text(attrs[at + "content"])))
        if attrs.get(at + "tool_call_id"):
            parts = [
                {
                    "type": "tool_call_response",
                    "id": as_text(attrs[at + "tool_call_id"]),
                    "response": "\n".join(p.get("content", "") for p in parts),
                }
            ]
        j = 0
        while f"{at}tool_calls.{j}.tool_call.function.name" in attrs:
            c = f"{at}tool_calls.{j}.tool_call."
            call = {
                "type": "tool_call",
                "id": attrs.get(c + "id"),
                "name": attrs.get(c + "function.name"),
                "arguments": attrs.get(c + "function.arguments"),
            }
            parts.append(part(call))
            j += 1
        out.append(
            message(
                attrs.get(at + "role"),
                parts,
                name=attrs.get(at + "name"),
                default_role=default_role,
            )
        )
        i += 1
    return out


def from_attributes(attrs: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Prompt messages and output messages (choices) from a span's or record's attributes."""
    given = from_semconv(attrs.get(semconv.INPUT_MESSAGES))
    # Some emitters (OpenLIT 1.45) write the system message both as instructions and as
    # the first input message: it is one message.
    system = [
        m
        for m in system_instructions(attrs.get(semconv.SYSTEM_INSTRUCTIONS))
        if not any(g["role"] == "system" and g["content"] == m["content"] for g in given)
    ]
    prompt = system + given
    choices = from_semconv(attrs.get(semconv.OUTPUT_MESSAGES), "assistant")
    for prefix in semconv.INDEXED_PROMPTS:
        if len(prompt) == 0:
            prompt = indexed(attrs, prefix, "user")
    for prefix in semconv.INDEXED_COMPLETIONS:
        if not choices:
            choices = indexed(attrs, prefix, "assistant")
    if not prompt:
        prompt = openinference(attrs, semconv.OI_INPUT, "user")
    if not choices:
        choices = openinference(attrs, semconv.OI_OUTPUT, "assistant")
    if not prompt and isinstance(attrs.get(semconv.LEGACY_PROMPT), str):
        prompt = legacy_text(attrs[semconv.LEGACY_PROMPT], "user")
    if not choices and isinstance(attrs.get(semconv.LEGACY_COMPLETION), str):
        choices = legacy_text(attrs[semconv.LEGACY_COMPLETION], "assistant")
    return prompt, choices
