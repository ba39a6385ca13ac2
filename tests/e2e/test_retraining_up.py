"""The loop inside `llmloop up`: feedback over HTTP, pairs made by the running service,
`llmloop retrain` beside it, the version stored by up's processor and listed through up."""

from __future__ import annotations

import json
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

LLMLOOP = str(Path(sys.executable).with_name("llmloop"))
GOOD = ["glad", "to", "help", "here", "is", "a", "clear", "answer", "with", "steps"]
BAD = ["go", "away", "not", "my", "problem", "figure", "it", "out", "yourself"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(condition, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return result


def pairs_in(state: Path) -> int:
    if not state.exists():
        return 0
    with sqlite3.connect(state) as db:
        try:
            return int(db.execute("SELECT COUNT(*) FROM pairs").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def llmloop(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LLMLOOP, *args], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_feedback_to_model_version_inside_up(tmp_path):
    data = tmp_path / "data"
    port = free_port()
    log = (tmp_path / "up.log").open("w")
    up = subprocess.Popen(
        [LLMLOOP, "up", "--data-dir", str(data), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait(lambda: (data / "runtime.json").exists(), "llmloop up to start")
        key = (data / "local.key").read_text().strip()
        rng = random.Random(3)
        events = []
        for i in range(40):
            cid = str(uuid.uuid4())
            events += [
                {
                    "type": "completion",
                    "event_id": cid,
                    "model": "tiny-chat",
                    "prompt": f"q{i} {rng.random()}",
                    "completion": " ".join(rng.sample(BAD, 5)),
                },
                {
                    "type": "feedback",
                    "kind": "correction",
                    "event_id": str(uuid.uuid4()),
                    "completion_id": cid,
                    "correction": " ".join(rng.sample(GOOD, 5)),
                },
            ]
        response = httpx.post(
            f"{url}/v1/events",
            json={"events": events},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert response.status_code < 300, response.text
        wait(lambda: pairs_in(data / "retraining" / "state.db") == 40, "40 pairs")

        policy = tmp_path / "retrain.yaml"
        policy.write_text(
            'default: {min_total_pairs: 16, base_model: "tiny:0", '
            "train: {max_steps: 20, batch_size: 16, learning_rate: 0.0005}}\n"
        )
        done = llmloop(
            "retrain", "--model", "tiny-chat", "--policy", str(policy), "--data-dir", str(data)
        )
        assert done.returncode == 0, done.stderr
        version = done.stdout.split("model version ")[1].split(":")[0]

        def listed() -> str | None:
            out = llmloop("models", "list", "--data-dir", str(data)).stdout
            return out if version in out else None

        assert "tiny-chat" in wait(listed, "the version in ClickHouse, through up")
        shown = json.loads(llmloop("models", "show", version, "--data-dir", str(data)).stdout)
        assert shown["project_id"] == "default" and shown["base_model"] == "tiny:0"
    finally:
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0, (tmp_path / "up.log").read_text()[-3000:]
