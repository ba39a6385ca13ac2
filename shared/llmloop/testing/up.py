"""`llmloop up` as a user runs it, for end-to-end tests: a real process on a free port,
and `llmloop query` against it (through up, as a user's shell would)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from llmloop.testing.server import wait_ready
from llmloop.testing.tansu import free_port

LLMLOOP = str(Path(sys.executable).with_name("llmloop"))


class Up:
    """One `llmloop up` process on a data dir."""

    def __init__(self, data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir.parent / f"up-{self.port}.log"
        self.proc = subprocess.Popen(
            [LLMLOOP, "up", "--data-dir", str(data_dir), "--port", str(self.port), *extra],
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            env=env,
        )
        wait_ready(self.url, self.proc, self.log, path="/healthz", timeout_s=60)

    def post(self, events: list[dict[str, Any]]) -> httpx.Response:
        # The API is authenticated; `up` keeps a key for local use in DATA_DIR/local.key.
        key = (self.data_dir / "local.key").read_text().strip()
        return httpx.post(
            f"{self.url}/v1/events",
            json={"events": events},
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )

    def stop(self, sig: int = signal.SIGINT) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)


def query(data_dir: Path, sql: str) -> str:
    result = subprocess.run(
        [LLMLOOP, "query", sql, "--data-dir", str(data_dir)],  # into a pipe: TSV
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def wait_for(data_dir: Path, sql: str, expected: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (got := query(data_dir, sql)) != expected:
        assert time.monotonic() < deadline, f"{sql!r} gave {got!r}, expected {expected!r}"
        time.sleep(0.2)
