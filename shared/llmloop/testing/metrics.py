"""Metric events as the processor publishes them, for tests and benchmarks of alerting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from llmloop.service import Runnable

R = TypeVar("R", bound=Runnable)


@asynccontextmanager
async def running(part: R) -> AsyncIterator[R]:
    """``part`` running in this loop (``async with running(AlertingService(...)) as s``),
    stopped cleanly on exit: its batch in flight finishes."""
    stop = asyncio.Event()
    task = asyncio.create_task(part.run(stop))
    await asyncio.sleep(0)
    try:
        yield part
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def metric_event(
    name: str,
    value: float,
    *,
    p_value: float | None = None,
    labels: dict[str, str] | None = None,
    project_id: str = "acme",
    sample_size: int = 500,
) -> Any:
    """A metric event as the processor publishes it, for the window that just ended."""
    from datetime import UTC, datetime, timedelta

    from llmloop.events import MetricComputed

    end = datetime.now(UTC)
    return MetricComputed(
        name=name,
        value=value,
        p_value=p_value,
        labels=labels or {},
        project_id=project_id,
        sample_size=sample_size,
        window_start=end - timedelta(minutes=1),
        window_end=end,
    )


async def publish_metrics(bus: Any, *events: Any) -> None:
    from llmloop import topics
    from llmloop.bus import Record
    from llmloop.events import encode_event

    await bus.publish(topics.METRICS, [Record(e.key(), encode_event(e)) for e in events])
