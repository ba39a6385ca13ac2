"""``llmloop.AsyncClient``: the SDK for asyncio apps (see ``llmloop.sdk``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import httpx

from llmloop.delivery import Answer, Verdict, batch_body, judge
from llmloop.retry import backoff
from llmloop.sdk_base import ClientBase
from llmloop.urls import redact_url

log = logging.getLogger("llmloop.sdk")


class AsyncClient(ClientBase):
    """The asyncio twin of ``Client``: a task on the app's loop sends in the background.

    ``log_completion`` and ``feedback`` are plain (non-async) calls that only
    queue; ``await flush()`` and ``await aclose()`` wait for delivery.
    """

    def __init__(self, endpoint: str | None = None, api_key: str | None = None, **options: Any):
        super().__init__(endpoint, api_key, **options)
        self._http = httpx.AsyncClient(timeout=self.timeout_s, headers=self.headers)
        self._task: asyncio.Task[None] | None = None
        self._event: asyncio.Event | None = None
        self._busy = False

    def _ensure_task(self) -> None:
        if self._task is None or self._task.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # not on a loop yet: the next call on one starts the worker
            self._event = asyncio.Event()
            self._task = loop.create_task(self._run(), name="llmloop-sdk")

    def _submit(self, fields: dict[str, Any]) -> str:
        self._ensure_task()
        return super()._submit(fields)

    def _wake(self) -> None:
        if self._event is not None:
            self._event.set()

    async def flush(self, timeout_s: float = 10.0, *, spooled: bool = True) -> bool:
        """Send everything queued (and, with ``spooled``, the spool); True when all is out."""
        self._ensure_task()
        deadline = time.monotonic() + timeout_s
        while self._queue or self._busy or (spooled and self._spooled()):
            if time.monotonic() > deadline or self._task is None or self._task.done():
                return False
            self._wake()
            await asyncio.sleep(0.02)
        return True

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """Flush for up to ``timeout_s``, spool whatever is left, stop the worker."""
        if self._closed:
            return
        with contextlib.suppress(Exception):
            await self.flush(timeout_s, spooled=False)
        self._closed = True
        self._wake()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, timeout_s + self.timeout_s)
        left = self._take(len(self._queue))
        if left:
            await asyncio.to_thread(self._spill, left, "closing")
        await self._http.aclose()

    close = aclose

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _run(self) -> None:
        assert self._event is not None
        while True:
            if len(self._queue) < self.batch_size and not self._closed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._event.wait(), self.flush_interval_s)
            self._event.clear()
            batch = self._take(self.batch_size)
            self._busy = True
            try:
                if batch:
                    await self._deliver(batch, self._closed)
                elif not self._closed:
                    await self._drain_spool()
            except Exception:
                log.exception("llmloop worker error; events stay queued or spooled")
                await asyncio.sleep(self.backoff_s)
            finally:
                self._busy = False
            if self._closed and not self._queue:
                return

    async def _post(self, events: list[bytes]) -> Answer:
        try:
            r = await self._http.post(f"{self.endpoint}/v1/events", content=batch_body(events))
        except httpx.HTTPError as exc:
            log.debug("llmloop: %s unreachable: %s", redact_url(self.endpoint), exc)
            return Answer(Verdict.RETRY)
        return judge(r.status_code, r.headers, r.content, len(events))

    async def _deliver(self, events: list[bytes], closing: bool) -> bool:
        if self._offline() and not closing:
            await asyncio.to_thread(self._spill, events, "the collector is unreachable")
            return False
        for attempt in range(0 if closing else self.max_retries + 1):
            answer = await self._post(events)
            if answer.verdict is Verdict.DELIVERED:
                self._back_online()
                return True
            if answer.verdict is Verdict.SPLIT:
                half = len(events) // 2
                first = await self._deliver(events[:half], closing)
                return await self._deliver(events[half:], closing) and first
            if answer.verdict is Verdict.HOLD or attempt == self.max_retries or self._closed:
                break
            await asyncio.sleep(
                backoff(attempt, self.backoff_s, self.max_backoff_s, answer.retry_after_s)
            )
        self._went_offline()
        await asyncio.to_thread(self._spill, events, "the collector did not accept them")
        return False

    async def _drain_spool(self) -> None:
        if self.spool is None or self._offline():
            return
        claimed = await asyncio.to_thread(self.spool.claim)
        if claimed is None:
            return
        path, events = claimed
        answer = await self._post(events)
        if answer.verdict is Verdict.DELIVERED:
            self.spool.done(path)
            self._back_online()
        elif answer.verdict is Verdict.SPLIT:
            self.spool.done(path)
            half = len(events) // 2
            await asyncio.to_thread(self._spill, events[:half], "split")
            await asyncio.to_thread(self._spill, events[half:], "split")
        else:
            self.spool.release(path)
            self._went_offline()
