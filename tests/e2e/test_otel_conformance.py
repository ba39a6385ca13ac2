"""The real ``openai`` client, instrumented by each OpenTelemetry GenAI library, into `llmloop up`.

Each library runs in its own venv (``scripts/otel-envs.sh``, cached under
``.otel-envs/``): their pins conflict (openlit needs ``openai<3``; the deprecated
openai-v2 needs ``opentelemetry-util-genai`` 0.4b0; traceloop-sdk installs only
``--no-deps``), so the instrumented client (``otel_client.py``) runs in a
subprocess of that venv against a local fake OpenAI server
(``llmloop.testing.fake_openai``) and exports OTLP/HTTP to one real
``llmloop up``. The tests read the stored rows back with ``llmloop query`` and
assert them field by field. ``CAPS`` records what each library sends (the
README's table says the same to users).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from llmloop.testing.fake_openai import FakeOpenAI
from llmloop.testing.up import Up

ROOT = Path(__file__).resolve().parents[2]
ENVS = ROOT / ".otel-envs"
LLMLOOP = str(Path(sys.executable).with_name("llmloop"))
PLAIN_PROMPT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "true"}]
TOOL_CALL = {"type": "tool_call", "id": "call_1", "name": "get_weather"}

# What each library sends, as measured with the versions scripts/otel-envs.sh pins.
FULL = {
    "response_id": True,  # gen_ai.response.id
    "cache": True,  # cached input tokens
    "reasoning": True,  # reasoning output tokens
    "responses": True,  # the Responses API is instrumented (prompt and answer)
    "choices_apart": True,  # n > 1 choices as separate output messages
    "tool_call_in_prompt": True,  # the assistant's tool call is in the next call's prompt
    "user": False,  # the OpenAI `user` parameter as the user id
}
CAPS: dict[tuple[str, str], dict[str, Any]] = {
    ("genai-openai", "default"): FULL,
    # With OpenLLMetry's instrumentation on the same client: one row per call, either copy.
    ("genai-openai", "two"): {**FULL, "user": None},
    # Content only in log events (gen_ai.user.message / gen_ai.choice): joined by the
    # processor. No cached or reasoning tokens; the Responses API is not instrumented.
    ("openai-v2", "default"): {**FULL, "cache": False, "reasoning": False, "responses": False},
    ("openai-v2", "latest"): {**FULL, "cache": False, "reasoning": False, "responses": False},
    ("traceloop", "default"): {**FULL, "user": True},
    # openlit joins n choices into one text and leaves the assistant's tool call out of
    # the next prompt; reasoning tokens only on the Responses API.
    ("openlit", "default"): {
        **FULL,
        "user": True,
        "choices_apart": False,
        "tool_call_in_prompt": False,
        "reasoning": False,
    },
    # No gen_ai.response.id (so no dedup on it); the Responses API input is not
    # recorded; the request model is read from llm.invocation_parameters.
    ("openinference", "default"): {**FULL, "response_id": False, "responses": "answer only"},
}


@pytest.fixture(scope="module")
def envs() -> Path:
    """The venvs, built once (a no-op when current); CI builds them from PyPI."""
    libraries = sorted({library for library, _ in CAPS})
    subprocess.run([str(ROOT / "scripts" / "otel-envs.sh"), *libraries], check=True, timeout=1500)
    return ENVS


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory):
    server = Up(tmp_path_factory.mktemp("otel") / "data")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI() as server:
        yield server


def run_client(envs: Path, up: Up, fake: FakeOpenAI, library: str, mode: str) -> dict[str, str]:
    """Runs the instrumented client; the trace id of each scenario."""
    key = (up.data_dir / "local.key").read_text().strip()
    config = {
        "library": library,
        "mode": mode,
        "ingest": up.url,
        "key": key,
        "openai": fake.url,
        "run": f"{library}-{mode}",
    }
    done = subprocess.run(
        [str(envs / library / "bin" / "python"), str(Path(__file__).with_name("otel_client.py"))],
        input=json.dumps(config),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [line["failure"] for line in lines] == [None] * 7, lines
    return {line["scenario"]: line["trace_id"] for line in lines}


def rows(up: Up, sql: str, **params: str) -> list[dict[str, Any]]:
    args = [LLMLOOP, "query", sql, "--data-dir", str(up.data_dir), "--format", "JSONEachRow"]
    for name, value in params.items():
        args += ["--param", f"{name}={value}"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def wait_rows(up: Up, sql: str, ready, timeout: float = 60, **params: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = rows(up, sql, **params)
        if ready(found):
            return found
        assert time.monotonic() < deadline, f"not ready after {timeout} s: {params} {found}"
        time.sleep(0.5)


COLUMNS = (
    "toString(event_id) AS id, trace_id, span_id, parent_id, model, request_model, "
    "response_model, response_id, prompt_format, prompt, completion, choices, finish_reasons, "
    "prompt_tokens, completion_tokens, cache_read_tokens, reasoning_tokens, error_type, user_id, "
    "attributes"
)
EXPECTED_ROWS = {"plain": 1, "tools": 2, "stream": 1, "choices": 1, "responses": 1, "error": 1}


def stored(up: Up, traces: dict[str, str], caps: dict[str, Any]) -> dict[str, list[dict]]:
    """The completion rows of each scenario, once all arrived (and content was joined)."""
    expected = {**EXPECTED_ROWS, "responses": 1 if caps["responses"] else 0}

    def ready(found: list[dict]) -> bool:
        by_trace = {t: [r for r in found if r["trace_id"] == t] for t in traces.values()}
        counts_ok = all(len(by_trace[traces[s]]) == n for s, n in expected.items())
        # Log content joined too (where a library sends it there).
        chats = {traces[s] for s in ("plain", "tools", "stream", "choices")}
        return counts_ok and all(r["prompt"] for r in found if r["trace_id"] in chats)

    found = wait_rows(
        up,
        f"SELECT {COLUMNS} FROM completions WHERE trace_id IN {{t:Array(String)}} ORDER BY ts",
        ready,
        timeout=90,
        t=json.dumps(list(traces.values())).replace('"', "'"),
    )
    return {s: [r for r in found if r["trace_id"] == t] for s, t in traces.items()}


def parts(messages: str) -> list[dict]:
    return [p for m in json.loads(messages or "[]") for p in m.get("parts", [])]


def check_run(up: Up, traces: dict[str, str], caps: dict[str, Any], run: str) -> dict:
    by = stored(up, traces, caps)
    (plain,) = by["plain"]
    assert json.loads(plain["prompt"]) == PLAIN_PROMPT  # "true" stays the string "true"
    assert plain["completion"] == '{"answer": 42}'  # a JSON-looking answer, verbatim
    assert (plain["model"], plain["request_model"]) == ("gpt-4o-mini-2024-07-18", "gpt-4o-mini")
    assert (plain["prompt_tokens"], plain["completion_tokens"]) == (12, 5)
    assert plain["cache_read_tokens"] == (4 if caps["cache"] else None)
    assert plain["reasoning_tokens"] == (2 if caps["reasoning"] else None)
    if caps["response_id"]:
        assert plain["response_id"].startswith(f"chatcmpl-{run}-")
    else:
        assert plain["response_id"] == ""
    assert plain["finish_reasons"] in (["stop"], []) and plain["error_type"] == ""
    assert plain["span_id"] and plain["parent_id"]  # the scenario span is its parent
    assert plain["attributes"]["service"] == f"conformance-{run}"
    if caps["user"] is not None:
        assert plain["user_id"] == ("user-7" if caps["user"] else "")

    asked, answered = by["tools"]
    (call,) = parts(asked["choices"])
    assert {k: call[k] for k in TOOL_CALL} == TOOL_CALL
    assert json.loads(call["arguments"]) == {"city": "Paris"} and asked["completion"] == ""
    assert answered["completion"] == "It is rainy in Paris."
    sent = parts(answered["prompt"])
    result = [p for p in sent if p["type"] == "tool_call_response"]
    assert [(p["id"], p["response"]) for p in result] == [("call_1", "rainy, 57F")]
    assert any(p["type"] == "tool_call" for p in sent) == caps["tool_call_in_prompt"]

    (streamed,) = by["stream"]
    assert (streamed["prompt"], streamed["completion"]) == ("Say hello", "Hello world")

    (many,) = by["choices"]
    texts = [m["content"] for m in json.loads(many["choices"] or "[]")]
    if caps["choices_apart"]:
        assert texts == ["Hello world", "Hello world (2)"] and many["completion"] == "Hello world"
    if caps["responses"]:
        (response,) = by["responses"]
        assert response["completion"] == "Hello world"
        assert response["prompt"] == ("null" if caps["responses"] is True else "")
    (failed,) = by["error"]
    assert "RateLimitError" in failed["error_type"] and failed["completion"] == ""
    assert failed["model"] == "fail-429"  # the request model: nothing came back
    assert by["embeddings"] == []  # an embeddings call is not a completion
    return plain


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("library,mode", list(CAPS), ids=lambda v: v)
def test_instrumented_client_is_stored_field_by_field(envs, up, fake, library, mode):
    caps = CAPS[(library, mode)]
    traces = run_client(envs, up, fake, library, mode)
    plain = check_run(up, traces, caps, f"{library}-{mode}")
    # Cost uses the cached-token price (gpt-4o-mini: 0.15 / 0.075 cached / 0.60 per 1M).
    (enriched,) = wait_rows(
        up,
        "SELECT cost_usd FROM completion_enrichments WHERE event_id = {id:UUID}",
        lambda found: len(found) == 1,
        timeout=120,
        id=plain["id"],
    )
    cached = 4 if caps["cache"] else 0
    expected = ((12 - cached) * 0.15 + cached * 0.075 + 5 * 0.60) / 1e6
    assert enriched["cost_usd"] == pytest.approx(expected)
    if mode == "two":  # two instrumentations on one client: every call stored once
        ids = rows(
            up,
            "SELECT response_id, count() AS n FROM completions WHERE trace_id = {t:String} "
            "GROUP BY response_id",
            t=traces["tools"],
        )
        assert sorted(r["n"] for r in ids) == [1, 1]
        # The verdict below may name the copy that was dropped: the writer points it
        # at the stored one by the response id it carries.
    # The judge's verdict on the first call (a gen_ai.evaluation.result log record).
    (verdict,) = wait_rows(
        up,
        "SELECT kind, source, evaluation, label, value, comment FROM feedback "
        "WHERE completion_id = {id:UUID}",
        lambda found: len(found) == 1,
        id=plain["id"],
    )
    assert verdict == {
        "kind": "score",
        "source": "judge",
        "evaluation": "relevance",
        "label": "relevant",
        "value": 0.75,
        "comment": "Answers the question.",
    }
