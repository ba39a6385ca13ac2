"""What ``llmloop up`` runs of alerting: the service, beside the API, on the same bus."""

from __future__ import annotations

from typing import Any

from llmloop.bus import EventBus
from llmloop.settings import Settings
from llmloop_alerting.service import AlertingService
from llmloop_alerting.settings import AlertingSettings


def services(settings: Settings, bus: EventBus) -> dict[str, Any]:
    """``{"alerting": AlertingService}`` with the shared settings plus ``LLMLOOP_ALERTING_*``."""
    # Flags given to `llmloop up` (data dir, bus) win over the environment, as for every service.
    alerting = AlertingSettings(**settings.model_dump())
    return {"alerting": AlertingService(bus, alerting)}
