"""The console's adapters in `llmloop up`: ingest's publish path, retraining's pairs, datasets."""

from __future__ import annotations

import uuid

import pytest

from llmloop import topics
from llmloop.bus.memory import memory_bus
from llmloop.events import ingest_adapter, parse_event
from llmloop.settings import Settings
from llmloop_app.console import IngestSink, LocalOperations
from llmloop_console.ports import SinkError
from llmloop_ingest.metrics import IngestMetrics
from llmloop_ingest.settings import ingest_settings
from llmloop_retraining.config import RetrainingSettings
from llmloop_retraining.datasets import cut
from llmloop_retraining.join import PairJoin


def completion(project: str, text: str, prompt: str = "How do I reset it?"):
    event = ingest_adapter.validate_python(
        {
            "type": "completion",
            "event_id": str(uuid.uuid4()),
            "model": "m",
            "prompt": prompt,
            "completion": text,
        }
    )
    return event.model_copy(update={"project_id": project})


def preference(project: str, chosen, rejected):
    event = ingest_adapter.validate_python(
        {
            "type": "feedback",
            "event_id": str(uuid.uuid4()),
            "kind": "preference",
            "chosen_id": str(chosen.event_id),
            "rejected_id": str(rejected.event_id),
            "source": "annotator",
        }
    )
    return event.model_copy(update={"project_id": project})


async def test_judgments_take_ingests_path_onto_the_bus(tmp_path):
    bus = memory_bus()
    await bus.start()
    sink = IngestSink(bus, ingest_settings(Settings(data_dir=tmp_path)), IngestMetrics())
    good = {
        "type": "feedback",
        "event_id": str(uuid.uuid4()),
        "kind": "score",
        "completion_id": str(uuid.uuid4()),
        "value": 4,
        "scale_min": 1,
        "scale_max": 5,
        "source": "annotator",
    }
    answer = await sink.submit("shop", [good])
    assert answer["accepted"] == 1
    consumer = bus.consumer([topics.EVENTS], "t")
    await consumer.start()
    (message,) = await consumer.poll(10, 0.1)
    assert parse_event(message.value).project_id == "shop"
    with pytest.raises(SinkError, match="value"):
        await sink.submit("shop", [{**good, "event_id": str(uuid.uuid4()), "value": "x"}])
    await bus.close()


async def test_pairs_and_datasets_are_read_per_project(tmp_path):
    settings = Settings(data_dir=tmp_path)
    retraining = RetrainingSettings(**settings.model_dump())
    join = PairJoin(retraining.state_path)
    made = []
    for project in ("shop", "other"):
        a, b = completion(project, f"good {project}"), completion(project, f"bad {project}")
        made += join.apply([a, b, preference(project, a, b)]).pairs
    join.close()
    bus = memory_bus()
    ops = LocalOperations(settings, bus)
    (pair,) = ops.preference_pairs(["shop"], 10)
    assert (pair["chosen"], pair["rejected"], pair["project_id"]) == (
        "good shop",
        "bad shop",
        "shop",
    )
    assert ops.pair_counts(["shop"]) == [
        {"project": "shop", "model": "m", "source": "preference", "pairs": 1}
    ]
    assert ops.preference_pairs([], 10) == []
    cut(retraining.datasets_dir, "m", made)
    (dataset,) = ops.datasets()
    assert dataset["counts"]["pairs"] == 2 and "duplicate" in dataset["filters"]
    assert dataset["sample"] and "chosen" in dataset["sample"][0]
