"""The whole loop, end to end: SDK traffic with a drift episode and a bias gap in, rows
in ClickHouse, a signed drift alert at a real webhook receiver, and the alert starting
a DPO job whose model version is registered with its gate verdict.

Once in the distributed runtime (each service its own OS process, on a Kafka-protocol
broker) and once inside ``llmloop up``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from faults import scenario
from faults.loop import FAST, LLMLOOP, Loop, fast_env
from llmloop import Client, topics
from llmloop.testing.kafka import read_topic
from llmloop.testing.tansu import TansuBroker, free_port
from llmloop.testing.webhooks import Received, WebhookReceiver

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
SECRET = FAST["LLMLOOP_ALERTING_SECRET"]


async def until(
    condition: Any, what: str, timeout: float, check: Any = None, logs: Any = None
) -> Any:
    """``condition()``'s first truthy result, polled; ``check()`` raises if a process died.
    The waits of a test add up to less than pytest's timeout (180 s), so that a stall
    fails here, naming what it waited for with the tail of ``logs()``, not in the loop."""
    deadline = time.monotonic() + timeout
    while not (result := await condition()):
        if check is not None:
            check()
        assert time.monotonic() < deadline, (
            f"timed out after {timeout:.0f} s waiting for {what}" + (f":\n{logs()}" if logs else "")
        )
        await asyncio.sleep(0.5)
    return result


def drift_alerts(hook: WebhookReceiver) -> list[Received]:
    return [
        r
        for r in hook.delivered("/hook")
        if r.json()["llmloop"]["rule"] == "embedding-drift" and r.json()["status"] == "firing"
    ]


def send_scenario(url: str, key: str, spool: Path) -> tuple[scenario.Sent, scenario.Sent]:
    with Client(url, key, spool_dir=spool, flush_interval_s=0.05) as client:
        ref = scenario.reference(client)
        assert client.flush(60)
        cur = scenario.drift(client)
        assert client.flush(60)
    return ref, cur


def check_alert(alert: Received, project: str) -> None:
    assert alert.verify(SECRET) > 0  # the HMAC signature holds with the shared secret
    body = alert.json()
    assert body["commonLabels"]["model"] == scenario.MODEL
    assert body["commonLabels"]["project"] == project
    assert body["llmloop"]["value"] > body["llmloop"]["threshold"]


async def test_distributed_runtime(tmp_path: Path) -> None:
    async with WebhookReceiver() as hook:
        with TansuBroker() as broker:
            loop = Loop(
                tmp_path,
                broker,
                env={"LLMLOOP_PROCESSOR_EMBED": "true"},
                rules=scenario.rules(hook.url("/hook")),
                policy=scenario.POLICY,
            )
            try:
                loop.start()
                ref, cur = send_scenario(loop.ingest_url, loop.key, tmp_path / "spool")

                async def alert() -> list[Received]:
                    return drift_alerts(hook)

                check_alert(
                    (await until(alert, "a drift alert", 80, loop.check_alive, loop.tails))[0],
                    "shop",
                )

                async def registered() -> list[dict[str, Any]]:
                    events = [
                        orjson.loads(m.value)
                        for m in await read_topic(broker.bootstrap, topics.RETRAIN)
                    ]
                    return [e for e in events if e["stage"] == "model_registered"]

                version = (
                    await until(registered, "a model version", 60, loop.check_alive, loop.tails)
                )[0]
                assert version["model"] == scenario.MODEL and version["gate"] is not None
                await loop.stop("ingest", "alerting", "retraining")
                await loop.settle("processor")
                await loop.stop("processor")
            finally:
                loop.close()
    completions = len(ref.completions) + len(cur.completions)
    assert loop.query("SELECT count(), uniqExact(event_id) FROM completions") == [
        [str(completions), str(completions)]
    ]
    assert loop.query("SELECT count(), uniqExact(event_id) FROM feedback") == [
        [str(len(cur.feedback))] * 2
    ]
    assert loop.query("SELECT count() FROM completion_enrichments") == [[str(completions)]]
    peaks = {name: round(s.peak_rss_mib) for name, s in loop.services.items()}
    print(f"\npeak RSS (MiB) with the embedding model and a DPO job: {peaks}")
    assert peaks["ingest"] < 200 and peaks["processor"] < 1536  # DESIGN.md's budgets
    assert check_store(loop.query) == [
        version["model_version"],
        str(version["gate"]["passed"]).lower(),
    ]


def check_store(query: Any) -> list[str]:
    """Drift and bias metrics, the alert, the job and the gated version, as rows;
    returns the version's (version, gate_passed)."""
    (score,) = query(
        "SELECT max(value), min(p_value) FROM metrics WHERE name = 'drift_embedding_score' "
        f"AND labels['model'] = '{scenario.MODEL}' AND labels['field'] = 'prompt'"
    )
    assert float(score[0]) > 1.5 and float(score[1]) < 0.01  # what the shipped rule needs
    (gap,) = query(
        "SELECT max(value) FROM metrics WHERE name = 'bias_gap' AND labels['attribute'] = 'locale'"
    )
    assert float(gap[0]) > 0.5  # de-DE thumbs down, en-US thumbs up
    assert ["firing"] in query("SELECT status FROM alerts WHERE rule = 'embedding-drift'")
    assert ["delivered"] in query("SELECT outcome FROM notification_attempts")
    stages = {row[0] for row in query("SELECT stage FROM retrain_jobs")}
    assert {"requested", "started", "succeeded", "model_registered"} <= stages
    (job,) = query(
        "SELECT model_version, toString(gate_passed) FROM retrain_jobs "
        "WHERE stage = 'model_registered'"
    )
    (version,) = query(
        f"SELECT version, model, toString(gate_passed) FROM model_versions "
        f"WHERE version = '{job[0]}'"
    )
    assert version[1] == scenario.MODEL and version[2] == job[1]
    return [version[0], version[2]]


def llmloop_query(data_dir: Path) -> Any:
    def query(sql: str) -> list[list[str]]:
        run = subprocess.run(
            [LLMLOOP, "query", sql, "--data-dir", str(data_dir), "-f", "TSV"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
        return [line.split("\t") for line in run.stdout.splitlines()]

    return query


async def test_embedded_runtime(tmp_path: Path) -> None:
    """The same scenario inside one `llmloop up` process (local log, chDB in the data dir)."""
    data = tmp_path / "data"
    async with WebhookReceiver() as hook:
        rules, policy = tmp_path / "rules.yaml", tmp_path / "policy.yaml"
        rules.write_text(json.dumps(scenario.rules(hook.url("/hook"))))
        policy.write_text(json.dumps(scenario.POLICY))
        env = {
            **fast_env(),
            "LLMLOOP_PROCESSOR_EMBED": "true",
            "LLMLOOP_ALERTING_RULES": str(rules),
            "LLMLOOP_RETRAIN_POLICY_FILE": str(policy),
        }
        port = free_port()
        log = tmp_path / "up.log"
        up = subprocess.Popen(
            [LLMLOOP, "up", "--data-dir", str(data), "--port", str(port)],
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )

        def tail() -> str:
            return log.read_text()[-4000:]

        def alive() -> None:
            assert up.poll() is None, tail()

        try:

            async def started() -> bool:
                return (data / "runtime.json").exists()

            await until(started, "llmloop up", 30, alive, tail)
            key = (data / "local.key").read_text().strip()
            ref, cur = send_scenario(f"http://127.0.0.1:{port}", key, tmp_path / "spool")

            async def alert() -> list[Received]:
                return drift_alerts(hook)

            check_alert((await until(alert, "a drift alert", 80, alive, tail))[0], "default")
            query = llmloop_query(data)

            async def registered() -> list[list[str]]:
                return await asyncio.to_thread(
                    query, "SELECT version FROM model_versions WHERE gate_passed IS NOT NULL"
                )

            await until(registered, "a model version", 40, alive, tail)
            completions = len(ref.completions) + len(cur.completions)

            async def stored() -> bool:
                rows = await asyncio.to_thread(
                    query, "SELECT count(), uniqExact(event_id) FROM completion_enrichments"
                )
                return rows == [[str(completions)] * 2]

            await until(stored, "every completion enriched once", 20, alive, tail)
            check_store(query)
            assert query("SELECT count(), uniqExact(event_id) FROM completions") == [
                [str(completions)] * 2
            ]
            assert query("SELECT count(), uniqExact(event_id) FROM feedback") == [
                [str(len(cur.feedback))] * 2
            ]
        finally:
            up.send_signal(signal.SIGINT)
            code = up.wait(60)
    assert code == 0, log.read_text()[-4000:]
