"""Serve an ASGI app on a free loopback port in a background thread, for tests; wait
for a service process to be ready; a minimal completion body.

A real HTTP server (uvicorn), so clients exercise real sockets, real
connection errors when it stops, and real restarts on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from llmloop.testing.tansu import free_port


class _Server(uvicorn.Server):
    """No signal handlers: a thread cannot install them, and the test owns the process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


class ServedApp:
    """``with ServedApp(app) as served: httpx.get(served.url + "/healthz")``."""

    def __init__(self, app: Any, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.app = app
        self.host = host
        self.port = port or free_port(host)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> ServedApp:
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
        server = _Server(config)
        self._server = server
        self._thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the app did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
            self._server = self._thread = None

    def __enter__(self) -> ServedApp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.stop()


def wait_ready(
    url: str,
    proc: subprocess.Popen[Any],
    log: Path,
    *,
    path: str = "/readyz",
    timeout_s: float = 30,
) -> None:
    """Wait until a service process started from the CLI answers 200 on ``path``;
    fail with the tail of its log if it exits or takes longer than ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{url}{path}", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
            raise AssertionError(f"{url} did not become ready:\n{tail}")
        time.sleep(0.1)


def completion(**fields: Any) -> dict[str, Any]:
    """A minimal valid completion as an app posts it, with ``fields`` over the defaults."""
    return {
        "type": "completion",
        "event_id": str(uuid.uuid4()),
        "model": "m",
        "prompt": "p",
        "completion": "c",
        **fields,
    }
