"""The whole loop on CPU: feedback events -> pairs -> dataset -> DPO job -> gate -> model version.

A tiny Llama built from a config, a tokenizer trained on the fly, TRL's
DPOTrainer in a real subprocess; the retrain events land in chDB through the
processor's writer, as they do in ``llmloop up``.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from retraining_data import feedback_traffic

from llmloop import topics
from llmloop.bus import Record, open_bus
from llmloop.events import RetrainJobUpdated, encode_event, parse_event
from llmloop_processor.writer import StoreWriter
from llmloop_retraining.config import RetrainingSettings
from llmloop_retraining.policy import PolicyBook
from llmloop_retraining.service import Retrainer

TRAIN = {"max_steps": 40, "batch_size": 16, "learning_rate": 5e-4, "beta": 0.1, "seed": 0}


async def retrain_events(bus, group: str, until_stage: str, timeout: float = 120) -> list:
    consumer = bus.consumer([topics.RETRAIN], group)
    await consumer.start()
    seen: list[RetrainJobUpdated] = []
    deadline = time.monotonic() + timeout
    try:
        while not any(e.stage == until_stage for e in seen):
            assert time.monotonic() < deadline, [e.stage for e in seen]
            seen += [parse_event(m.value) for m in await consumer.poll(100, 0.5)]
    finally:
        await consumer.close()
    return seen


@pytest.mark.slow
async def test_feedback_becomes_a_gated_model_version(tmp_path, store):
    bus = open_bus("memory://")
    await bus.start()
    settings = RetrainingSettings(data_dir=tmp_path)
    policies = PolicyBook.model_validate(
        {
            "default": {
                "min_new_pairs": 90,
                "min_total_pairs": 16,
                "base_model": "tiny:0",
                "train": TRAIN,
            }
        }
    )
    events = feedback_traffic(120)
    await bus.publish(topics.EVENTS, [Record(e.key(), encode_event(e)) for e in events])
    service = Retrainer(bus, settings, policies=policies, max_wait_s=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        seen = await retrain_events(bus, "test-loop", "model_registered")
        await service.wait_for_job()
    finally:
        stop.set()
        await task

    stages = [e.stage for e in seen]
    assert stages[0] == "requested" and "started" in stages and "progress" in stages
    assert stages.index("succeeded") < stages.index("model_registered")
    [registered] = [e for e in seen if e.stage == "model_registered"]
    m = registered.metrics
    # The DPO loss falls, and the trained model prefers the chosen side of held-out
    # pairs more often than the untrained one does.
    assert m["final_loss"] < m["first_loss"] - 0.1
    assert m["preference_accuracy"] > m["base_preference_accuracy"]
    assert m["reward_margin"] > 0
    assert registered.gate is not None and registered.gate.passed, registered.gate
    # Lineage: base model, dataset version, job, launcher, artifact.
    assert registered.model == "tiny-chat" and registered.base_model == "tiny:0"
    assert registered.launcher == "local" and registered.project_id == "demo"
    manifest = json.loads(
        (
            tmp_path / "datasets" / "tiny-chat" / registered.dataset_version / "manifest.json"
        ).read_text()
    )
    assert manifest["counts"]["pairs"] == 120
    assert manifest["counts"]["by_source"] == {"preference": 40, "correction": 40, "thumbs": 40}
    assert (tmp_path / "models" / registered.job_id / "model" / "config.json").exists()
    assert registered.artifact_uri.endswith(f"/models/{registered.job_id}/model")

    # The processor sinks the retrain topic: the version and its verdict are in ClickHouse.
    StoreWriter(store).write(seen)
    row = store.query(
        "SELECT version, job_id, dataset_version, base_model, gate_passed, status, "
        "metrics['preference_accuracy'] FROM model_versions FINAL WHERE model = {m:String}",
        {"m": "tiny-chat"},
    ).rows
    assert row == [
        (
            registered.model_version,
            registered.job_id,
            registered.dataset_version,
            "tiny:0",
            True,
            "registered",
            m["preference_accuracy"],
        )
    ]
    await bus.close()
