"""Alerting end to end on a real local HTTP receiver: retries, 4xx, dead letters, replay,
signatures, dedup per renotify interval, resolve, Slack and PagerDuty bodies."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from llmloop import topics
from llmloop.bus import open_bus
from llmloop.events import NotificationAttempted, parse_event
from llmloop.signing import IDEMPOTENCY_HEADER
from llmloop.testing.metrics import metric_event, publish_metrics, running
from llmloop.testing.webhooks import WebhookReceiver
from llmloop_alerting.service import AlertingService
from llmloop_alerting.settings import AlertingSettings
from llmloop_app.cli import main

SECRET = "test-secret"

RULES = """
receivers:
  - {{name: hook, type: webhook, url: "{hook}", timeout: 0.3s, max_attempts: {attempts}}}
  - {{name: slack, type: slack, url: "{slack}"}}
  - {{name: pd, type: pagerduty, url: "{pd}", routing_key: R0UT1NG}}
rules:
  - name: toxicity
    metric: toxicity_rate
    threshold: 0.1
    renotify: 1h
    severity: critical
    annotations: {{summary: "toxicity {{value:.2f}} on {{labels[model]}}", runbook_url: "https://rb.example/tox"}}
    receivers: [{receivers}]
"""


@pytest.fixture
async def bus():
    bus = open_bus("memory://")
    await bus.start()
    yield bus
    await bus.close()


@pytest.fixture
async def hook():
    async with WebhookReceiver(hang_s=2.0) as receiver:
        yield receiver


def settings(
    tmp_path: Path, hook: WebhookReceiver, *, receivers: str = "hook", attempts: int = 4
) -> AlertingSettings:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        RULES.format(
            hook=hook.url("/hook"),
            slack=hook.url("/slack"),
            pd=hook.url("/pd"),
            receivers=receivers,
            attempts=attempts,
        )
    )
    return AlertingSettings(
        data_dir=tmp_path,
        alerting_rules=rules,
        alerting_secret=SECRET,
        alerting_backoff_base_s=0.05,
        alerting_tick_s=0.1,
    )


def tox(value: float, model: str = "m1"):
    return metric_event("toxicity_rate", value, labels={"model": model})


async def attempts_on_bus(bus) -> list[NotificationAttempted]:
    messages = await bus.storage.read(topics.ALERTS, 0, 10_000)
    events = [parse_event(m.value) for m in messages]
    return [e for e in events if isinstance(e, NotificationAttempted)]


async def test_retries_on_5xx_timeout_and_429_then_delivers_once_signed(tmp_path, bus, hook):
    hook.script("/hook", [503, "timeout", 429, 200])
    async with running(AlertingService(bus, settings(tmp_path, hook))) as service:
        await publish_metrics(bus, tox(0.3))
        delivered = await hook.wait_for(1)
        await asyncio.sleep(0.3)
        while service.deliverer._in_flight:
            await asyncio.sleep(0.05)
    assert [r.answered for r in hook.requests] == [503, None, 429, 200]
    assert len({r.headers[IDEMPOTENCY_HEADER] for r in hook.requests}) == 1
    delivered[0].verify(SECRET)
    body = delivered[0].json()
    assert body["status"] == "firing" and body["version"] == "4"
    alert = body["alerts"][0]
    assert alert["labels"] == {
        "alertname": "toxicity",
        "severity": "critical",
        "model": "m1",
        "project": "acme",
    }
    assert alert["annotations"]["summary"] == "toxicity 0.30 on m1"
    assert body["llmloop"]["value"] == 0.3 and body["llmloop"]["threshold"] == 0.1
    outcomes = [(a.attempt, a.outcome) for a in await attempts_on_bus(bus)]
    assert outcomes == [(1, "retrying"), (2, "retrying"), (3, "retrying"), (4, "delivered")]


async def test_a_4xx_is_not_retried_goes_to_the_dead_letters_and_replays(
    tmp_path, bus, hook, capsys
):
    hook.script("/hook", [410])
    s = settings(tmp_path, hook)
    async with running(AlertingService(bus, s)):
        await publish_metrics(bus, tox(0.5))
        await hook.wait_requests(1)
        for _ in range(100):
            if await bus.storage.read(topics.NOTIFICATIONS_DEADLETTER, 0, 10):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # a retry would have come by now (backoff 0.05 s)
        assert len(hook.requests) == 1
        dead = [
            parse_event(m.value)
            for m in await bus.storage.read(topics.NOTIFICATIONS_DEADLETTER, 0, 10)
        ]
        assert [(d.outcome, d.http_status) for d in dead] == [("dead_lettered", 410)]

        assert main(["alerts", "dlq", "list", "--data-dir", str(tmp_path), "--json"]) == 0
        listed = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [(x["rule"], x["last_status"], x["attempts"]) for x in listed] == [
            ("toxicity", 410, 1)
        ]
        assert (
            main(["alerts", "dlq", "replay", listed[0]["id"][:8], "--data-dir", str(tmp_path)]) == 0
        )
        replayed = await hook.wait_for(1)
    assert replayed[0].headers[IDEMPOTENCY_HEADER] == hook.requests[0].headers[IDEMPOTENCY_HEADER]
    assert main(["alerts", "dlq", "list", "--data-dir", str(tmp_path)]) == 0
    assert "no dead-lettered" in capsys.readouterr().out


async def test_dead_letter_after_the_last_attempt(tmp_path, bus, hook):
    hook.script("/hook", [500, 502, 503])
    async with running(AlertingService(bus, settings(tmp_path, hook, attempts=3))) as service:
        await publish_metrics(bus, tox(0.5))
        await hook.wait_requests(3)
        for _ in range(100):
            if service.deliverer.dead_lettered:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
    assert [r.answered for r in hook.requests] == [500, 502, 503]
    outcomes = [a.outcome for a in await attempts_on_bus(bus)]
    assert outcomes == ["retrying", "retrying", "dead_lettered"]


async def test_one_notification_per_fingerprint_per_renotify_interval_and_resolve(
    tmp_path, bus, hook
):
    async with running(AlertingService(bus, settings(tmp_path, hook))):
        for _ in range(5):
            await publish_metrics(bus, tox(0.3), tox(0.4, model="m2"), tox(0.01, model="m3"))
            await asyncio.sleep(0.05)
        firing = await hook.wait_for(2)
        await asyncio.sleep(0.5)
        assert len(hook.requests) == 2  # one per label set, not one per breaching metric
        assert {r.json()["alerts"][0]["labels"]["model"] for r in firing} == {"m1", "m2"}
        await publish_metrics(bus, tox(0.02))
        resolved = (await hook.wait_for(3))[-1].json()
    assert resolved["status"] == "resolved"
    assert resolved["alerts"][0]["labels"]["model"] == "m1"
    assert resolved["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"
    alerts = [parse_event(m.value) for m in await bus.storage.read(topics.ALERTS, 0, 1000)]
    transitions = [(a.status, a.labels["model"]) for a in alerts if a.type == "alert"]
    assert sorted(transitions) == [("firing", "m1"), ("firing", "m2"), ("resolved", "m1")]


async def test_pagerduty_trigger_and_resolve_share_a_dedup_key_and_slack_gets_blocks(
    tmp_path, bus, hook
):
    async with running(AlertingService(bus, settings(tmp_path, hook, receivers="slack, pd"))):
        await publish_metrics(bus, tox(0.3))
        await hook.wait_for(2)
        await publish_metrics(bus, tox(0.0))
        await hook.wait_for(4)
    pd = [r.json() for r in hook.delivered("/pd")]
    assert [b["event_action"] for b in pd] == ["trigger", "resolve"]
    assert pd[0]["dedup_key"] == pd[1]["dedup_key"] and pd[0]["routing_key"] == "R0UT1NG"
    payload = pd[0]["payload"]
    assert payload["severity"] == "critical" and payload["summary"].startswith("[FIRING]")
    assert payload["source"] == "llmloop/acme" and pd[0]["links"][0]["href"] == (
        "https://rb.example/tox"
    )
    slack = [r.json() for r in hook.delivered("/slack")]
    assert "toxicity 0.30 on m1" in slack[0]["text"]
    assert slack[0]["blocks"][0]["type"] == "header"
    assert "RESOLVED" in slack[1]["blocks"][0]["text"]["text"]
    assert all(r.verify(SECRET) for r in hook.delivered())


async def test_rules_reload_on_change_without_losing_state(tmp_path, bus, hook):
    s = settings(tmp_path, hook)
    async with running(AlertingService(bus, s)) as service:
        await publish_metrics(bus, tox(0.3))
        await hook.wait_for(1)
        rules_file = s.alerting_rules
        assert rules_file is not None
        rules_file.write_text(rules_file.read_text().replace("threshold: 0.1", "threshold: 0.5"))
        for _ in range(100):
            if service.rules.rules[0].threshold == 0.5:
                break
            await asyncio.sleep(0.05)
        assert service.rules.rules[0].threshold == 0.5
        rules_file.write_text("rules: [")  # broken: the service keeps the last good rules
        await asyncio.sleep(0.3)
        assert service.rules.rules[0].threshold == 0.5
        await publish_metrics(bus, tox(0.3))  # below the new threshold: the alert resolves
        resolved = await hook.wait_for(2)
    assert [r.json()["status"] for r in resolved] == ["firing", "resolved"]
