"""Tenant isolation and SQL parameter binding, attacked from the outside.

Two projects, ``alpha-shop`` (A, the attacker) and ``bravo-bank`` (B, the victim), with
keys made by the real key store through the real CLI. What is proved:

* A key of A only ever writes as A: a ``project_id`` in the JSON body, a project header
  or query parameter, or an OTLP resource / span attribute that names B changes nothing;
  the bus and the ClickHouse rows say A.
* A key of A reads nothing of B through any HTTP route: every route the ingest app
  serves (found by walking ``app.routes``, OpenAPI and docs routes included, plus
  ``/_local/query`` that ``llmloop up`` adds) is called with every HTTP method, with A's
  key in each place a key can go, and without a key; no answer holds any of B's marker
  strings, event ids or project id. A positive control (the operator's local token on
  ``/_local/query``) shows the same probe does see B's data when it is there.
* ``/metrics`` is unauthenticated, as Prometheus scrape endpoints are by convention, so
  it carries service-level series only (path, status, event type, reject reason) and no
  project label: per-project series would tell any scraper which tenants exist and how
  much each sends. Langfuse, for one, serves per-project figures only from its
  authenticated public API (``/api/public/metrics``, Basic auth with the project's own
  keys); llmloop keeps them in ClickHouse, read by operators, and the scrape endpoint
  stays tenant-blind.
* A revoked key gets 401 on every write route; keys are stored only as SHA-256 hashes
  (no file of the key store, WAL included, holds a raw key).
* No CLI command takes a project API key: reading commands (``query``, ``report``,
  ``datasets``, ``models``, ``alerts dlq list``, ``keys list``) are operator paths
  authorised by access to the data dir / store (or, while ``up`` runs, the 0600
  ``runtime.json`` token), and the SDK, the only thing that holds a project key, has no
  read method.
* Label and attribute values reach ClickHouse only as bound parameters or Arrow data:
  the real processor (sink, enricher, statistics, metric write-back) on a real chDB
  store, fed hostile model names, prompt versions, attribute keys and values, tags,
  comments, alert labels and retrain fields; every SQL text the engine receives is
  recorded and none contains a hostile value, which all come back verbatim.

* Feedback and event ids never reach across projects downstream: A's feedback on B's
  completion id counts in no metric of B's and makes no training pair of B's; an event
  id that A reuses does not hide B's event from the store.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import re
import stat
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.routing import BaseRoute, Mount

from llmloop import topics
from llmloop.async_client import AsyncClient
from llmloop.bus import EventBus, Message, Record, open_bus
from llmloop.events import (
    AlertStateChanged,
    CompletionLogged,
    CorrectionFeedback,
    GateResult,
    RetrainJobUpdated,
    ThumbsFeedback,
    encode_event,
    parse_event,
)
from llmloop.runtime_file import TOKEN_HEADER, RuntimeInfo
from llmloop.sdk import Client
from llmloop.store import Store
from llmloop.testing.server import completion
from llmloop_app.cli import build_parser, main
from llmloop_app.embedded import local_router
from llmloop_ingest.app import create_app
from llmloop_ingest.keys import hash_key
from llmloop_ingest.settings import IngestSettings
from llmloop_processor.aggregates import feedback_metrics
from llmloop_processor.runtime import services
from llmloop_processor.settings import ProcessorSettings
from llmloop_processor.sink import Sink
from llmloop_processor.stats import window_bounds
from llmloop_retraining.join import PairJoin

A, B = "alpha-shop", "bravo-bank"
# Strings only B ever sends: finding one in an answer to A is a leak.
B_MARKERS = {
    "prompt": "bravo-prompt-7c1e: what is my account balance",
    "completion": "bravo-completion-7c1e: 12,345.67 EUR",
    "model": "bravo-model-7c1e",
    "user": "bravo-user-7c1e",
    "attribute": "bravo-segment-7c1e",
    "tag": "bravo-tag-7c1e",
    "metadata": "bravo-meta-7c1e",
}
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
# The routes the app is known to serve; the walk must find at least these (a route
# it cannot see would escape the probe).
KNOWN_ROUTES = {
    "/v1/events",
    "/v1/otlp/v1/traces",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/docs",  # Swagger UI from the package (issue 15: no /redoc, no OAuth2 redirect page)
    "/_local/query",
}


# --- fixtures and helpers --------------------------------------------------------------


@pytest.fixture
async def bus() -> AsyncIterator[EventBus]:
    bus = open_bus("memory://")
    await bus.start()
    yield bus
    await bus.close()


def cli_key(data_dir: Path, project: str, capsys: pytest.CaptureFixture[str]) -> str:
    """A key from ``llmloop keys create`` (the real key store, through the real CLI)."""
    capsys.readouterr()
    assert main(["keys", "create", "--project", project, "--data-dir", str(data_dir)]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("llk_")
    return key


@pytest.fixture
def keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    return {p: cli_key(tmp_path, p, capsys) for p in (A, B)}


def ingest_app(tmp_path: Path, bus: EventBus, store: Store | None = None) -> tuple[Any, str]:
    """The ingest app as ``llmloop ingest`` builds it (key cache off, so revocation is
    immediate); with ``store``, also ``/_local/query`` as ``llmloop up`` adds it."""
    app = create_app(IngestSettings(data_dir=tmp_path, key_cache_s=0), bus=bus)
    token = RuntimeInfo.new("http://127.0.0.1:0", f"chdb:///{tmp_path}/chdb").token
    if store is not None:
        app.include_router(local_router(store, token))
    return app, token


def client(app: Any, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test", headers=headers
    )


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def b_events() -> list[dict[str, Any]]:
    """B's traffic: every field that can hold data holds a B marker."""
    m = B_MARKERS
    first = completion(
        model=m["model"],
        prompt=m["prompt"],
        completion=m["completion"],
        user_id=m["user"],
        attributes={"segment": m["attribute"]},
        tags=[m["tag"]],
        metadata={"note": m["metadata"]},
    )
    feedback = {
        "type": "feedback",
        "kind": "comment",
        "event_id": str(uuid.uuid4()),
        "completion_id": first["event_id"],
        "comment": m["prompt"],
    }
    return [first, feedback]


def otlp_export(project_claim: str) -> dict[str, Any]:
    """An OTLP/JSON trace export with one GenAI span, claiming ``project_claim`` everywhere
    an exporter could put a project: resource and span attributes."""

    def attr(key: str, value: str) -> dict[str, Any]:
        return {"key": key, "value": {"stringValue": value}}

    claims = [
        attr(k, project_claim)
        for k in ("llmloop.project_id", "project_id", "project", "tenant.id", "service.namespace")
    ]
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [attr("service.name", project_claim), *claims]},
                "scopeSpans": [
                    {
                        "scope": {"name": "isolation"},
                        "spans": [
                            {
                                "traceId": uuid.uuid4().hex,
                                "spanId": uuid.uuid4().hex[:16],
                                "name": "chat",
                                "kind": 3,
                                "startTimeUnixNano": "1763700000000000000",
                                "endTimeUnixNano": "1763700000500000000",
                                "attributes": [
                                    attr("gen_ai.request.model", "otlp-model"),
                                    attr("gen_ai.prompt.0.role", "user"),
                                    attr("gen_ai.prompt.0.content", "hello"),
                                    attr("gen_ai.completion.0.content", "hi"),
                                    *claims,
                                ],
                            }
                        ],
                    }
                ],
            }
        ]
    }


async def on_bus(bus: EventBus, topic: str = topics.EVENTS) -> list[Message]:
    consumer = bus.consumer([topic], f"test-{uuid.uuid4()}")
    await consumer.start()
    out: list[Message] = []
    while batch := await consumer.poll(10_000, 0.01):
        out.extend(batch)
    return out


async def sink(bus: EventBus, store: Store) -> None:
    """Everything on the events topic into the store, through the processor's real sink."""
    await Sink(bus, store).handle(await on_bus(bus))


def all_routes(routes: list[BaseRoute], prefix: str = "") -> dict[str, set[str]]:
    """Path -> methods of every route, descending into mounts and included routers.

    FastAPI (0.16x) keeps an included router as one ``_IncludedRouter`` entry whose
    routes are on ``original_router``; ``Mount`` keeps them on ``routes``.
    """
    found: dict[str, set[str]] = {}
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = getattr(route, "include_context", None)
            for path, methods in all_routes(
                inner.routes, prefix + getattr(context, "prefix", "")
            ).items():
                found.setdefault(path, set()).update(methods)
        elif isinstance(route, Mount):
            for path, methods in all_routes(route.routes, prefix + route.path).items():
                found.setdefault(path, set()).update(methods)
        else:
            path = prefix + route.path  # type: ignore[attr-defined]
            found.setdefault(path, set()).update(getattr(route, "methods", None) or {"GET"})
    return found


def leaks(text: str, *, project_too: bool, b_ids: list[str]) -> list[str]:
    """B's data found in ``text``."""
    needles = [*B_MARKERS.values(), *b_ids] + ([B] if project_too else [])
    return [n for n in needles if n in text]


# --- writes: the key decides the project -----------------------------------------------


async def test_a_key_writes_only_as_its_own_project_whatever_the_request_claims(
    tmp_path, bus, store, keys
):
    app, _ = ingest_app(tmp_path, bus)
    claims = {"X-Project-Id": B, "X-Llmloop-Project": B, "X-Tenant-Id": B}
    async with client(app, {**bearer(keys[A]), **claims}) as c:
        body = {
            "events": [
                completion(project_id=B),
                completion(project_id=B, attributes={"project_id": B, "project": B}),
                {
                    "type": "feedback",
                    "kind": "thumbs",
                    "value": -1,
                    "event_id": str(uuid.uuid4()),
                    "completion_id": str(uuid.uuid4()),
                    "project_id": B,
                },
            ],
            "project_id": B,
        }
        response = await c.post(f"/v1/events?project_id={B}&project={B}", json=body)
        assert response.status_code == 202, response.text
        response = await c.post(
            f"/v1/otlp/v1/traces?project_id={B}",
            content=orjson.dumps(otlp_export(B)),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 200, response.text
    async with client(app, {"X-API-Key": keys[A]}) as c:  # the other place a key can go
        response = await c.post("/v1/events", json={"events": [completion(project_id=B)]})
        assert response.status_code == 202
    async with client(app, bearer(keys[B])) as c:  # B's own traffic lands as B
        assert (await c.post("/v1/events", json={"events": b_events()})).status_code == 202

    events = [parse_event(m.value) for m in await on_bus(bus)]
    assert [e.project_id for e in events] == [A, A, A, A, A, B, B]
    await sink(bus, store)
    rows = store.query(
        "SELECT project_id, count() FROM completions GROUP BY project_id ORDER BY project_id"
    ).rows
    assert rows == [(A, 4), (B, 1)]
    otlp = store.query("SELECT project_id FROM completions WHERE model = 'otlp-model'").rows
    assert otlp == [(A,)]
    feedback = store.query("SELECT project_id, kind FROM feedback ORDER BY kind").rows
    assert feedback == [(B, "comment"), (A, "thumbs")]


# --- reads: nothing of B through any route ---------------------------------------------


def probe_body(path: str) -> bytes:
    """A body that asks the route for data: a query for /_local/query, events elsewhere."""
    if path == "/v1/otlp/v1/traces":
        return orjson.dumps(otlp_export(B))
    if path == "/v1/events":
        return orjson.dumps({"events": [completion(project_id=B)]})
    return orjson.dumps(
        {
            "sql": "SELECT project_id, model, prompt, completion, user_id, attributes, tags "
            "FROM completions",
            "format": "TabSeparated",
            "params": {},
            "project_id": B,
        }
    )


async def test_a_key_of_one_project_reads_nothing_of_another_through_any_route(
    tmp_path, bus, store, keys
):
    app, token = ingest_app(tmp_path, bus, store)
    async with client(app, bearer(keys[B])) as c:
        assert (await c.post("/v1/events", json={"events": b_events()})).status_code == 202
    await sink(bus, store)
    b_ids = [
        r[0]
        for r in store.query(
            "SELECT toString(event_id) FROM completions "
            "UNION ALL SELECT toString(event_id) FROM feedback"
        ).rows
    ]
    assert len(b_ids) == 2  # B's completion and B's feedback, both stored

    routes = all_routes(app.routes)
    async with client(app) as c:
        documented = set((await c.get("/openapi.json")).json()["paths"])
        # Positive control: the probe sees B's data where an operator may read it.
        control = await c.post(
            "/_local/query",
            content=probe_body("/_local/query"),
            headers={TOKEN_HEADER: token, "Content-Type": "application/json"},
        )
    assert KNOWN_ROUTES | documented <= set(routes), set(routes)
    assert control.status_code == 200 and leaks(control.text, project_too=True, b_ids=b_ids)

    credentials = {
        "no key": {},
        "A bearer": bearer(keys[A]),
        "A x-api-key": {"X-API-Key": keys[A]},
        "A as local token": {TOKEN_HEADER: keys[A], **bearer(keys[A])},
        "A basic": {"Authorization": "Basic " + keys[A]},
    }
    answers = 0
    for path, declared in sorted(routes.items()):
        url = re.sub(r"\{[^}]+\}", b_ids[0], path)  # path parameters ask for B's event
        for method in sorted(set(METHODS) | declared):
            for who, headers in credentials.items():
                for query in ("", f"?project_id={B}&project={B}&tenant={B}"):
                    async with client(app, headers) as c:
                        response = await c.request(
                            method,
                            url + query,
                            content=probe_body(path) if method in WRITES else None,
                            headers={"Content-Type": "application/json"},
                        )
                    answers += 1
                    said = response.text + "".join(
                        f"{k}: {v}\n" for k, v in response.headers.items()
                    )
                    # The body of a write names B; an error that echoes it is not a leak.
                    asked_for_b = bool(query) or method in WRITES
                    found = leaks(said, project_too=not asked_for_b, b_ids=b_ids)
                    assert not found, f"{method} {url + query} ({who}): {found} in {said[:500]}"
                    if path == "/_local/query":
                        assert response.status_code in (401, 405), (method, who)
    assert answers >= len(routes) * len(METHODS) * len(credentials) * 2


async def test_metrics_are_service_level_with_no_project_label(tmp_path, bus, keys):
    app, _ = ingest_app(tmp_path, bus)
    for project in (A, B):
        async with client(app, bearer(keys[project])) as c:
            assert (await c.post("/v1/events", json={"events": [completion()]})).status_code == 202
    async with client(app) as c:
        text = (await c.get("/metrics")).text
    assert 'llmloop_ingest_events_accepted_total{type="completion"} 2.0' in text
    labels = {name for name in re.findall(r"[{,]([a-z_]+)=\"", text)}
    assert not labels & {"project", "project_id", "tenant", "key", "key_id"}, labels
    assert A not in text and B not in text


async def test_a_revoked_key_is_refused_on_every_write_route(
    tmp_path, bus, store, capsys: pytest.CaptureFixture[str]
):
    key = cli_key(tmp_path, A, capsys)
    app, _ = ingest_app(tmp_path, bus, store)
    async with client(app, bearer(key)) as c:
        assert (await c.post("/v1/events", json={"events": [completion()]})).status_code == 202
    capsys.readouterr()
    assert main(["keys", "list", "--data-dir", str(tmp_path)]) == 0
    key_id = hash_key(key)[:12]
    assert key_id in capsys.readouterr().out
    assert main(["keys", "revoke", key_id[:8], "--data-dir", str(tmp_path)]) == 0
    before = len(await on_bus(bus))

    writes = {p: m & WRITES for p, m in all_routes(app.routes).items() if m & WRITES}
    assert {"/v1/events", "/v1/otlp/v1/traces", "/_local/query"} <= set(writes)
    for headers in (bearer(key), {"X-API-Key": key}):
        async with client(app, headers) as c:
            for path, methods in writes.items():
                for method in methods:
                    response = await c.request(
                        method,
                        path,
                        content=probe_body(path),
                        headers={"Content-Type": "application/json"},
                    )
                    assert response.status_code == 401, (method, path, response.text)
    assert len(await on_bus(bus)) == before


def test_keys_are_stored_only_as_hashes(tmp_path, capsys: pytest.CaptureFixture[str]):
    keys = {p: cli_key(tmp_path, p, capsys) for p in (A, B)}
    assert main(["keys", "export", str(tmp_path / "keys.txt"), "--data-dir", str(tmp_path)]) == 0
    files = [p for p in tmp_path.iterdir() if p.is_file()]
    assert {"keys.db", "keys.txt"} <= {p.name for p in files}
    everything = b"".join(p.read_bytes() for p in files)  # keys.db, its WAL and shm, the export
    for key in keys.values():
        assert key.encode() not in everything
        assert key.split("_", 1)[1].encode() not in everything
        assert hash_key(key).encode() in everything  # what is stored instead


# --- the CLI and the SDK: no read path takes a project key ------------------------------


def commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[Any]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield " ".join(prefix), parser
    for sub in subs:
        for name, child in sub.choices.items():
            yield from commands(child, (*prefix, name))


READS = (
    "query",
    "report",
    "datasets list",
    "datasets show",
    "datasets export",
    "models list",
    "models show",
    "alerts dlq list",
    "keys list",
)
CREDENTIAL = re.compile(r"key|token|secret|passw|auth|bearer|api", re.IGNORECASE)


def test_no_cli_command_or_sdk_method_reads_with_a_project_key(tmp_path):
    """Reading is an operator's job: the CLI commands that read data open the data dir or
    the store (``--data-dir``, ``--store``, ``--state``), so whoever may read those files
    or holds the store's own credentials may read; while ``up`` owns the embedded store they
    go through ``/_local/query`` with the token of the owner-only ``runtime.json``. None of
    them accepts a project's API key, and the SDK (the one thing apps give a key to) only
    sends events."""
    found = dict(commands(build_parser()))
    assert set(READS) <= set(found)
    for name, parser in found.items():
        for action in parser._actions:
            flags = " ".join(action.option_strings) or action.dest
            if name == "keys revoke" and action.dest == "key_id":
                continue  # a key's id (a hash prefix from `keys list`), not a key
            assert not CREDENTIAL.search(flags), f"`llmloop {name}` takes {flags}"
        if name in READS:
            dests = {a.dest for a in parser._actions}
            assert dests & {"data_dir", "store", "state"}, name

    # The local token file is the owner's alone.
    info = RuntimeInfo.new("http://127.0.0.1:7070", f"chdb:///{tmp_path}/chdb")
    info.write(tmp_path)
    assert stat.S_IMODE((tmp_path / "runtime.json").stat().st_mode) == 0o600

    write_only = {"log_completion", "feedback", "flush", "close", "aclose", "pending"}
    for cls in (Client, AsyncClient):
        public = {n for n, _ in inspect.getmembers(cls, callable) if not n.startswith("_")}
        assert public <= write_only, f"{cls.__name__} gained {public - write_only}"
    import llmloop.async_client
    import llmloop.sdk

    for module in (llmloop.sdk, llmloop.async_client):
        source = inspect.getsource(module)
        assert set(re.findall(r"\{self\.endpoint\}(/[^\"']*)", source)) == {"/v1/events"}
        assert set(re.findall(r"_http\.(\w+)\(", source)) <= {"post", "close", "aclose"}


# --- bound parameters ------------------------------------------------------------------

TOKEN = "HOSTILE9q"  # in every hostile value: finding it in SQL text means a value was spliced
HOSTILE = [
    f"{TOKEN}'; DROP TABLE completions; --",
    f"{TOKEN}\\'",
    f"{TOKEN}{{zz:String}}",
    f"`{TOKEN}`",
    f"{TOKEN}\x00nul",
    f"{TOKEN}\\N\t\n",
]


class RecordingStore:
    """A ``Store`` that records every SQL text and parameter set it is given, in front of
    a chDB store whose engine session is wrapped too (the insert statement the adapter
    builds itself is recorded there)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.url = inner.url
        self.sql: list[str] = []
        self.params: list[dict[str, Any]] = []
        self.inserted: list[str] = []
        inner._session = _SessionSpy(inner._session, self.sql, self.params)

    def command(self, sql: str, params: Any = None) -> None:
        self.sql.append(sql)
        self.params.append(dict(params or {}))
        self.inner.command(sql, params)

    def query(self, sql: str, params: Any = None) -> Any:
        self.sql.append(sql)
        self.params.append(dict(params or {}))
        return self.inner.query(sql, params)

    def query_raw(self, sql: str, fmt: str = "TabSeparated", params: Any = None) -> bytes:
        self.sql.append(sql)
        self.params.append(dict(params or {}))
        return bytes(self.inner.query_raw(sql, fmt, params))

    def insert(self, table: str, data: Any, *, unique_keys: bool = False) -> int:
        self.inserted.append(table)
        return int(self.inner.insert(table, data, unique_keys=unique_keys))

    def close(self) -> None:
        self.inner.close()


class _SessionSpy:
    def __init__(self, session: Any, sql: list[str], params: list[dict[str, Any]]) -> None:
        self._session, self._sql, self._params = session, sql, params

    def query(self, sql: str, fmt: str = "CSV", params: Any = None) -> Any:
        self._sql.append(sql)
        self._params.append(dict(params or {}))
        return self._session.query(sql, fmt, params=params)

    @property
    def _conn(self) -> Any:
        conn, log = self._session._conn, self._sql

        class Conn:
            def send_insert(self, sql: str, fmt: str) -> Any:
                log.append(sql)
                return conn.send_insert(sql, fmt)

        return Conn()

    def close(self) -> None:
        self._session.close()


def hostile_traffic(now: datetime) -> tuple[list[Any], list[Any]]:
    """Completions of two hostile models (enough per segment for bias statistics), feedback
    with hostile comments; every string field that is data carries a hostile value."""
    completions, feedback = [], []
    for m, model in enumerate(HOSTILE[:2]):
        for i in range(44):
            value = HOSTILE[i % 2 + 2]  # two segments per attribute, 22 completions each
            c = CompletionLogged(
                project_id=A,
                model=model,
                model_version=HOSTILE[5],
                prompt_version=HOSTILE[4],
                prompt_template=HOSTILE[3],
                prompt=f"question {i} {HOSTILE[i % len(HOSTILE)]}",
                completion=f"answer {i} {HOSTILE[(i + 1) % len(HOSTILE)]}",
                latency_ms=100.0 + i + 40 * (i % 2),
                user_id=HOSTILE[0],
                session_id=HOSTILE[1],
                attributes={HOSTILE[0]: value, HOSTILE[1]: HOSTILE[5 - i % 2]},
                tags=[HOSTILE[2], HOSTILE[3]],
                metadata={HOSTILE[4]: HOSTILE[0]},
                timestamp=now - timedelta(seconds=30 + i + 50 * m),
            )
            completions.append(c)
            if i % 3 == 0:
                feedback.append(
                    ThumbsFeedback(
                        project_id=A,
                        completion_id=c.event_id,
                        value=-1 if i % 2 else 1,
                        comment=HOSTILE[i % len(HOSTILE)],
                        timestamp=c.timestamp + timedelta(milliseconds=200),
                    )
                )
    return completions, feedback


def others(now: datetime) -> list[Any]:
    """An alert and a registered model version with hostile labels and fields."""
    return [
        AlertStateChanged(
            project_id=A,
            rule="hostile-rule",
            status="firing",
            fingerprint=HOSTILE[0][:32],
            severity="warning",
            labels={HOSTILE[0]: HOSTILE[1], "model": HOSTILE[2]},
            annotations={"summary": HOSTILE[3], HOSTILE[4]: HOSTILE[5]},
            value=1.0,
            threshold=0.5,
            starts_at=now,
            timestamp=now,
        ),
        RetrainJobUpdated(
            project_id=A,
            job_id="job-1",
            stage="model_registered",
            model=HOSTILE[0],
            base_model=HOSTILE[1],
            dataset_version=HOSTILE[2],
            model_version=HOSTILE[3],
            artifact_uri=HOSTILE[4],
            message=HOSTILE[5],
            metrics={HOSTILE[2]: 0.5},
            gate=GateResult(passed=False, reasons=[HOSTILE[1]]),
            timestamp=now,
        ),
    ]


async def test_hostile_values_reach_clickhouse_only_as_parameters_and_come_back_verbatim(
    tmp_path, bus, store
):
    recorded = RecordingStore(store)
    now = datetime(2026, 11, 1, 12, 0, 30, tzinfo=UTC)
    settings = ProcessorSettings(
        data_dir=tmp_path,
        processor_embed=False,  # the statistics that need no model: scalars, bias, feedback
        processor_stats_interval_s=600,
        processor_stats_window_s=600,
        processor_min_samples=10,
        processor_reference_size=10,
        processor_permutations=20,
    )
    completions, feedback = hostile_traffic(now)
    alert, retrain = others(now)
    for topic, events in (
        (topics.EVENTS, completions + feedback),
        (topics.ALERTS, [alert]),
        (topics.RETRAIN, [retrain]),
    ):
        await bus.publish(topic, [Record(e.key(), encode_event(e)) for e in events])

    parts = services(settings, bus, recorded)
    stats = parts.pop("stats")
    stats.clock = lambda: now.timestamp()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(p.run(stop)) for p in parts.values()]
    try:

        async def until(sql: str, n: int) -> None:
            for _ in range(300):
                if store.query(sql).scalar() >= n:
                    return
                await asyncio.sleep(0.05)
            raise AssertionError(f"{sql} never reached {n}")

        await until("SELECT count() FROM completion_enrichments", len(completions))
        await until("SELECT count() FROM feedback", len(feedback))
        published = await stats.tick()  # drift, bias, feedback, traffic: on the metrics topic
        assert published > 0
        await until("SELECT count() FROM metrics", published)
    finally:
        stop.set()
        await asyncio.gather(*tasks)

    texts = recorded.sql
    assert len(texts) > 20 and any(t.lstrip().startswith("INSERT") for t in texts)
    spliced = [t for t in texts if TOKEN in t or "\x00" in t or "DROP TABLE" in t]
    assert not spliced, spliced[:3]
    bound = [p for p in recorded.params if any(TOKEN in str(v) for v in p.values())]
    assert bound, "no hostile value travelled as a parameter: the statistics did not run"

    # Verbatim, every one of them.
    rows = store.query(
        "SELECT model, model_version, prompt_version, prompt_template, user_id, session_id, "
        "attributes, tags, metadata FROM completions"
    ).dicts()
    assert {r["model"] for r in rows} == set(HOSTILE[:2])
    assert {r["prompt_version"] for r in rows} == {HOSTILE[4]}
    expected = {(c.model, tuple(sorted(c.attributes.items())), tuple(c.tags)) for c in completions}
    stored = {(r["model"], tuple(sorted(r["attributes"])), tuple(r["tags"])) for r in rows}
    assert stored == expected
    assert {(r["user_id"], r["session_id"], r["model_version"]) for r in rows} == {
        (HOSTILE[0], HOSTILE[1], HOSTILE[5])
    }
    assert {orjson.loads(r["metadata"])[HOSTILE[4]] for r in rows} == {HOSTILE[0]}
    comments = {r[0] for r in store.query("SELECT comment FROM feedback").rows}
    assert comments == {f.comment for f in feedback}
    enriched = store.query("SELECT DISTINCT model, attributes FROM completion_enrichments").rows
    assert {m for m, _ in enriched} == set(HOSTILE[:2])
    labels = [dict(r[0]) for r in store.query("SELECT labels FROM metrics").rows]
    assert {lab["model"] for lab in labels} == set(HOSTILE[:2])
    assert {lab["prompt_version"] for lab in labels} == {HOSTILE[4]}
    segments = [lab for lab in labels if "segment" in lab]
    assert {lab["attribute"] for lab in segments} >= {HOSTILE[0], HOSTILE[1]}
    assert {lab["segment"] for lab in segments} >= {HOSTILE[2], HOSTILE[3], HOSTILE[4], HOSTILE[5]}
    profiles = store.query("SELECT DISTINCT model, prompt_version FROM window_profiles").rows
    assert set(profiles) == {(m, HOSTILE[4]) for m in HOSTILE[:2]}
    [alert] = store.query("SELECT labels, annotations FROM alerts").rows
    assert dict(alert[0]) == {HOSTILE[0]: HOSTILE[1], "model": HOSTILE[2]}
    assert dict(alert[1]) == {"summary": HOSTILE[3], HOSTILE[4]: HOSTILE[5]}
    [version] = store.query(
        "SELECT model, base_model, dataset_version, version, artifact_uri, metrics "
        "FROM model_versions"
    ).rows
    assert version[:5] == tuple(HOSTILE[:5]) and dict(version[5]) == {HOSTILE[2]: 0.5}
    [job] = store.query("SELECT message, gate_reasons FROM retrain_jobs").rows
    assert job == (HOSTILE[5], [HOSTILE[1]])

    # Nothing was dropped or altered behind our back.
    tables = {r[0] for r in store.query("SHOW TABLES").rows}
    assert {"completions", "feedback", "metrics", "alerts", "completion_enrichments"} <= tables
    assert store.query("SELECT count() FROM completions").scalar() == len(completions)


# --- known cross-tenant gaps outside ingest (processor, retraining) ----------------------


def _victim_completions(now: datetime, n: int = 10) -> list[CompletionLogged]:
    return [
        CompletionLogged(
            project_id=B,
            model="bank-bot",
            prompt=f"balance {i}",
            completion="12 EUR",
            timestamp=now - timedelta(seconds=i + 1),
        )
        for i in range(n)
    ]


async def _write(store: Store, events: list[Any]) -> None:
    messages = [
        Message(topics.EVENTS, 0, i, e.key(), encode_event(e)) for i, e in enumerate(events)
    ]
    await Sink(open_bus("memory://"), store).handle(messages)


async def test_feedback_of_one_project_never_counts_for_another(store):
    now = datetime(2026, 11, 1, 12, 0, 30, tzinfo=UTC)
    victims = _victim_completions(now)
    spoofed = [
        ThumbsFeedback(project_id=A, completion_id=c.event_id, value=-1, timestamp=now)
        for c in victims
    ]
    await _write(store, victims + spoofed)
    start, end = window_bounds(now.timestamp() + 600, 600, 1200)
    for metric in feedback_metrics(store, start, end):
        assert metric.project_id != B, f"{metric.name}={metric.value} for B from A's feedback"


def test_feedback_of_one_project_never_makes_training_pairs_for_another(tmp_path):
    now = datetime(2026, 11, 1, 12, 0, 30, tzinfo=UTC)
    victim = _victim_completions(now, 1)[0]
    poison = CorrectionFeedback(
        project_id=A, completion_id=victim.event_id, correction="send all funds to A"
    )
    join = PairJoin(tmp_path / "join.db")
    try:
        pairs = join.apply([victim, poison]).pairs
    finally:
        join.close()
    assert [p for p in pairs if p.project_id == B] == []


async def test_an_event_id_reused_by_another_project_does_not_suppress_the_owners_event(store):
    now = datetime(2026, 11, 1, 12, 0, 30, tzinfo=UTC)
    victim = _victim_completions(now, 1)[0]
    squatter = victim.model_copy(update={"project_id": A, "prompt": "squat"})
    await _write(store, [squatter])
    await _write(store, [victim])
    rows = store.query("SELECT project_id FROM completions ORDER BY project_id").rows
    assert rows == [(A,), (B,)]
