"""A local OpenAI-compatible HTTP server with scripted answers, for instrumentation tests.

The real ``openai`` client talks to it as to the API: chat completions (plain,
``n`` choices, tool calls, streaming with usage), the Responses API and
embeddings; a model named ``fail-429`` (any status) answers that error. Answers
are deterministic so tests can assert what was stored field by field:

* a user message ``true`` is answered ``{"answer": 42}`` (JSON-looking text);
* with ``tools`` and a user message last, the answer is a call of the first tool
  with ``{"city": "Paris"}``; after the tool's result, ``It is rainy in Paris.``;
* anything else is answered ``Hello world``.

Usage always reports 12 input tokens (4 of them cached), 5 output tokens (2 of
them reasoning). Response ids are ``chatcmpl-RUN-N`` / ``resp-RUN-N`` with RUN
from the ``X-Run`` request header, so parallel clients are told apart.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

USAGE = {"prompt_tokens": 12, "completion_tokens": 5, "cached": 4, "reasoning": 2}
_counter = itertools.count(1)


def reply(messages: list[dict[str, Any]], tools: list[Any] | None) -> dict[str, Any]:
    """The assistant message answering ``messages``."""
    last = messages[-1] if messages else {}
    if tools and last.get("role") == "user":
        name = tools[0].get("function", {}).get("name", "tool")
        call = {
            "id": "call_1",
            "type": "function",
            "function": {"name": name, "arguments": '{"city": "Paris"}'},
        }
        return {"role": "assistant", "content": None, "tool_calls": [call]}
    if last.get("role") == "tool":
        return {"role": "assistant", "content": "It is rainy in Paris."}
    content = last.get("content")
    text = content if isinstance(content, str) else ""
    return {"role": "assistant", "content": '{"answer": 42}' if text == "true" else "Hello world"}


def _model(name: str) -> str:
    return f"{name}-2024-07-18" if name == "gpt-4o-mini" else name


class _Handler(BaseHTTPRequestHandler):
    server: FakeOpenAI

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        run = self.headers.get("X-Run", "x")
        self.server.requests.append((self.path, body))
        model = str(body.get("model", ""))
        if model.startswith("fail-"):
            status = int(model.removeprefix("fail-"))
            error = {"message": f"scripted {status}", "type": "scripted", "code": str(status)}
            self._json(status, {"error": error})
        elif self.path.endswith("/chat/completions"):
            self._chat(body, run)
        elif self.path.endswith("/responses"):
            self._responses(body, run)
        elif self.path.endswith("/embeddings"):
            data = [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}]
            usage = {"prompt_tokens": 3, "total_tokens": 3}
            self._json(200, {"object": "list", "data": data, "model": model, "usage": usage})
        else:
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def _chat(self, body: dict[str, Any], run: str) -> None:
        message = reply(body.get("messages", []), body.get("tools"))
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        ident = f"chatcmpl-{run}-{next(_counter)}"
        usage = {
            "prompt_tokens": USAGE["prompt_tokens"],
            "completion_tokens": USAGE["completion_tokens"],
            "total_tokens": USAGE["prompt_tokens"] + USAGE["completion_tokens"],
            "prompt_tokens_details": {"cached_tokens": USAGE["cached"]},
            "completion_tokens_details": {"reasoning_tokens": USAGE["reasoning"]},
        }
        head = {"id": ident, "created": int(time.time()), "model": _model(body["model"])}
        if body.get("stream"):
            self._stream(head, message, finish, usage, body)
            return
        choices = []
        for i in range(int(body.get("n") or 1)):
            m = dict(message)
            if i and m.get("content"):
                m["content"] = f"{m['content']} ({i + 1})"
            choices.append({"index": i, "message": m, "finish_reason": finish, "logprobs": None})
        self._json(200, {**head, "object": "chat.completion", "choices": choices, "usage": usage})

    def _stream(
        self,
        head: dict[str, Any],
        message: dict[str, Any],
        finish: str,
        usage: dict[str, Any],
        body: dict[str, Any],
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        text = message.get("content") or ""
        pieces = [{"role": "assistant", "content": ""}] + [
            {"content": w} for w in text.replace(" ", "\0 ").split("\0")
        ]
        chunks = [{"index": 0, "delta": d, "finish_reason": None} for d in pieces]
        chunks.append({"index": 0, "delta": {}, "finish_reason": finish})
        for choice in chunks:
            self._event({**head, "object": "chat.completion.chunk", "choices": [choice]})
        if (body.get("stream_options") or {}).get("include_usage"):
            self._event({**head, "object": "chat.completion.chunk", "choices": [], "usage": usage})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _event(self, data: dict[str, Any]) -> None:
        self.wfile.write(b"data: " + json.dumps(data).encode() + b"\n\n")
        self.wfile.flush()

    def _responses(self, body: dict[str, Any], run: str) -> None:
        given = body.get("input")
        messages = [{"role": "user", "content": given}] if isinstance(given, str) else given or []
        text = reply(messages, None)["content"]
        ident = f"resp-{run}-{next(_counter)}"
        output = [
            {
                "type": "message",
                "id": f"msg-{ident}",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ]
        usage = {
            "input_tokens": USAGE["prompt_tokens"],
            "output_tokens": USAGE["completion_tokens"],
            "total_tokens": USAGE["prompt_tokens"] + USAGE["completion_tokens"],
            "input_tokens_details": {"cached_tokens": USAGE["cached"]},
            "output_tokens_details": {"reasoning_tokens": USAGE["reasoning"]},
        }
        self._json(
            200,
            {
                "id": ident,
                "object": "response",
                "created_at": int(time.time()),
                "model": _model(body["model"]),
                "status": "completed",
                "output": output,
                "usage": usage,
                "parallel_tool_calls": True,
                "tool_choice": "auto",
                "tools": [],
                "error": None,
                "incomplete_details": None,
                "instructions": body.get("instructions"),
                "metadata": {},
                "text": {"format": {"type": "text"}},
            },
        )


class FakeOpenAI(ThreadingHTTPServer):
    """The server on a free loopback port, served from a thread (``with FakeOpenAI() as f``)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, Any]] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
