"""`llmloop up` as a user runs it: a real process, HTTP in, `llmloop query` out, kill -9 safe."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from llmloop import topics
from llmloop.testing.kafka import committed
from llmloop.testing.tansu import TansuBroker, free_port
from llmloop.testing.up import LLMLOOP, Up, query, wait_for


def completions(n: int, model: str) -> list[dict]:
    return [
        {
            "type": "completion",
            "event_id": str(uuid.uuid4()),
            "model": model,
            "prompt": f"p{i}",
            "completion": f"c{i}",
        }
        for i in range(n)
    ]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def test_posted_events_are_counted_by_query_while_up_runs(data_dir: Path):
    up = Up(data_dir, "--demo", "--demo-rate", "50")
    try:
        events = completions(25, "e2e")
        assert up.post(events).status_code == 202
        assert up.post(events).status_code == 202  # a retry: counts once
        sql = "SELECT count(), uniqExact(event_id) FROM completions WHERE model = 'e2e'"
        wait_for(data_dir, sql, "25\t25")
        # The demo traffic lands too: completions from its models and feedback on them.
        wait_for(data_dir, "SELECT countIf(model != 'e2e') > 0 FROM completions", "1")
        wait_for(data_dir, "SELECT count() > 0 FROM feedback", "1")
    finally:
        assert up.stop() == 0
    assert not (data_dir / "runtime.json").exists()
    # With `up` stopped, query opens the store itself.
    assert query(data_dir, "SELECT count() FROM completions WHERE model = 'e2e'") == "25"


def test_kill_9_after_202_loses_nothing_and_counts_nothing_twice(data_dir: Path):
    up = Up(data_dir)
    acknowledged = 0
    try:
        for _ in range(20):
            response = up.post(completions(100, "durable"))
            assert response.status_code == 202
            acknowledged += response.json()["accepted"]
    finally:
        up.proc.send_signal(signal.SIGKILL)  # right after the last 202
        up.proc.wait(timeout=10)
    assert acknowledged == 2000

    restarted = Up(data_dir)
    try:
        wait_for(
            data_dir,
            "SELECT count(), uniqExact(event_id) FROM completions WHERE model = 'durable'",
            "2000\t2000",
        )
    finally:
        assert restarted.stop(signal.SIGTERM) == 0


def test_query_reports_sql_errors_without_a_traceback(data_dir: Path):
    result = subprocess.run(
        [LLMLOOP, "query", "SELECT * FROM nope", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr


def test_a_second_up_on_the_same_data_dir_is_refused_clearly(data_dir: Path):
    up = Up(data_dir)
    try:
        second = subprocess.run(
            [LLMLOOP, "up", "--data-dir", str(data_dir), "--port", str(free_port())],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ},
        )
        assert second.returncode == 1
        assert second.stderr.startswith("error: llmloop up is already running on")
        assert str(up.proc.pid) in second.stderr and "Traceback" not in second.stderr
    finally:
        up.stop()


def test_a_busy_port_is_one_line_and_starts_nothing(data_dir: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [LLMLOOP, "up", "--data-dir", str(data_dir), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port} (")
    assert "--port" in result.stderr and "Traceback" not in result.stderr
    assert not (data_dir / "chdb").exists()  # nothing was started, no store was opened


def test_query_into_a_pipe_is_tab_separated(tmp_path: Path):
    store = f"chdb:///{tmp_path}/chdb"
    args = [LLMLOOP, "query", "SELECT 1 AS n, 'a b' AS s", "--store", store]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout == "1\ta b\n"  # no box drawing when the output is not a terminal


def test_up_on_a_kafka_broker(data_dir: Path, broker: TansuBroker):
    up = Up(data_dir, "--broker", broker.url(partitions=2))
    try:
        assert up.post(completions(40, "via-kafka")).status_code == 202
        wait_for(data_dir, "SELECT count() FROM completions WHERE model = 'via-kafka'", "40")
        assert httpx.get(f"{up.url}/readyz", timeout=5).status_code == 200
    finally:
        assert up.stop() == 0


def test_ingest_and_processor_as_separate_processes(tmp_path: Path, broker: TansuBroker):
    """The distributed runtime: each service its own process, talking only through Kafka."""
    store = f"chdb:///{tmp_path}/chdb"
    assert subprocess.run([LLMLOOP, "migrate", "--store", store], check=False).returncode == 0
    port = free_port()
    env = {
        **os.environ,
        "LLMLOOP_BUS_URL": broker.url(partitions=2),
        "LLMLOOP_DATA_DIR": str(tmp_path / "ingest"),  # where ingest's keys.db lives
    }
    key = subprocess.run(
        [LLMLOOP, "keys", "create", "--project", "e2e"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ingest = subprocess.Popen([LLMLOOP, "ingest", "--port", str(port)], env=env)
    processor = subprocess.Popen([LLMLOOP, "processor", "--store", store], env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.post(
                    f"http://127.0.0.1:{port}/v1/events",
                    json={"events": completions(30, "distributed")},
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=5,
                )
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "ingest did not start"
                time.sleep(0.2)
        assert response.status_code == 202
        # The processor owns the store: wait until it committed our events, stop it, then read.
        while asyncio.run(committed(broker.bootstrap, "llmloop-processor", topics.EVENTS)) < 30:
            assert time.monotonic() < deadline, "the processor did not commit the events"
            time.sleep(0.2)
        for service in (ingest, processor):
            service.send_signal(signal.SIGINT)
            assert service.wait(30) == 0
    finally:
        for service in (ingest, processor):
            if service.poll() is None:
                service.kill()
    result = subprocess.run(
        [
            LLMLOOP,
            "query",
            "SELECT count(), uniqExact(event_id) FROM completions",
            "--store",
            store,
            "-f",
            "TSV",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == "30\t30\n"
