"""Alerting: metric crossing a threshold -> webhook received, and notifications/s.

Latency: the alerting service with default settings consumes the metrics topic
of the embedded runtime's bus (``sqlite://``, the durable local log, as in
``llmloop up``) or of a real Kafka-protocol broker (Tansu). Each sample is one
metric event for a new label set that crosses the threshold; its latency is
the time the local HTTP receiver got the webhook minus the time the event was
handed to ``publish`` (same process, same clock). Events go out at a steady
rate, not one by one, so batching shows up as it would in production.

Throughput: many alerts at once to a receiver that takes ``--delay`` seconds
per request; notifications per second that one alerting process delivers with
its bounded concurrency (``LLMLOOP_ALERTING_CONCURRENCY``, default 32), and
its RSS before and after (flat memory: the outbox, not RAM, holds the queue).

    .venv/bin/python bench/alerting.py [--alerts 200] [--rate 20] [--burst 1000]
                                       [--delay 0.2] [--runs 3]

Goal (issue 5): p99 <= 5 s with default settings.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from pathlib import Path

from llmloop.bus import open_bus
from llmloop.testing.metrics import metric_event, publish_metrics, running
from llmloop.testing.tansu import TansuBroker
from llmloop.testing.webhooks import WebhookReceiver
from llmloop_alerting.service import AlertingService
from llmloop_alerting.settings import AlertingSettings

RULES = """
receivers: [{{name: hook, url: "{url}"}}]
rules: [{{name: bench, metric: latency_p95_ms, threshold: 100, receivers: [hook]}}]
"""


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _settings(data_dir: Path, url: str, bus_url: str) -> AlertingSettings:
    data_dir.mkdir(parents=True, exist_ok=True)
    rules = data_dir / "rules.yaml"
    rules.write_text(RULES.format(url=url))
    # Defaults for everything that shapes latency (tick, batch wait, concurrency).
    return AlertingSettings(
        data_dir=data_dir, bus_url=bus_url, alerting_rules=rules, alerting_secret="bench"
    )


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def latency(bus_url: str, data_dir: Path, alerts: int, rate: float) -> list[float]:
    """Seconds from publish to webhook received, one per alert."""
    bus = open_bus(bus_url)
    await bus.start()
    sent: dict[str, float] = {}
    try:
        async with (
            WebhookReceiver() as hook,
            running(AlertingService(bus, _settings(data_dir, hook.url(), bus_url))),
        ):
            # Warm-up: the consumer joined (Kafka) and the first request connected.
            await publish_metrics(
                bus, metric_event("latency_p95_ms", 500, labels={"series": "warmup"})
            )
            await hook.wait_for(1, timeout_s=60)
            for i in range(alerts):
                event = metric_event("latency_p95_ms", 500, labels={"series": str(i)})
                sent[str(i)] = time.time()
                await publish_metrics(bus, event)
                await asyncio.sleep(1 / rate)
            got = await hook.wait_for(alerts + 1, timeout_s=120)
    finally:
        await bus.close()
    received = {r.json()["alerts"][0]["labels"]["series"]: r.at for r in got}
    return [received[k] - t for k, t in sent.items()]


async def throughput(
    bus_url: str, data_dir: Path, burst: int, delay_s: float
) -> tuple[float, float, float, int]:
    """(notifications/s, RSS MiB before, RSS MiB after, most requests in flight)."""
    bus = open_bus(bus_url)
    await bus.start()
    try:
        async with (
            WebhookReceiver(delay_s=delay_s) as hook,
            running(AlertingService(bus, _settings(data_dir, hook.url(), bus_url))),
        ):
            rss_before = _rss_mib()
            events = [
                metric_event("latency_p95_ms", 500, labels={"series": f"b{i}"})
                for i in range(burst)
            ]
            start = time.perf_counter()
            for i in range(0, burst, 500):
                await publish_metrics(bus, *events[i : i + 500])
            await hook.wait_for(burst, timeout_s=600)
            elapsed = time.perf_counter() - start
            rss_after = _rss_mib()
    finally:
        await bus.close()
    return burst / elapsed, rss_before, rss_after, hook.max_in_flight


def _report(name: str, samples: list[float]) -> None:
    print(
        f"{name}: n={len(samples)} p50={statistics.median(samples) * 1000:.0f} ms "
        f"p95={_quantile(samples, 0.95) * 1000:.0f} ms "
        f"p99={_quantile(samples, 0.99) * 1000:.0f} ms "
        f"max={max(samples) * 1000:.0f} ms  (goal p99 <= 5000 ms)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--alerts", type=int, default=200, help="latency samples per runtime")
    parser.add_argument("--rate", type=float, default=20.0, help="metric events per second")
    parser.add_argument("--burst", type=int, default=1000, help="alerts for the throughput run")
    parser.add_argument("--delay", type=float, default=0.2, help="slow receiver: s per request")
    parser.add_argument("--runs", type=int, default=3, help="throughput runs (median reported)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        embedded = await latency(f"sqlite:///{root}/e/bus.db", root / "e", args.alerts, args.rate)
        _report("embedded (sqlite:// bus) metric -> webhook", embedded)
        with TansuBroker() as broker:
            kafka = await latency(broker.url(partitions=3), root / "k", args.alerts, args.rate)
        _report("kafka (Tansu) metric -> webhook", kafka)
        figures = []
        for run in range(args.runs):
            figures.append(
                await throughput(
                    f"sqlite:///{root}/t{run}/bus.db", root / f"t{run}", args.burst, args.delay
                )
            )
            rate, before, after, peak = figures[-1]
            print(
                f"  run {run + 1}: {rate:.0f} notifications/s, RSS {before:.0f} -> "
                f"{after:.0f} MiB, at most {peak} requests in flight"
            )
        rates = [f[0] for f in figures]
        print(
            f"slow receiver ({args.delay * 1000:.0f} ms per request), {args.burst} alerts: "
            f"median {statistics.median(rates):.0f} notifications/s over {args.runs} runs "
            f"(bound: concurrency / delay = {32 / args.delay:.0f}/s)"
        )


if __name__ == "__main__":
    asyncio.run(main())
