"""The client apps use: ``llmloop.Client`` (threads) and ``llmloop.AsyncClient`` (asyncio).

::

    client = llmloop.Client("http://localhost:7070", api_key="llk_...")
    cid = client.log_completion(model="gpt-4o-mini", prompt="Hi", completion="Hello!")
    client.feedback(cid, "thumbs", True)

Calls only put the event on an in-memory queue and return its id; a
background worker sends batches (by count or interval), gzip'd, and retries
429 / 5xx / network errors with exponential backoff and jitter. A batch that
cannot be delivered, or a queue that overflows, goes to a disk spool that is
sent once the collector answers again, also by the next process that uses the
same spool. Nothing raises into the app: a problem is logged (logger
``llmloop.sdk``) with what was dropped and why.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
import weakref
from typing import Any

import httpx

from llmloop.async_client import AsyncClient
from llmloop.delivery import Answer, Verdict, batch_body, judge
from llmloop.retry import backoff
from llmloop.sdk_base import DEFAULT_ENDPOINT, ClientBase, default_spool_dir, local_key
from llmloop.urls import redact_url

__all__ = ["DEFAULT_ENDPOINT", "AsyncClient", "Client", "default_spool_dir", "local_key"]

log = logging.getLogger("llmloop.sdk")


class Client(ClientBase):
    """The synchronous client: a daemon thread sends in the background.

    See the module docs; ``flush()`` waits for delivery, ``close()`` flushes and
    spools what is left (it also runs at interpreter exit).
    """

    def __init__(self, endpoint: str | None = None, api_key: str | None = None, **options: Any):
        super().__init__(endpoint, api_key, **options)
        self._http = httpx.Client(timeout=self.timeout_s, headers=self.headers)
        self._cond = threading.Condition(self._lock)
        self._flush_requested = False
        self._in_flight = 0
        self._thread = threading.Thread(target=self._run, name="llmloop-sdk", daemon=True)
        self._thread.start()
        atexit.register(_close_at_exit, weakref.ref(self))

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def flush(self, timeout_s: float = 10.0, *, spooled: bool = True) -> bool:
        """Send everything queued (and, with ``spooled``, the spool); True when all is out.

        While the collector is unreachable this waits up to ``timeout_s``; what is
        left stays on disk and goes out when it is back.
        """
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._flush_requested = True
            self._cond.notify_all()
            while self._queue or self._in_flight or (spooled and self._spooled()):
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(min(left, 0.05))
                self._flush_requested = True
            return True

    def close(self, timeout_s: float = 5.0) -> None:
        """Flush for up to ``timeout_s``, spool whatever is left, stop the worker."""
        if self._closed:
            return
        with contextlib.suppress(Exception):
            self.flush(timeout_s, spooled=False)  # the spool is safe on disk already
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout_s + self.timeout_s)
        with self._lock:
            left = self._take(len(self._queue))
        if left:
            self._spill(left, "closing")
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the worker thread ----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                deadline = time.monotonic() + self.flush_interval_s
                while (
                    not self._closed
                    and not self._flush_requested
                    and len(self._queue) < self.batch_size
                    and (left := deadline - time.monotonic()) > 0
                ):
                    self._cond.wait(left)
                self._flush_requested = False
                batch = self._take(self.batch_size)
                closing = self._closed
                self._in_flight += 1
            try:
                if batch:
                    self._deliver(batch, closing)
                elif not closing:
                    self._drain_spool()
            except Exception:
                log.exception("llmloop worker error; events stay queued or spooled")
                time.sleep(self.backoff_s)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()
            if closing and not batch:
                return

    def _post(self, events: list[bytes]) -> Answer:
        try:
            r = self._http.post(f"{self.endpoint}/v1/events", content=batch_body(events))
        except httpx.HTTPError as exc:
            log.debug("llmloop: %s unreachable: %s", redact_url(self.endpoint), exc)
            return Answer(Verdict.RETRY)
        return judge(r.status_code, r.headers, r.content, len(events))

    def _deliver(self, events: list[bytes], closing: bool) -> bool:
        """Send with retries; spool on give-up. True when delivered."""
        if self._offline() and not closing:
            self._spill(events, "the collector is unreachable")
            return False
        for attempt in range(0 if closing else self.max_retries + 1):
            answer = self._post(events)
            if answer.verdict is Verdict.DELIVERED:
                self._back_online()
                return True
            if answer.verdict is Verdict.SPLIT:
                half = len(events) // 2
                return self._deliver(events[:half], closing) & self._deliver(events[half:], closing)
            if answer.verdict is Verdict.HOLD or attempt == self.max_retries:
                break
            delay = backoff(attempt, self.backoff_s, self.max_backoff_s, answer.retry_after_s)
            with self._cond:
                if self._cond.wait_for(lambda: self._closed, delay):
                    break  # closing: do not hold the app's exit, spool instead
        self._went_offline()
        self._spill(events, "the collector did not accept them")
        return False

    def _drain_spool(self) -> None:
        if self.spool is None or self._offline():
            return
        claimed = self.spool.claim()
        if claimed is None:
            return
        path, events = claimed
        answer = self._post(events)
        if answer.verdict is Verdict.DELIVERED:
            self.spool.done(path)
            self._back_online()
        elif answer.verdict is Verdict.SPLIT:
            self.spool.done(path)
            half = len(events) // 2
            self._spill(events[:half], "split")
            self._spill(events[half:], "split")
        else:
            self.spool.release(path)
            self._went_offline()


def _close_at_exit(ref: weakref.ref[Client]) -> None:
    client = ref()
    if client is not None:
        client.close(timeout_s=2.0)
