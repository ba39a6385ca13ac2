"""A real HTTP webhook receiver on 127.0.0.1 for tests, benchmarks and trying rules out.

Scriptable per path: answer each request with a status, after a delay, or
hang past the client's timeout::

    async with WebhookReceiver() as hook:
        hook.script("/pd", [503, "timeout", 200])   # then 200 for ever
        url = hook.url("/pd")
        ...
        await hook.wait_for(1)                       # requests that got a 2xx

Needs aiohttp (the dev extra, and faust's dependencies, have it). ``llmloop demo``
uses it too: its demo history delivers to one of these, so every panel shows deliveries.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from llmloop.signing import verify_signature

Step = int | str  # an HTTP status, or "timeout" (answer after hang_s)


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it, and what it answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when it arrived
    answered: int | None  # None: it hung (timeout)

    def json(self) -> Any:
        return orjson.loads(self.body)

    def verify(self, secret: str, **kwargs: Any) -> int:
        """Check the llmloop signature with the SDK helper (raises ``InvalidSignature``)."""
        return verify_signature(secret, self.body, self.headers, **kwargs)


class WebhookReceiver:
    """An aiohttp server on a free loopback port that records every request."""

    def __init__(self, *, delay_s: float = 0.0, hang_s: float = 30.0, port: int = 0) -> None:
        self.delay_s = delay_s
        self.hang_s = hang_s
        self.requests: list[Received] = []
        self._scripts: dict[str, deque[Step]] = defaultdict(deque)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = port  # 0: a free one, chosen when it starts
        self.in_flight = 0
        self.max_in_flight = 0

    def script(self, path: str, steps: list[Step]) -> None:
        """Answer the next requests to ``path`` with ``steps``; then 200."""
        self._scripts[path].extend(steps)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def delivered(self, path: str | None = None) -> list[Received]:
        return [
            r
            for r in self.requests
            if r.answered is not None
            and 200 <= r.answered < 300
            and (path is None or r.path == path)
        ]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            queue = self._scripts.get(request.path)
            step: Step = queue.popleft() if queue else 200
            if step == "timeout":
                await self._record(request, body, None)
                await asyncio.sleep(self.hang_s)
                return web.Response(status=200)
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            status = int(step)
            await self._record(request, body, status)
            headers = {"Retry-After": "0"} if status == 429 else {}
            return web.Response(status=status, text="ok" if status < 300 else "no", headers=headers)
        finally:
            self.in_flight -= 1

    async def _record(self, request: web.Request, body: bytes, status: int | None) -> None:
        async with self._changed:
            self.requests.append(
                Received(request.path, dict(request.headers), body, time.time(), status)
            )
            self._changed.notify_all()

    async def wait_for(
        self, delivered: int, *, path: str | None = None, timeout_s: float = 20.0
    ) -> list[Received]:
        """Wait until ``delivered`` requests got a 2xx; returns them (fails on timeout)."""
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: len(self.delivered(path)) >= delivered), timeout_s
            )
        return self.delivered(path)

    async def wait_requests(self, count: int, *, timeout_s: float = 20.0) -> list[Received]:
        """Wait until ``count`` requests arrived, whatever they were answered."""
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: len(self.requests) >= count), timeout_s
            )
        return list(self.requests)

    async def start(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None)  # an asyncio.Server once started
        assert sockets, "the webhook receiver did not bind"
        self.port = int(sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> WebhookReceiver:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
