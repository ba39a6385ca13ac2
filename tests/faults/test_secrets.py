"""Secrets stay secret: webhook signatures that fail when anything is changed, and real
processes at log level DEBUG (text and JSON) whose every output line is searched for
every secret they were given.

* Signatures, end to end: the real ``AlertingService`` and ``Deliverer`` send to a real
  HTTP receiver; what arrives verifies with the shared secret (each of two during a
  rotation, or the receiver's own), and fails with a wrong secret, a body changed by one
  byte or re-serialised, a moved timestamp, a replay after the tolerance, or another
  delivery's signature. (``tests/unit/alerting/test_signing.py`` covers ``sign`` and
  ``verify_signature`` on their own; this is the same contract on the wire.)
* ``llmloop keys create`` prints a key once, on stdout; ``keys list`` and ``keys export``
  never do. ``llmloop ingest`` answering good keys, wrong keys, a revoked key, Basic
  credentials and a key in the query string logs none of them: each 401 is logged at
  DEBUG with the key's id (a hash prefix, as ``keys list`` shows it), never the key.
* ``llmloop alerting`` with a signing secret, a Slack URL whose path is its credential, a
  PagerDuty routing key, a webhook with a token in its query, its own secret and an
  Authorization header, delivering (a 5xx then a 2xx, a 403, a refused connection) logs
  none of them and puts none of them in the delivery events that land in ClickHouse.
* Every command given a bus URL or a store URL with a password (Kafka, which refuses
  credentials it cannot use, and a ClickHouse server that is down) fails naming the URL
  with its password masked, and never prints the password.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from llmloop import topics
from llmloop.bus import open_bus
from llmloop.events import parse_event
from llmloop.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, InvalidSignature
from llmloop.testing.metrics import metric_event, publish_metrics, running
from llmloop.testing.server import completion, wait_ready
from llmloop.testing.tansu import free_port
from llmloop.testing.webhooks import Received, WebhookReceiver
from llmloop.urls import redact_url
from llmloop_alerting.service import AlertingService
from llmloop_alerting.settings import AlertingSettings
from llmloop_app.cli import main

LLMLOOP = str(Path(sys.executable).with_name("llmloop"))
PASSWORD = "s3cr3tpassZq"


def env(data_dir: Path, fmt: str, **extra: str) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("LLMLOOP_")}
    return {
        **inherited,
        "LLMLOOP_DATA_DIR": str(data_dir),
        "LLMLOOP_LOG_LEVEL": "DEBUG",
        "LLMLOOP_LOG_FORMAT": fmt,
        **extra,
    }


def assert_no_secret(output: str, secrets: dict[str, str]) -> None:
    found = {name: value for name, value in secrets.items() if value in output}
    assert not found, f"{sorted(found)} in the output:\n{output[-3000:]}"


def lines_of(output: str, fmt: str) -> list[Any]:
    """Log lines; in JSON format each must be one JSON object (tracebacks are inside)."""
    lines = [line for line in output.splitlines() if line.strip()]
    if fmt == "json":
        return [orjson.loads(line) for line in lines if line.startswith("{")]
    return lines


# --- webhook signatures on the wire ------------------------------------------------------


RULES = """
receivers:
  - {{name: shared, type: webhook, url: "{shared}"}}
  - {{name: own, type: webhook, url: "{own}", secret: receiver-own-secret}}
rules:
  - {{name: toxicity, metric: toxicity_rate, threshold: 0.1, receivers: [shared, own]}}
"""


def verifies(request: Received, secret: str, **kwargs: Any) -> bool:
    try:
        request.verify(secret, **kwargs)
    except InvalidSignature:
        return False
    return True


def tampered(request: Received, body: bytes | None = None, **headers: str) -> Received:
    return Received(
        request.path,
        {**request.headers, **headers},
        request.body if body is None else body,
        request.at,
        request.answered,
    )


async def test_delivered_webhooks_verify_and_fail_when_anything_is_changed(tmp_path):
    bus = open_bus("memory://")
    await bus.start()
    rules = tmp_path / "rules.yaml"
    async with WebhookReceiver() as hook:
        rules.write_text(RULES.format(shared=hook.url("/shared"), own=hook.url("/own")))
        settings = AlertingSettings(
            data_dir=tmp_path,
            alerting_rules=rules,
            alerting_secret="old-secret, new-secret",  # a rotation: both sign
            alerting_tick_s=0.1,
        )
        async with running(AlertingService(bus, settings)):
            await publish_metrics(bus, metric_event("toxicity_rate", 0.5))
            await hook.wait_for(2)
    await bus.close()
    [shared] = hook.delivered("/shared")
    [own] = hook.delivered("/own")

    assert shared.headers[SIGNATURE_HEADER].count("v1=") == 2
    assert verifies(shared, "old-secret") and verifies(shared, "new-secret")
    assert verifies(own, "receiver-own-secret")
    assert own.headers[SIGNATURE_HEADER].count("v1=") == 1
    # The receiver's own secret replaces the shared ones, and the other way round.
    assert not verifies(own, "old-secret") and not verifies(own, "new-secret")
    assert not verifies(shared, "receiver-own-secret")
    assert not verifies(shared, "wrong-secret")

    body = shared.body
    flipped = body.replace(b'"firing"', b'"firinG"')
    assert flipped != body and not verifies(tampered(shared, flipped), "old-secret")
    assert not verifies(tampered(shared, body + b" "), "old-secret")
    # A receiver that parses and re-serialises before checking breaks the signature:
    # the MAC is over the exact bytes sent.
    reserialised = orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2)
    assert not verifies(tampered(shared, reserialised), "old-secret")
    ts = int(shared.headers[TIMESTAMP_HEADER])
    assert not verifies(tampered(shared, **{TIMESTAMP_HEADER: str(ts + 1)}), "old-secret")
    assert not verifies(shared, "old-secret", now=ts + 301)  # a replay, later
    assert not verifies(shared, "old-secret", now=ts - 301)
    assert verifies(shared, "old-secret", now=ts + 299)
    # One delivery's signature does not vouch for another's body.
    swapped = tampered(own, shared.body)
    assert not verifies(swapped, "receiver-own-secret")


# --- keys and ingest ---------------------------------------------------------------------


def run(args: list[str], environment: dict[str, str], timeout: float = 60) -> Any:
    return subprocess.run(
        [LLMLOOP, *args], env=environment, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_keys_print_once_and_ingest_logs_no_key_at_debug(tmp_path: Path, fmt: str) -> None:
    environment = env(tmp_path, fmt, LLMLOOP_KEY_CACHE_S="0")
    created = run(["keys", "create", "--project", "shop"], environment)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("llk_") and created.stdout.count(key) == 1
    assert key not in created.stderr  # the "shown only this once" note is on stderr
    revoked = run(["keys", "create", "--project", "shop"], environment).stdout.strip()
    revoked_id = hashlib.sha256(revoked.encode()).hexdigest()[:12]  # the id `keys list` shows
    assert run(["keys", "revoke", revoked_id], environment).returncode == 0
    exported = run(["keys", "export", str(tmp_path / "keys.txt")], environment)
    listed = run(["keys", "list"], environment)
    cli_output = listed.stdout + listed.stderr + exported.stdout + exported.stderr
    cli_output += (tmp_path / "keys.txt").read_text()
    assert "shop" in listed.stdout and revoked_id in listed.stdout
    assert_no_secret(cli_output, {"key": key, "revoked key": revoked})

    wrong = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    secrets = {
        "key": key,
        "key body": key.removeprefix("llk_"),
        "wrong key": wrong,
        "revoked key": revoked,
        "basic password": "basic-pass-Vq93",
        "long key": "llk_" + "L0ng" * 100,
        "query key": "llk_querystringkey77",
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "ingest.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [LLMLOOP, "ingest", "--port", str(port), "--broker", f"sqlite:///{tmp_path}/bus.db"],
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_ready(url, proc, log)
        batch = {"events": [completion()]}
        good = {"Authorization": f"Bearer {key}"}
        answers = [
            httpx.post(f"{url}/v1/events", json=batch, headers=good),
            httpx.post(f"{url}/v1/events", json=batch, headers={"X-API-Key": key}),
            httpx.post(
                f"{url}/v1/events", json=batch, headers={"Authorization": f"Bearer {wrong}"}
            ),
            httpx.post(f"{url}/v1/events", json=batch, headers={"X-API-Key": revoked}),
            httpx.post(f"{url}/v1/events", json=batch, auth=("shop", secrets["basic password"])),
            httpx.post(
                f"{url}/v1/events",
                json=batch,
                headers={"Authorization": f"Bearer {secrets['long key']}"},
            ),
            httpx.post(f"{url}/v1/events?api_key={secrets['query key']}", json=batch),
            httpx.post(f"{url}/v1/events", content=b"{not json", headers=good),
            httpx.post(
                f"{url}/v1/events",
                content=b"\x1f\x8b broken gzip",
                headers={**good, "Content-Encoding": "gzip"},
            ),
            httpx.post(
                f"{url}/v1/otlp/v1/traces",
                content=gzip.compress(b'{"resourceSpans": []}'),
                headers={**good, "Content-Type": "application/json", "Content-Encoding": "gzip"},
            ),
        ]
        assert [a.status_code for a in answers] == [
            202,
            202,
            401,
            401,
            401,
            401,
            401,
            400,
            400,
            200,
        ]
        metrics = httpx.get(f"{url}/metrics").text
        for answer in answers:
            assert_no_secret(answer.text + str(answer.headers), secrets)
        assert_no_secret(metrics, secrets)
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, log.read_text()
    output = log.read_text()
    assert_no_secret(output, secrets)
    lines = lines_of(output, fmt)
    assert any("ingest: bus sqlite:///" in str(line) for line in lines), output[-2000:]
    # Each 401 is logged at DEBUG, naming the key by its id, as `keys list` does.
    refused = [str(line) for line in lines if "401 for POST /v1/events" in str(line)]
    assert len(refused) == 5, output[-3000:]
    wrong_id = hashlib.sha256(wrong.encode()).hexdigest()[:12]
    for why in (wrong_id, revoked_id, "scheme 'Basic'", "characters", "no API key"):
        assert any(why in line for line in refused), (why, refused)


# --- alerting ----------------------------------------------------------------------------


ALERTING_RULES = """
receivers:
  - {name: slack, type: slack, url: "${SLACK_URL}"}
  - {name: pd, type: pagerduty, url: "${PD_URL}", routing_key: "${PD_ROUTING_KEY}"}
  - name: hook
    type: webhook
    url: "${HOOK_URL}"
    secret: "${HOOK_SECRET}"
    headers: {Authorization: "Bearer ${HOOK_TOKEN}"}
    max_attempts: 2
    timeout: 1s
rules:
  - {name: toxicity, metric: toxicity_rate, threshold: 0.1, receivers: [slack, pd, hook]}
"""


async def read_topic(bus: Any, topic: str) -> list[Any]:
    consumer = bus.consumer([topic], f"test-{uuid.uuid4()}")
    await consumer.start()
    try:
        out = []
        while batch := await consumer.poll(1000, 0.05):
            out.extend(batch)
        return out
    finally:
        await consumer.close()


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_alerting_delivers_and_logs_no_secret_at_debug(tmp_path: Path, fmt: str) -> None:
    bus_url = f"sqlite:///{tmp_path}/bus.db"
    closed = free_port()  # nothing listens: connection refused, retried, dead-lettered
    slack_path = "/services/T0TEAM/B0HOOK/slackPathSecret81"
    secrets = {
        "signing secret": "alertingSigningSecret42",
        "slack path": "slackPathSecret81",
        "pagerduty routing key": "pdRoutingKey0123456789abcdef0",
        "webhook query token": "hookQueryToken55",
        "webhook secret": "hookOwnSecret66",
        "webhook header token": "hookHeaderToken77",
    }
    bus = open_bus(bus_url)
    await bus.start()
    await publish_metrics(bus, metric_event("toxicity_rate", 0.5, labels={"model": "m1"}))
    rules = tmp_path / "rules.yaml"
    rules.write_text(ALERTING_RULES)
    log = tmp_path / "alerting.log"
    async with WebhookReceiver() as hook:
        hook.script(slack_path, [403])  # a 4xx: dead-lettered at once
        hook.script("/pd", [503, 200])  # a retry, then delivered
        environment = env(
            tmp_path,
            fmt,
            LLMLOOP_ALERTING_SECRET=secrets["signing secret"],
            LLMLOOP_ALERTING_BACKOFF_BASE_S="0.05",
            LLMLOOP_ALERTING_TICK_S="0.2",
            SLACK_URL=hook.url(slack_path),
            PD_URL=hook.url("/pd"),
            PD_ROUTING_KEY=secrets["pagerduty routing key"],
            HOOK_URL=f"http://127.0.0.1:{closed}/hook?token={secrets['webhook query token']}",
            HOOK_SECRET=secrets["webhook secret"],
            HOOK_TOKEN=secrets["webhook header token"],
        )
        with log.open("w") as out:
            proc = subprocess.Popen(
                [LLMLOOP, "alerting", "--rules", str(rules), "--broker", bus_url],
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 60
            while len(await read_topic(bus, topics.NOTIFICATIONS_DEADLETTER)) < 2 or not (
                hook.delivered("/pd")
            ):
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                await asyncio.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGINT)
            for _ in range(300):
                if proc.poll() is not None:
                    break
                await asyncio.sleep(0.1)
            assert proc.wait(1) == 0, log.read_text()
    attempts = [parse_event(m.value) for m in await read_topic(bus, topics.ALERTS)]
    await bus.close()

    [delivered] = hook.delivered("/pd")
    delivered.verify(secrets["signing secret"])  # signed by the real process
    assert delivered.json()["routing_key"] == secrets["pagerduty routing key"]  # to PD only
    outcomes = sorted((a.receiver, a.outcome) for a in attempts if a.type == "notification")
    assert outcomes == [
        ("hook", "dead_lettered"),
        ("hook", "retrying"),
        ("pd", "delivered"),
        ("pd", "retrying"),
        ("slack", "dead_lettered"),
    ]
    # What lands in ClickHouse (notification_attempts, dead letters) holds no secret either.
    assert_no_secret("\n".join(a.model_dump_json() for a in attempts), secrets)
    output = log.read_text()
    assert_no_secret(output, secrets)
    lines = lines_of(output, fmt)
    assert any("alerting: bus sqlite:///" in str(line) for line in lines), output[-2000:]
    assert any("dead-lettered" in str(line) for line in lines)


# --- URLs with passwords -----------------------------------------------------------------


KAFKA = f"kafka://llm:{PASSWORD}@127.0.0.1:{{port}}"
CLICKHOUSE = f"clickhouse://default:{PASSWORD}@127.0.0.1:1/llmloop"  # nothing listens on 1


@pytest.mark.parametrize(
    ("fmt", "command", "shown"),
    [
        ("text", ["ingest", "--broker", KAFKA], "llm:***@127.0.0.1"),
        ("json", ["ingest", "--broker", KAFKA], "llm:***@127.0.0.1"),
        ("text", ["alerting", "--broker", KAFKA], "llm:***@127.0.0.1"),
        ("json", ["retraining", "--broker", KAFKA], "llm:***@127.0.0.1"),
        ("text", ["processor", "--broker", "memory://", "--store", CLICKHOUSE], "default:***@"),
        ("json", ["processor", "--broker", KAFKA, "--store", CLICKHOUSE], "default:***@"),
        ("text", ["up", "--store", CLICKHOUSE], "default:***@"),
        ("text", ["migrate", "--store", CLICKHOUSE], "default:***@"),
        ("json", ["query", "SELECT 1", "--store", CLICKHOUSE], "default:***@"),
        ("text", ["models", "list", "--store", CLICKHOUSE], "default:***@"),
        pytest.param("text", ["processor", "--faust", "--broker", KAFKA], "llm:***@127.0.0.1"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(a for a in v if "://" not in a),
)
def test_a_url_with_a_password_is_named_masked_never_in_clear(
    tmp_path: Path, fmt: str, command: list[str], shown: str
) -> None:
    port = str(free_port())
    args = [a.format(port=port) for a in command]
    if args[0] in ("ingest", "up"):
        args += ["--port", str(free_port())]
    done = run(args, env(tmp_path, fmt), timeout=90)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert_no_secret(output, {"password": PASSWORD})
    assert shown in output, output[-2000:]


def test_redact_url_masks_passwords_tokens_and_webhook_paths() -> None:
    assert redact_url(f"kafka://u:{PASSWORD}@a:9092,b:9092?linger_ms=5") == (
        "kafka://u:***@a:9092,b:9092?linger_ms=5"
    )
    assert redact_url(CLICKHOUSE) == "clickhouse://default:***@127.0.0.1:1/llmloop"
    assert redact_url("http://h/hook?token=t0k&x=1") == "http://h/hook?token=***&x=1"
    assert redact_url("https://hooks.slack.com/services/T/B/S", keep_path=False) == (
        "https://hooks.slack.com/***"
    )
    assert redact_url(f"u:{PASSWORD}@host:9092") == "u:***@host:9092"
    assert redact_url("hooks.slack.com/services/T/B/S", keep_path=False) == "hooks.slack.com/***"
    for plain in ("memory://", "sqlite:///.llmloop/bus.db", "chdb:////data/chdb", "kafka://h:1"):
        assert redact_url(plain) == plain


def test_a_rules_file_error_never_echoes_a_webhook_credential(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Slack URL pasted without its scheme is refused naming the receiver and the host,
    not the path that is the Slack credential."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "receivers:\n"
        "  - {name: slack, type: slack, url: hooks.slack.com/services/T0/B0/slackPathSecret81}\n"
    )
    assert main(["rules", "check", str(rules)]) == 1
    err = capsys.readouterr().err
    assert "receivers[0] 'slack'" in err and "hooks.slack.com/***" in err, err
    assert_no_secret(err, {"slack path": "slackPathSecret81"})
