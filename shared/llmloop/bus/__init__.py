"""The bus port and its adapters, chosen by URL scheme."""

from __future__ import annotations

from pathlib import Path

from llmloop.bus.base import (
    BusError,
    BusUnavailable,
    Consumer,
    EventBus,
    Message,
    Record,
    consume,
    retry_until_done,
)
from llmloop.urls import redact_url

__all__ = [
    "BusError",
    "BusUnavailable",
    "Consumer",
    "EventBus",
    "Message",
    "Record",
    "consume",
    "open_bus",
    "retry_until_done",
]


def open_bus(url: str) -> EventBus:
    """The adapter for ``url``: ``memory://``, ``sqlite:///PATH`` or ``kafka://HOST:PORT``.

    Not started: call ``await bus.start()``. Kafka is imported only when asked for.
    """
    shown = redact_url(url)  # errors name the URL, never its password
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(
            f"bus URL {shown!r} has no scheme; use memory://, sqlite:///PATH or kafka://HOST:PORT"
        )
    if scheme == "memory":
        from llmloop.bus.memory import memory_bus

        return memory_bus(url)
    if scheme == "sqlite":
        if not rest.startswith("/") or len(rest) < 2:
            raise ValueError(
                f"bus URL {shown!r}: expected sqlite:///relative/path or sqlite:////abs/path"
            )
        from llmloop.bus.sqlite import sqlite_bus

        return sqlite_bus(url, Path(rest[1:]))
    if scheme == "kafka":
        from llmloop.bus.kafka import KafkaBus

        return KafkaBus(url)
    raise ValueError(f"bus URL {shown!r}: unknown scheme {scheme!r}; use memory, sqlite or kafka")
