"""The faust worker against a Kafka-protocol broker: SIGKILL mid-stream, restart, every
event exactly once in query results (completions and their enrichments)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from llmloop import topics
from llmloop.bus import Record, open_bus
from llmloop.events import CompletionLogged, ThumbsFeedback, encode_event
from llmloop.store import open_store
from llmloop.store.migrate import migrate
from llmloop.testing.kafka import committed
from llmloop.testing.tansu import TansuBroker

FAUST = str(Path(sys.executable).with_name("faust"))
PARTITIONS = 2
pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def events(start: int, n: int) -> list[Record]:
    base = datetime.now(UTC) - timedelta(hours=1)
    out: list[Record] = []
    for i in range(start, start + n):
        c = CompletionLogged(
            model="m",
            project_id="p",
            prompt=f"question {i}: how do I roast chicken?",
            completion="Sorry, I can't help with that." if i % 5 == 0 else f"answer {i}",
            timestamp=base + timedelta(milliseconds=i),
        )
        out.append(Record(key=c.key(), value=encode_event(c)))
        if i % 4 == 0:
            f = ThumbsFeedback(completion_id=c.event_id, value=1, project_id="p")
            out.append(Record(key=f.key(), value=encode_event(f)))
    return out


class Worker:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [FAUST, "-A", "llmloop_processor.app", "worker", "-l", "info"],
            env=env,
            stdout=log.open("a"),
            stderr=subprocess.STDOUT,
        )


async def wait_committed(bootstrap: str, group: str, at_least: int, worker: Worker) -> int:
    deadline = time.monotonic() + 60
    while (done := await committed(bootstrap, group, topics.EVENTS)) < at_least:
        assert worker.proc.poll() is None, worker.log.read_text()[-3000:]
        assert time.monotonic() < deadline, (
            f"committed {done} < {at_least}\n" + worker.log.read_text()[-3000:]
        )
        await asyncio.sleep(0.2)
    return done


async def test_sigkill_mid_stream_then_restart_counts_every_event_once(tmp_path: Path) -> None:
    store_url = f"chdb:///{tmp_path}/chdb"
    store = open_store(store_url)
    migrate(store)
    store.close()
    with TansuBroker() as broker:
        url = broker.url(partitions=PARTITIONS)
        bootstrap = url.split("://", 1)[1].split("?", 1)[0]
        group = f"llmloop-processor-{uuid.uuid4().hex[:8]}"
        env = {
            **os.environ,
            "LLMLOOP_BUS_URL": url,
            "LLMLOOP_STORE_URL": store_url,
            "LLMLOOP_DATA_DIR": str(tmp_path),
            "LLMLOOP_PROCESSOR_EMBED": "false",  # enrichment without the 7 s model import
            "LLMLOOP_PROCESSOR_FAUST_APP_ID": group,
            "LLMLOOP_PROCESSOR_FAUST_SESSION_TIMEOUT_S": "2.0",
            "LLMLOOP_PROCESSOR_FAUST_HEARTBEAT_S": "0.5",
            "LLMLOOP_PROCESSOR_FAUST_PARTITIONS": str(PARTITIONS),
            "LLMLOOP_PROCESSOR_STATS_INTERVAL_S": "3600",
            "LLMLOOP_WRITER_BATCH_SIZE": "200",
        }
        bus = open_bus(url)
        await bus.start()
        first, second = events(0, 1_500), events(1_500, 1_500)
        expected = len(first) + len(second)
        log = tmp_path / "worker.log"
        try:
            await bus.publish(topics.EVENTS, first)
            worker = Worker(env, log)
            # Kill while the second half streams in: faust commits every few seconds,
            # so rows written since the last commit are redelivered to the next worker.
            done = await wait_committed(bootstrap, group, 1, worker)
            for i in range(0, 1_000, 100):
                await bus.publish(topics.EVENTS, second[i : i + 100])
                await asyncio.sleep(0.1)
            worker.proc.send_signal(signal.SIGKILL)
            worker.proc.wait(10)
            await bus.publish(topics.EVENTS, second[1_000:])
            assert done < expected
            worker = Worker(env, log)
            await wait_committed(bootstrap, group, expected, worker)
            worker.proc.send_signal(signal.SIGTERM)
            worker.proc.wait(30)
        finally:
            await bus.close()
            if worker.proc.poll() is None:
                worker.proc.kill()
    store = open_store(store_url)
    try:
        completions = store.query("SELECT count(), uniqExact(event_id) FROM completions").rows[0]
        feedback = store.query("SELECT count(), uniqExact(event_id) FROM feedback").rows[0]
        enriched = store.query(
            "SELECT count(), uniqExact(event_id), countIf(refusal) FROM completion_enrichments"
        ).rows[0]
    finally:
        store.close()
    assert completions == (3_000, 3_000)
    assert feedback == (750, 750)
    assert enriched == (3_000, 3_000, 600)
    text = log.read_text()
    assert text.count("processor worker: store") == 2  # really two worker lives
    assert "already stored (redelivery)" in text  # the kill did leave work to redo
