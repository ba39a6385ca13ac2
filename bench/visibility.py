"""Event -> row visible in ClickHouse, through `llmloop up` (embedded runtime).

Starts `llmloop up` on a fresh data dir, posts completions at a steady rate in
batches, then reads each row's latency from the store itself: ``ingested_at``
(set by the engine when the row is inserted, i.e. visible) minus the event's
``timestamp`` (set just before the POST). Same machine, same clock.

    .venv/bin/python bench/visibility.py [--rate 1000] [--seconds 20] [--batch 100] [--runs 3]

Goal (DESIGN.md): p95 < 2 s at 1,000 events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

LLMLOOP = str(Path(sys.executable).with_name("llmloop"))


async def post_steadily(
    url: str, rate: int, seconds: float, batch: int, model: str, key: str
) -> int:
    sent = 0
    interval = batch / rate
    start = time.monotonic()
    headers = {"Authorization": f"Bearer {key}"}  # `up` keeps its local key in local.key
    async with httpx.AsyncClient(base_url=url, timeout=10, headers=headers) as client:
        tick = 0
        while time.monotonic() - start < seconds:
            events = [
                {
                    "type": "completion",
                    "event_id": str(uuid.uuid4()),
                    "model": model,
                    "timestamp": datetime.now(UTC).isoformat(),
                    "prompt": "How do I reset my password?",
                    "completion": "Use 'Forgot password' on the sign-in page.",
                    "prompt_tokens": 12,
                }
                for _ in range(batch)
            ]
            response = await client.post("/v1/events", json={"events": events})
            response.raise_for_status()
            sent += batch
            tick += 1
            await asyncio.sleep(max(0.0, start + tick * interval - time.monotonic()))
    return sent


def query(data_dir: Path, sql: str) -> str:
    return subprocess.run(
        [LLMLOOP, "query", sql, "--data-dir", str(data_dir), "-f", "TSV"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def one_run(args: argparse.Namespace, run: int) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        port = 17070 + run
        up = subprocess.Popen(
            [
                LLMLOOP,
                "up",
                "--data-dir",
                str(data_dir),
                "--port",
                str(port),
                "--log-level",
                "WARNING",
            ]
        )
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(600):
                try:
                    httpx.get(f"{url}/healthz", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            model = f"bench-{run}"
            key = (data_dir / "local.key").read_text().strip()
            sent = asyncio.run(post_steadily(url, args.rate, args.seconds, args.batch, model, key))
            deadline = time.monotonic() + 30
            while (
                int(query(data_dir, f"SELECT count() FROM completions WHERE model = '{model}'"))
                < sent
            ):
                if time.monotonic() > deadline:
                    raise SystemExit("not every event became visible within 30 s")
                time.sleep(0.2)
            p50, p95, p99 = map(
                float,
                query(
                    data_dir,
                    "SELECT arrayJoin(quantilesExact(0.5, 0.95, 0.99)(d)) FROM ("
                    "SELECT dateDiff('millisecond', ts, ingested_at) AS d FROM completions "
                    f"WHERE model = '{model}')",
                ).split(),
            )
            print(
                f"run {run}: {sent} events at {args.rate}/s: "
                f"p50 {p50:.0f} ms, p95 {p95:.0f} ms, p99 {p99:.0f} ms"
            )
            return p50, p95, p99
        finally:
            up.terminate()
            up.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=int, default=1000, help="events per second")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--batch", type=int, default=100, help="events per request")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results = [one_run(args, run) for run in range(args.runs)]
    p50, p95, p99 = (statistics.median(r[i] for r in results) for i in range(3))
    print(
        f"median of {args.runs} runs: event -> row visible p50 {p50:.0f} ms, p95 {p95:.0f} ms, "
        f"p99 {p99:.0f} ms (goal p95 < 2000 ms)"
    )


if __name__ == "__main__":
    main()
