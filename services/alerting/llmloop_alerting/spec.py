"""Alerting, declared once: rules on the metric events, signed webhooks, its commands."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from llmloop.service import Runnable, ServiceSpec, Wiring
from llmloop_alerting.settings import AlertingSettings


def parts(wiring: Wiring) -> Mapping[str, Runnable]:
    """``{"alerting": AlertingService}`` (state in DATA_DIR/alerting.db)."""
    from llmloop_alerting.service import AlertingService

    settings = cast(AlertingSettings, wiring.settings)  # derive_settings made it one
    return {"alerting": AlertingService(wiring.bus, settings)}


def add_commands(sub: Any) -> None:
    from llmloop_alerting.commands import add_commands

    add_commands(sub)


SPEC = ServiceSpec(
    name="alerting",
    summary="evaluates alert rules on the metric events and delivers signed webhooks",
    extra="alerting",
    settings=AlertingSettings,
    add_commands=add_commands,
    parts=parts,
    order=40,
)
