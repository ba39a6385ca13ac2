"""What ``Client`` and ``AsyncClient`` share: configuration, the queue, event building.

The app's calls (``log_completion``, ``feedback``) only validate and queue,
here, so both clients answer the app in microseconds; sending is theirs.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from llmloop.delivery import build_event, feedback_fields
from llmloop.retry import backoff
from llmloop.spool import Spool

log = logging.getLogger("llmloop.sdk")

DEFAULT_ENDPOINT = "http://127.0.0.1:7070"


def default_spool_dir(endpoint: str) -> Path:
    """``~/.cache/llmloop/spool/<endpoint hash>``: one spool per collector, kept across runs."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "llmloop" / "spool" / hashlib.sha256(endpoint.encode()).hexdigest()[:12]


def local_key(endpoint: str) -> str | None:
    """The key ``llmloop up`` keeps in ``DATA_DIR/local.key``, for a collector on this machine.

    Local use needs no configuration; a remote collector always needs an explicit key.
    """
    if httpx.URL(endpoint).host not in ("127.0.0.1", "localhost", "::1"):
        return None
    path = Path(os.environ.get("LLMLOOP_DATA_DIR") or ".llmloop") / "local.key"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


class ClientBase:
    """Configuration, the queue and event building that both clients share."""

    def __init__(
        self,
        endpoint: str | None = None,
        api_key: str | None = None,
        *,
        batch_size: int = 100,
        flush_interval_s: float = 1.0,
        max_queue: int = 10_000,
        spool_dir: str | Path | None = None,
        spool: bool = True,
        spool_max_bytes: int = 256 * 1024 * 1024,
        timeout_s: float = 10.0,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
    ) -> None:
        # Read here, when the app builds a client, never at import.
        self.endpoint = (endpoint or os.environ.get("LLMLOOP_ENDPOINT") or DEFAULT_ENDPOINT).rstrip(
            "/"
        )
        key = api_key or os.environ.get("LLMLOOP_API_KEY") or local_key(self.endpoint)
        self.headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "User-Agent": "llmloop-sdk/0.1",
        }
        if key:
            self.headers["Authorization"] = f"Bearer {key}"
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_queue = max_queue
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.spool: Spool | None = None
        if spool:
            try:
                self.spool = Spool(
                    Path(spool_dir) if spool_dir else default_spool_dir(self.endpoint),
                    spool_max_bytes,
                )
            except OSError as exc:
                log.error("llmloop: no disk spool (%s); undeliverable events will be dropped", exc)
        self._queue: collections.deque[bytes] = collections.deque()
        self._lock = threading.Lock()
        self._offline_until = 0.0  # while the collector is down, batches go straight to disk
        self._offline_failures = 0
        self._closed = False

    # --- the app's calls: enqueue only -------------------------------------------------

    def log_completion(
        self,
        *,
        model: str,
        prompt: str | list[dict[str, Any]],
        completion: str,
        event_id: str | uuid.UUID | None = None,
        **fields: Any,
    ) -> str:
        """Queue a completion; returns its event id, to attach feedback to.

        ``fields``: any optional completion field (``prompt_tokens``,
        ``completion_tokens``, ``latency_ms``, ``user_id``, ``attributes`` ...).
        """
        values: dict[str, Any] = {
            "type": "completion",
            "model": model,
            "prompt": prompt,
            "completion": completion,
        }
        if event_id is not None:
            values["event_id"] = event_id
        return self._submit({**fields, **values})

    def feedback(
        self,
        completion_id: str | uuid.UUID | None,
        kind: str,
        value: Any = None,
        **fields: Any,
    ) -> str:
        """Queue feedback on a completion; returns the feedback's event id.

        ``kind`` and ``value``: ``"thumbs"`` with True/False or ±1; ``"score"``
        with a number (``scale_min``/``scale_max``); ``"comment"`` and
        ``"correction"`` with text; ``"preference"`` with ``chosen_id`` and
        ``rejected_id`` (``completion_id`` may be None). ``source`` is user,
        annotator or judge.
        """
        return self._submit(feedback_fields(completion_id, kind, value, fields))

    def _submit(self, fields: dict[str, Any]) -> str:
        try:
            event_id, wire = build_event(fields)
            if wire is None or self._closed:
                if self._closed:
                    log.warning("llmloop dropped event %s: the client is closed", event_id)
                return event_id
            with self._lock:
                self._queue.append(wire)
                size = len(self._queue)
                overflow = self._take(size) if size > self.max_queue else []
            if overflow:
                self._spill(overflow, "the queue is full")
            if size >= self.batch_size:
                self._wake()
            return event_id
        except Exception:  # the app's request path must never see our problems
            log.exception("llmloop could not queue an event")
            return str(fields.get("event_id", ""))

    # --- shared mechanics ---------------------------------------------------------------

    def _take(self, n: int) -> list[bytes]:
        """Pop up to ``n`` events; caller holds the lock."""
        return [self._queue.popleft() for _ in range(min(n, len(self._queue)))]

    def _spill(self, events: list[bytes], why: str) -> None:
        """Put events on the disk spool; log them as dropped if there is none."""
        for start in range(0, len(events), self.batch_size):
            chunk = events[start : start + self.batch_size]
            try:
                if self.spool is None:
                    raise OSError("spooling is off")
                self.spool.put(chunk)
            except OSError as exc:
                log.error("llmloop dropped %d events (%s; spool: %s)", len(chunk), why, exc)

    def _wake(self) -> None:
        raise NotImplementedError

    def _offline(self) -> bool:
        return time.monotonic() < self._offline_until

    def _went_offline(self) -> None:
        self._offline_failures += 1
        delay = backoff(self._offline_failures, self.backoff_s, self.max_backoff_s)
        self._offline_until = time.monotonic() + max(delay, self.backoff_s)

    def _back_online(self) -> None:
        if self._offline_failures:
            log.info("llmloop: the collector at %s answers again", self.endpoint)
        self._offline_failures = 0
        self._offline_until = 0.0

    def _spooled(self) -> int:
        return self.spool.count() if self.spool else 0

    def pending(self) -> int:
        """Events in memory plus batches on the spool (claimed ones included)."""
        return len(self._queue) + (self.spool.count() if self.spool else 0)
