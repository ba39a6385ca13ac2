"""Delivering notifications: signed HTTP requests, retries with backoff, dead letters.

The worker takes due notifications from the journal's outbox, at most
``concurrency`` in flight (memory stays flat however slow a receiver is), and
records every attempt as a ``NotificationAttempted`` event. Retry on timeouts,
connection errors, 408, 429 (honouring ``Retry-After``) and 5xx, with
exponential backoff and jitter; a 4xx is the receiver saying "never": no
retry. After the last attempt the notification is dead-lettered: kept in the
outbox as ``dead`` (``llmloop alerts dlq``, replayable) and published on the
dead-letter topic.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import httpx
import orjson

from llmloop import topics
from llmloop.bus import Record
from llmloop.events import NotificationAttempted, encode_event
from llmloop.retry import backoff, parse_retry_after
from llmloop.signing import IDEMPOTENCY_HEADER, sign
from llmloop_alerting.journal import Journal, Notification
from llmloop_alerting.receivers import render
from llmloop_alerting.rules import Receiver

log = logging.getLogger(__name__)

USER_AGENT = "llmloop-alerting/1"
_RETRY_STATUS = {408, 429}


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: attempt n waits between d/2 and d, d = base * 2**(n-1)."""

    base_s: float = 0.5
    max_s: float = 60.0
    # A receiver's Retry-After is obeyed up to this long; beyond it, our own backoff.
    max_retry_after_s: float = 300.0

    def delay(self, attempt: int, retry_after_s: float | None = None) -> float:
        hint = None if retry_after_s is None else min(retry_after_s, self.max_retry_after_s)
        return backoff(attempt - 1, self.base_s, self.max_s, hint)


@dataclass(frozen=True)
class AttemptResult:
    delivered: bool
    retryable: bool
    http_status: int | None
    error: str | None
    duration_ms: float
    retry_after_s: float | None = None


async def send(
    client: httpx.AsyncClient,
    receiver: Receiver,
    notification: Notification,
    secrets: list[str],
    external_url: str = "",
) -> AttemptResult:
    """One signed POST of ``notification`` to ``receiver``; never raises for HTTP trouble."""
    body = orjson.dumps(render(notification.alert, receiver, notification.id, external_url))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        IDEMPOTENCY_HEADER: notification.id,
        **receiver.headers,
        **sign([receiver.secret] if receiver.secret else secrets, body),
    }
    started = time.perf_counter()
    try:
        response = await client.post(
            receiver.url, content=body, headers=headers, timeout=receiver.timeout.total_seconds()
        )
    except httpx.TimeoutException as exc:
        return AttemptResult(
            False,
            True,
            None,
            f"timeout: {type(exc).__name__}",
            (time.perf_counter() - started) * 1000,
        )
    except httpx.HTTPError as exc:  # connection refused, reset, DNS...
        return AttemptResult(
            False,
            True,
            None,
            f"{type(exc).__name__}: {exc}"[:500],
            (time.perf_counter() - started) * 1000,
        )
    elapsed = (time.perf_counter() - started) * 1000
    status = response.status_code
    if 200 <= status < 300:
        return AttemptResult(True, False, status, None, elapsed)
    error = f"HTTP {status}: {response.text[:300]}".strip()
    retryable = status >= 500 or status in _RETRY_STATUS
    return AttemptResult(
        False,
        retryable,
        status,
        error,
        elapsed,
        parse_retry_after(response.headers.get("Retry-After")),
    )


def _attempt_event(
    n: Notification, receiver: Receiver, result: AttemptResult, outcome: str, next_at: float | None
) -> NotificationAttempted:
    return NotificationAttempted(
        project_id=n.alert.project_id,
        notification_id=n.id,
        rule=n.alert.rule,
        fingerprint=n.alert.fingerprint,
        status=n.alert.status,
        receiver=receiver.name,
        receiver_type=receiver.type,
        attempt=min(n.attempts + 1, 1000),
        outcome=outcome,  # type: ignore[arg-type]
        http_status=result.http_status,
        error=result.error[:2048] if result.error else None,
        duration_ms=result.duration_ms,
        next_attempt_at=datetime.fromtimestamp(next_at, UTC) if next_at else None,
    )


class Deliverer:
    """Sends what the outbox holds, bounded in flight, until stopped."""

    def __init__(
        self,
        journal: Journal,
        receivers: Callable[[], Mapping[str, Receiver]],
        secrets: list[str],
        *,
        concurrency: int = 32,
        policy: RetryPolicy | None = None,
        poll_s: float = 0.5,
        external_url: str = "",
        on_recorded: Callable[[], None] = lambda: None,
    ) -> None:
        self.journal = journal
        self.receivers = receivers
        self.secrets = secrets
        self.concurrency = concurrency
        self.policy = policy or RetryPolicy()
        self.poll_s = poll_s
        self.external_url = external_url
        self.on_recorded = on_recorded
        self.wake = asyncio.Event()
        self.delivered = 0
        self.dead_lettered = 0
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._pending: list[
            tuple[Notification, list[tuple[str, Record]], asyncio.Future[None]]
        ] = []
        self._writer: asyncio.Task[None] | None = None

    async def run(self, stop: asyncio.Event) -> None:
        limits = httpx.Limits(
            max_connections=self.concurrency, max_keepalive_connections=self.concurrency
        )
        async with httpx.AsyncClient(limits=limits, follow_redirects=False) as client:
            while not stop.is_set():
                free = self.concurrency - len(self._in_flight)
                if free > 0:
                    for n in await self.journal.due(time.time(), free, set(self._in_flight)):
                        task = asyncio.create_task(self._deliver(client, n))
                        self._in_flight[n.id] = task
                        task.add_done_callback(lambda _t, i=n.id: self._done(i))
                self.wake.clear()
                waiters = [
                    asyncio.ensure_future(self.wake.wait()),
                    asyncio.ensure_future(stop.wait()),
                ]
                await asyncio.wait(
                    waiters, timeout=self.poll_s, return_when=asyncio.FIRST_COMPLETED
                )
                for w in waiters:
                    w.cancel()
            # Let in-flight requests finish and record: an interrupted one would be resent.
            if self._in_flight:
                await asyncio.gather(*self._in_flight.values(), return_exceptions=True)

    async def drain(self, ids: set[str]) -> None:
        """Wait for the deliveries in flight among ``ids`` to finish and be recorded."""
        tasks = [t for i, t in self._in_flight.items() if i in ids]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _done(self, notification_id: str) -> None:
        self._in_flight.pop(notification_id, None)
        self.wake.set()

    async def _deliver(self, client: httpx.AsyncClient, n: Notification) -> None:
        receiver = self.receivers().get(n.receiver)
        if receiver is None or not receiver.enabled:
            why = "is no longer in the rules" if receiver is None else "is disabled (no URL)"
            result = AttemptResult(False, False, None, f"receiver {n.receiver!r} {why}", 0.0)
            receiver = receiver or Receiver(name=n.receiver)
        else:
            result = await send(client, receiver, n, self.secrets, self.external_url)
        attempts = n.attempts + 1
        if result.delivered:
            outcome, state, next_at = "delivered", "delivered", None
            self.delivered += 1
        elif result.retryable and attempts < receiver.max_attempts:
            outcome, state = "retrying", "pending"
            next_at = time.time() + self.policy.delay(attempts, result.retry_after_s)
        else:
            outcome, state, next_at = "dead_lettered", "dead", None
            self.dead_lettered += 1
        event = _attempt_event(n, receiver, result, outcome, next_at)
        records = [(topics.ALERTS, Record(event.key(), encode_event(event)))]
        if outcome == "dead_lettered":
            records.append((topics.NOTIFICATIONS_DEADLETTER, records[0][1]))
            log.warning(
                "notification %s to %s dead-lettered after %d attempt(s): %s",
                n.id[:12],
                receiver.name,
                attempts,
                result.error,
            )
        elif outcome == "retrying":
            log.info(
                "notification %s to %s: %s; retry %d in %.1f s",
                n.id[:12],
                receiver.name,
                result.error,
                attempts + 1,
                (next_at or 0) - time.time(),
            )
        updated = replace(
            n,
            attempts=attempts,
            state=state,
            next_at=next_at or time.time(),
            last_error=result.error or "",
            last_status=result.http_status,
        )
        await self._record(updated, records)

    async def _record(self, n: Notification, records: list[tuple[str, Record]]) -> None:
        # Results that finish together share one transaction (one fsync): with a slow
        # receiver and many requests in flight, per-result commits would be the bottleneck.
        # The caller waits for its own row, so its slot stays taken until it is on disk.
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((n, records, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending())
        await done

    async def _write_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self.journal.record_attempts([(n, r) for n, r, _ in batch])
            except Exception as exc:  # the row stays as it was: the attempt is made again
                log.exception("could not record %d delivery attempt(s)", len(batch))
                for *_, done in batch:
                    done.set_exception(exc)
                continue
            for *_, done in batch:
                done.set_result(None)
            self.on_recorded()


def notification_id() -> str:
    """A fresh idempotency key (hex UUID4)."""
    return uuid.uuid4().hex
