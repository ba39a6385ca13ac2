"""The console, declared once: its commands. It runs nothing on the bus.

``llmloop up`` adds its routes to the API's app (``llmloop_app.console``), and
``llmloop console`` serves it alone against a store.
"""

from __future__ import annotations

from typing import Any

from llmloop.service import ServiceSpec


def add_commands(sub: Any) -> None:
    from llmloop_console.commands import add_commands

    add_commands(sub)


SPEC = ServiceSpec(
    name="console",
    summary="the browser console: dashboards, conversations, alerts, retraining, review queue",
    extra="console",
    add_commands=add_commands,
    order=90,
)
