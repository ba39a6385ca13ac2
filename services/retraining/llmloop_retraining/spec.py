"""Retraining, declared once: feedback joined into preference pairs, DPO jobs, its commands."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from llmloop.service import Runnable, ServiceSpec, Wiring
from llmloop_retraining.config import RetrainingSettings


def parts(wiring: Wiring) -> Mapping[str, Runnable]:
    """``{"retraining": Retrainer}`` (state in DATA_DIR/retraining)."""
    from llmloop_retraining.service import Retrainer

    settings = cast(RetrainingSettings, wiring.settings)  # derive_settings made it one
    return {"retraining": Retrainer(wiring.bus, settings)}


def add_commands(sub: Any) -> None:
    from llmloop_retraining.commands import add_commands

    add_commands(sub)


SPEC = ServiceSpec(
    name="retraining",
    summary="joins feedback into preference pairs and runs DPO jobs when a policy fires",
    extra="retraining",
    settings=RetrainingSettings,
    add_commands=add_commands,
    parts=parts,
    order=30,
)
