"""The whole loop on CPU: feedback events -> pairs -> dataset -> DPO job -> gate -> model version.

A tiny Llama built from a config, a tokenizer trained on the fly, TRL's
DPOTrainer in a real subprocess; the retrain events land in chDB through the
processor's writer, as they do in ``llmloop up``. The gate also scores the
answers base and fine-tuned model generate (ROUGE-L, BLEU) on the held-out
prompts and on a registered benchmark, and requires "not worse than base".
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path

import pytest
from retraining_data import GOOD, TOPICS, feedback_traffic

from llmloop import topics
from llmloop.bus import Record, open_bus
from llmloop.events import RetrainJobUpdated, encode_event, parse_event
from llmloop_processor.writer import StoreWriter
from llmloop_retraining import benchmarks
from llmloop_retraining.config import RetrainingSettings
from llmloop_retraining.evaluate import PairLogps, evaluate
from llmloop_retraining.pipeline import generation_metrics
from llmloop_retraining.policy import PolicyBook
from llmloop_retraining.service import Retrainer

TRAIN = {
    "max_steps": 60,
    "batch_size": 16,
    "learning_rate": 5e-4,
    "beta": 0.1,
    "seed": 0,
    "sft_weight": 1.0,  # DPO + the chosen answers' NLL: the tuned model learns to answer
    "eval_max_new_tokens": 16,
}
# BLEU with a 1-point margin: the tiny model's answers are a few words long, so its
# BLEU is mostly brevity penalty and within a point of the untrained model's.
REQUIRED = ("rouge_l", "bleu", "bench.*.rouge_l", "bench.*.bleu")
MARGINS = {"*bleu": 1.0}


def write_benchmark(path: Path, n: int = 20) -> Path:
    """A fixed task: questions in the traffic's style, answered in the helpful vocabulary."""
    rng = random.Random(7)
    rows = [
        {
            "prompt": f"task {i}: tell me about {rng.choice(TOPICS)} {rng.choice(TOPICS)}",
            "reference": " ".join(rng.sample(GOOD, 5)),
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def swapped(output_dir: Path, into: Path) -> Path:
    """The job's output with base and fine-tuned exchanged: a version worse than its base."""
    into.mkdir()
    logps = json.loads((output_dir / "eval_logps.json").read_text())
    logps["policy"], logps["base"] = logps["base"], logps["policy"]
    (into / "eval_logps.json").write_text(json.dumps(logps))
    generations = json.loads((output_dir / "eval_generations.json").read_text())
    for s in generations.values():
        s["policy"], s["base"] = s["base"], s["policy"]
    (into / "eval_generations.json").write_text(json.dumps(generations))
    return into


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
                "gate": {"not_worse_than_base": list(REQUIRED), "not_worse_margin": MARGINS},
            }
        }
    )
    bench = benchmarks.add(
        settings.datasets_dir, "helpful-qa", write_benchmark(tmp_path / "bench.jsonl")
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
    # Generation metrics for base and fine-tuned answers, held out and on the benchmark,
    # each with its interval; the required ones appear in the verdict with their numbers.
    for prefix in ("", "bench.helpful-qa."):
        assert m[f"{prefix}generated"] == (20 if prefix else m["eval_pairs"])
        for name in ("rouge_l", "bleu"):
            for key in (name, f"base_{name}", f"{name}_delta"):
                assert m[f"{prefix}{key}_low"] <= m[f"{prefix}{key}"] <= m[f"{prefix}{key}_high"]
        # The fine-tuned model answers in the chosen vocabulary; the untrained one does not.
        assert m[f"{prefix}rouge_l"] > m[f"{prefix}base_rouge_l"]
    reasons = " ".join(registered.gate.reasons)
    assert "ok: rouge_l " in reasons and "ok: bench.helpful-qa.bleu " in reasons
    assert f"info: bench.helpful-qa version {bench.version}: 20 prompts" in reasons
    # A version worse than its base on a required metric fails the gate, naming it.
    output = tmp_path / "models" / registered.job_id
    worse = swapped(output, tmp_path / "worse")
    generated, _ = generation_metrics(worse)
    logps = json.loads((worse / "eval_logps.json").read_text())
    gate = policies.for_model("tiny-chat").gate
    failed = evaluate(
        PairLogps(**logps["policy"]),
        PairLogps(**logps["base"]),
        beta=0.1,
        config=gate,
        generation=generated,
    ).gate
    assert not failed.passed
    assert any(r.startswith("failed: rouge_l ") for r in failed.reasons), failed.reasons
    assert any(r.startswith("failed: bench.helpful-qa.rouge_l ") for r in failed.reasons)
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
