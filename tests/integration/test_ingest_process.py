"""`llmloop ingest` as its own process: keys from `llmloop keys`, JSON logs, metrics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import orjson

from llmloop.testing.server import wait_ready
from llmloop.testing.tansu import free_port

LLMLOOP = str(Path(sys.executable).with_name("llmloop"))


def test_ingest_process_with_a_cli_key_json_logs_and_metrics(tmp_path: Path) -> None:
    env = {**os.environ, "LLMLOOP_DATA_DIR": str(tmp_path), "LLMLOOP_LOG_FORMAT": "json"}
    key = subprocess.run(
        [LLMLOOP, "keys", "create", "--project", "shop"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "ingest.log"
    proc = subprocess.Popen(
        [LLMLOOP, "ingest", "--port", str(port), "--broker", "memory://"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    try:
        wait_ready(url, proc, log)
        event = {
            "type": "completion",
            "event_id": str(uuid.uuid4()),
            "model": "m",
            "prompt": "p",
            "completion": "c",
        }
        headers = {"Authorization": f"Bearer {key}"}
        assert httpx.post(f"{url}/v1/events", json={"events": [event]}).status_code == 401
        response = httpx.post(f"{url}/v1/events", json={"events": [event]}, headers=headers)
        assert response.status_code == 202
        metrics = httpx.get(f"{url}/metrics").text
        assert 'llmloop_ingest_events_accepted_total{type="completion"} 1.0' in metrics
        assert 'llmloop_ingest_events_rejected_total{reason="unauthorized"} 1.0' in metrics
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    lines = [orjson.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert lines and all({"ts", "level", "logger", "msg"} <= set(entry) for entry in lines)
    assert any("auth by API keys in" in entry["msg"] for entry in lines)
