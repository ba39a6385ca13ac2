"""Retraining, declared once: feedback joined into preference pairs, DPO jobs, its commands."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from llmloop.service import Runnable, ServiceSpec, Wiring
from llmloop_retraining.config import RetrainingSettings


def parts(wiring: Wiring) -> Mapping[str, Runnable]:
    """``{"retraining": Retrainer}`` (state in DATA_DIR/retraining; the completions that
    feedback names come from the store), or with
    ``LLMLOOP_RETRAIN_REPLICATED`` on Kafka the replica that joins its partitions and,
    when it holds the join topic, controls pairs and jobs (``replicated.py``)."""
    settings = cast(RetrainingSettings, wiring.settings)  # derive_settings made it one
    if settings.retrain_replicated:
        from llmloop_retraining.replicated import ReplicatedRetrainer  # aiokafka

        return {"retraining": ReplicatedRetrainer(wiring.bus, settings, store=wiring.store)}
    from llmloop_retraining.service import Retrainer

    return {"retraining": Retrainer(wiring.bus, settings, store=wiring.store)}


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
    needs_store=True,  # the completions that feedback names, as the processor enriched them
    store_optional=True,  # alone on chDB (the processor's process holds it): keeps a copy
    order=30,
)
