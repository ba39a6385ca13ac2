"""The retraining service as the embedded runtime (``llmloop up``) runs it."""

from __future__ import annotations

from typing import Any

from llmloop.bus import EventBus
from llmloop.settings import Settings
from llmloop_retraining.config import RetrainingSettings


def services(settings: Settings, bus: EventBus) -> dict[str, Any]:
    """``{"retraining": Retrainer}``; its settings add the LLMLOOP_RETRAIN_* variables."""
    from llmloop_retraining.service import Retrainer

    retraining = RetrainingSettings(**settings.model_dump())
    return {"retraining": Retrainer(bus, retraining)}
