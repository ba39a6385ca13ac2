"""The retraining commands as a user runs them, on one data dir: pairs in, a gated version out.

``llmloop retrain`` runs a real DPO job (tiny Llama, CPU) and publishes to the
local log; the processor's writer sinks the retrain topic into chDB, as ``up``
does; ``llmloop models`` and ``llmloop datasets`` read the results.
"""

from __future__ import annotations

import asyncio
import json
import random

import kubernetes_validate
import pytest
import yaml

from llmloop import topics
from llmloop.bus import open_bus
from llmloop.events import CompletionLogged, GateResult, RetrainJobUpdated, parse_event
from llmloop.events import CorrectionFeedback as Correction
from llmloop.store import open_store
from llmloop.store.migrate import migrate
from llmloop_app.cli import main
from llmloop_processor.writer import StoreWriter
from llmloop_retraining.join import PairJoin

GOOD = ["glad", "to", "help", "here", "is", "a", "clear", "answer", "with", "steps"]
BAD = ["go", "away", "not", "my", "problem", "figure", "it", "out", "yourself"]
POLICY = """
default:
  min_total_pairs: 16
  base_model: "tiny:0"
  train: {max_steps: 30, batch_size: 16, learning_rate: 0.0005, padding_free: true}
"""


def seed_pairs(data_dir, n: int = 60) -> None:
    rng = random.Random(1)
    join = PairJoin(data_dir / "retraining" / "state.db")
    events = []
    for i in range(n):
        c = CompletionLogged(
            model="tiny-chat",
            prompt=f"q{i} {rng.random()}",
            completion=" ".join(rng.sample(BAD, 5)),
            project_id="demo",
        )
        events += [
            c,
            Correction(
                completion_id=c.event_id,
                correction=" ".join(rng.sample(GOOD, 5)),
                project_id="demo",
            ),
        ]
    assert len(join.apply(events).pairs) == n
    join.close()


def sink_retrain_topic(data_dir, group: str) -> list[RetrainJobUpdated]:
    """What the processor does in `up`: the retrain topic into chDB."""

    async def read() -> list[RetrainJobUpdated]:
        bus = open_bus(f"sqlite:///{data_dir}/bus.db")
        await bus.start()
        consumer = bus.consumer([topics.RETRAIN], group)
        await consumer.start()
        events = [parse_event(m.value) for m in await consumer.poll(1000, 1.0)]
        await consumer.commit()
        await consumer.close()
        await bus.close()
        return events

    events = asyncio.run(read())
    store = open_store(f"chdb:///{data_dir}/chdb")
    try:
        migrate(store)
        StoreWriter(store).write(events)
    finally:
        store.close()
    return events


@pytest.mark.slow
def test_retrain_datasets_and_models_commands(tmp_path, capsys):
    data = ["--data-dir", str(tmp_path)]
    policy = tmp_path / "retrain.yaml"
    policy.write_text(POLICY)
    assert main(["retrain", "--model", "nope", *data]) == 1
    assert "no preference pairs for model 'nope'" in capsys.readouterr().err
    seed_pairs(tmp_path)
    bench = tmp_path / "qa.jsonl"
    bench.write_text(
        "".join(
            json.dumps({"prompt": f"q{i} help me", "reference": " ".join(GOOD[i : i + 5])}) + "\n"
            for i in range(5)
        )
    )
    assert main(["datasets", "add-benchmark", "qa", str(bench), *data]) == 0
    added = capsys.readouterr().out
    assert added.startswith("benchmark qa version qa-") and "5 tasks" in added
    bench_version = added.split()[3].rstrip(":")
    assert main(["datasets", "add-benchmark", "qa", str(tmp_path / "nope.jsonl"), *data]) == 1
    assert "cannot read" in capsys.readouterr().err
    assert main(["datasets", "benchmarks", *data]) == 0
    assert bench_version in capsys.readouterr().out

    # --dry-run on Kubernetes: the plan and a valid Job manifest, nothing written.
    assert (
        main(
            [
                "retrain",
                "--model",
                "tiny-chat",
                "--dry-run",
                "--launcher",
                "kubernetes",
                "--policy",
                str(policy),
                *data,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("# would start: requested by hand")
    job = yaml.safe_load(out.split("\n", 2)[2])
    kubernetes_validate.validate(job, "1.30", strict=True)
    assert (
        job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]
        == "1"
    )
    assert not (tmp_path / "datasets" / "tiny-chat").exists()
    in_pod = json.loads(job["spec"]["template"]["spec"]["containers"][0]["args"][-1])
    assert [b["name"] for b in in_pod["benchmarks"]] == ["qa"]
    assert in_pod["benchmarks"][0]["path"].startswith("/llmloop/datasets/_benchmarks/qa/qa-")

    # A real local job: progress bar on stderr, the verdict on stdout.
    assert main(["retrain", "--model", "tiny-chat", "--policy", str(policy), *data]) == 0
    captured = capsys.readouterr()
    assert "] 100%" in captured.err
    assert "gate PASSED" in captured.out
    # The verdict shows the generation metrics, the benchmark's among them.
    assert "info: rouge_l " in captured.out and "info: bench.qa.bleu " in captured.out
    assert f"info: bench.qa version {bench_version}: 5 prompts answered" in captured.out
    events = sink_retrain_topic(tmp_path, "sink-1")
    [registered] = [e for e in events if e.stage == "model_registered"]

    assert main(["datasets", "list", *data]) == 0
    assert registered.dataset_version in capsys.readouterr().out
    assert main(["datasets", "show", registered.dataset_version[:14], *data]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["counts"]["pairs"] == 60 and manifest["counts"]["by_source"] == {
        "correction": 60
    }
    out_file = tmp_path / "openai.jsonl"
    assert (
        main(
            [
                "datasets",
                "export",
                registered.dataset_version,
                "--format",
                "openai",
                "--out",
                str(out_file),
                *data,
            ]
        )
        == 0
    )
    rows = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert len(rows) == manifest["counts"]["train"]
    assert set(rows[0]) == {"input", "preferred_output", "non_preferred_output"}

    # A version that failed its gate: promote refuses and says why, unless forced.
    failed = registered.model_copy(
        update={
            "job_id": "bad-job",
            "model_version": "tiny-chat-dpo-bad",
            "gate": GateResult(
                passed=False, reasons=["failed: preference accuracy 0.41 (need >= 0.55)"]
            ),
        }
    )
    store = open_store(f"chdb:///{tmp_path}/chdb")
    StoreWriter(store).write(
        [
            RetrainJobUpdated.model_validate(
                {**failed.model_dump(), "event_id": "00000000-0000-4000-8000-000000000001"}
            )
        ]
    )
    store.close()
    assert main(["models", "list", *data]) == 0
    listing = capsys.readouterr().out
    assert registered.model_version in listing and "tiny-chat-dpo-bad" in listing
    assert main(["models", "promote", "tiny-chat-dpo-bad", *data]) == 1
    err = capsys.readouterr().err
    assert "failed its evaluation gate (failed: preference accuracy 0.41" in err
    assert "--force" in err
    assert main(["models", "promote", registered.model_version, *data]) == 0
    assert main(["models", "promote", "tiny-chat-dpo-bad", "--force", *data]) == 0
    capsys.readouterr()
    sink_retrain_topic(tmp_path, "sink-1")
    assert main(["models", "show", registered.model_version, *data]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "promoted" and shown["gate_passed"] is True
    assert shown["base_model"] == "tiny:0" and shown["job_id"] == registered.job_id
    assert shown["dataset_version"] == registered.dataset_version
    assert shown["metrics"]["padding_free"] == 1.0  # the job trained on packed batches
    for key in ("rouge_l", "base_rouge_l", "bleu", "base_bleu", "bench.qa.rouge_l"):
        assert key in shown["metrics"] and f"{key}_low" in shown["metrics"]
    assert main(["models", "show", "nope", *data]) == 1
    assert "no model version 'nope'" in capsys.readouterr().err
