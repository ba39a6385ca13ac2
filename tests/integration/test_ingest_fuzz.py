"""Fuzz every route of the ingest API from its OpenAPI spec (schemathesis): never a 5xx.

The spec documents the real event models, so the generated bodies reach the
per-event validation and the bus, with and without a valid key.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings

from llmloop.bus import open_bus
from llmloop_ingest.app import create_app
from llmloop_ingest.keys import KeyStore
from llmloop_ingest.settings import IngestSettings

_DATA = Path(tempfile.mkdtemp(prefix="llmloop-fuzz-"))
KEY = KeyStore(_DATA / "keys.db").create("fuzz")[0]
# A memory bus started on a loop of its own: the ASGI transport runs requests on another.
_BUS = open_bus("memory://")
_LOOP = asyncio.new_event_loop()
threading.Thread(target=_LOOP.run_forever, daemon=True).start()
asyncio.run_coroutine_threadsafe(_BUS.start(), _LOOP).result(10)
APP = create_app(
    IngestSettings(data_dir=_DATA, max_batch_events=50, max_body_bytes=200_000, redact_pii="*"),
    bus=_BUS,
)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_5xx(case) -> None:
    for headers in ({"Authorization": f"Bearer {KEY}"}, {}):
        response = case.call(headers=headers)
        assert response.status_code < 500, (case.as_curl_command(), response.text[:500])
        if case.path in ("/v1/events", "/v1/otlp/v1/traces") and not headers:
            assert response.status_code in (401, 405)  # never accepted without a key


def test_the_fuzzer_reached_the_bus() -> None:
    """The spec lets the fuzzer make events that ingest accepts, so the fuzzing goes past
    the body checks into validation and publishing: examples of the events route's spec,
    sent with the key, are accepted (on their own, in any test order)."""
    from hypothesis import given
    from starlette.testclient import TestClient

    def accepted() -> float:
        text = TestClient(APP).get("/metrics").text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("llmloop_ingest_events_accepted_total")
        )

    before = accepted()

    @given(schema["/v1/events"]["POST"].as_strategy())
    # Derandomized: the same examples each run (which ones pass validation is luck).
    @settings(
        max_examples=50, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck)
    )
    def send(case) -> None:
        case.call(headers={"Authorization": f"Bearer {KEY}"})

    send()
    assert accepted() > before
