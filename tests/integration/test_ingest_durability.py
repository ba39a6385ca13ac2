"""Stop the Kafka broker in the middle of a stream of SDK calls, restart it, and find every
acknowledged event in the store exactly once; the SDK's spool delivers the rest, also
across a restart of the process that logged them.

The broker is Tansu on S3 storage (a local moto server), so what it acknowledged
survives its restart, as with a replicated Kafka cluster.
"""

from __future__ import annotations

import asyncio
import gzip
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from llmloop import Client
from llmloop.store import Store
from llmloop.testing.server import ServedApp
from llmloop.testing.tansu import TansuBroker
from llmloop_ingest.app import create_app
from llmloop_ingest.keys import KeyStore
from llmloop_ingest.settings import IngestSettings
from llmloop_processor.sink import Sink

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

SDK_OPTIONS = {"flush_interval_s": 0.05, "backoff_s": 0.05, "max_backoff_s": 0.5, "max_retries": 2}

# A separate process that logs events while the broker is down, then exits.
CHILD = """
import sys
from llmloop import Client
client = Client(sys.argv[1], sys.argv[2], spool_dir=sys.argv[3], flush_interval_s=0.05,
                backoff_s=0.05, max_backoff_s=0.2, max_retries=1, timeout_s=5)
for i in range(int(sys.argv[4])):
    print(client.log_completion(model="child", prompt="p", completion=str(i)), flush=True)
client.close(timeout_s=3)
"""


class Acknowledged:
    """ASGI middleware that records the event ids of every request answered 2xx."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.ids: list[str] = []
        self.events: list[dict[str, Any]] = []  # as sent, for re-sending
        self.statuses: list[int] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/events":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def recording_receive() -> Any:
            message = await receive()
            chunks.append(message.get("body", b""))
            return message

        async def recording_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                self.statuses.append(message["status"])
                if 200 <= message["status"] < 300:
                    body = b"".join(chunks)
                    body = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
                    events = orjson.loads(body)["events"]
                    self.ids += [e["event_id"] for e in events]
                    self.events += events
            await send(message)

        await self.app(scope, recording_receive, recording_send)


def stored(store: Store, sql: str) -> list[tuple[Any, ...]]:
    return store.query(sql).rows


async def drain_into(store: Store, broker: TansuBroker, expected: int) -> None:
    from llmloop.bus import open_bus

    bus = open_bus(broker.url(partitions=2))
    await bus.start()
    stop = asyncio.Event()
    task = asyncio.create_task(Sink(bus, store, batch_size=500, max_wait_s=0.1).run(stop))
    deadline = time.monotonic() + 60
    while stored(store, "SELECT count() FROM completions")[0][0] < expected:
        assert time.monotonic() < deadline, "the processor did not store every event"
        assert not task.done(), task
        await asyncio.sleep(0.2)
    stop.set()
    await task
    await bus.close()


def test_broker_outage_during_sdk_stream_loses_nothing_acknowledged(
    s3_broker: TansuBroker, store: Store, tmp_path: Path
) -> None:
    key = KeyStore(tmp_path / "keys.db").create("shop")[0]
    settings = IngestSettings(
        data_dir=tmp_path,
        bus_url=s3_broker.url(partitions=2),
        publish_timeout_s=1.5,
        retry_after_s=1,
    )
    spy = Acknowledged(create_app(settings))
    spool = tmp_path / "spool"
    logged: list[str] = []
    with ServedApp(spy) as ingest:
        client = Client(ingest.url, key, spool_dir=spool, batch_size=20, **SDK_OPTIONS)
        streaming = threading.Event()

        def app_traffic() -> None:  # the app keeps serving its users through the outage
            while not streaming.is_set():
                logged.append(client.log_completion(model="app", prompt="p", completion="c"))
                time.sleep(0.004)

        sender = threading.Thread(target=app_traffic)
        sender.start()
        time.sleep(1.5)
        s3_broker.kill()  # a crash, mid-stream
        time.sleep(2.5)
        # Meanwhile another process logs events and exits before the broker is back.
        child = subprocess.run(
            [sys.executable, "-c", CHILD, ingest.url, key, str(spool), "30"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        child_ids = child.stdout.split()
        acked_before_restart = len(spy.ids)
        s3_broker.start()
        time.sleep(1.5)
        streaming.set()
        sender.join()
        assert client.flush(60), f"{client.pending()} events still pending"
        client.close()
        # Re-sending acknowledged events is harmless: downstream keeps one of each.
        resent = spy.events[:50]  # exactly as the SDK sent them
        response = httpx.post(
            f"{ingest.url}/v1/events",
            json={"events": resent},
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        assert response.status_code == 202

    assert 503 in spy.statuses, "the outage never reached the SDK"
    assert len(child_ids) == 30
    # The child exited with its events on disk; they went out only after the restart.
    assert not set(child_ids) & set(spy.ids[:acked_before_restart])
    everything = set(logged) | set(child_ids)
    assert set(spy.ids) == everything  # every logged event was acknowledged at some point
    asyncio.run(drain_into(store, s3_broker, len(everything)))
    counts = dict(stored(store, "SELECT toString(event_id), count() FROM completions GROUP BY 1"))
    assert set(counts) == everything
    assert set(counts.values()) == {1}  # exactly once, though some were sent more than once
    assert len(spy.ids) > len(everything)


def test_bus_down_is_503_on_kafka_and_ready_again_after(tmp_path: Path):
    with TansuBroker() as broker:
        key = KeyStore(tmp_path / "keys.db").create("shop")[0]
        settings = IngestSettings(
            data_dir=tmp_path, bus_url=broker.url(partitions=1), publish_timeout_s=1.0
        )
        with ServedApp(create_app(settings)) as ingest:
            post = lambda: httpx.post(  # noqa: E731
                f"{ingest.url}/v1/events",
                json={
                    "events": [
                        {
                            "type": "completion",
                            "event_id": str(uuid.uuid4()),
                            "model": "m",
                            "prompt": "p",
                            "completion": "c",
                        }
                    ]
                },
                headers={"Authorization": f"Bearer {key}"},
                timeout=10,
            )
            assert post().status_code == 202
            broker.kill()
            down = post()
            assert down.status_code == 503 and down.headers["Retry-After"] == "5"
            assert len(down.json()["not_accepted"]) == 1
            assert httpx.get(f"{ingest.url}/readyz", timeout=10).status_code == 503
            broker.start()
            deadline = time.monotonic() + 30
            while (status := post().status_code) != 202:
                assert time.monotonic() < deadline, status
            assert httpx.get(f"{ingest.url}/readyz", timeout=10).status_code == 200
