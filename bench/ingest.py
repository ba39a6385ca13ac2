"""Ingest throughput and latency against a Kafka-protocol broker (Tansu) on this machine.

Runs ``llmloop ingest`` as its own process (one core's worth: one uvicorn
worker) publishing to a local Tansu broker with acks=all, and drives it with a
small raw HTTP/1.1 keep-alive load generator (so the client costs little of
the shared CPU). Prints, per run and as medians over runs:

* batches of 100 events, closed loop: events/s, p50 / p99 request latency;
* single-event requests, closed loop: requests/s;
* single-event requests, open loop at 70 % of that rate: p50 / p99 latency
  measured from each request's scheduled time (no coordinated omission);
* the server's RSS after each phase.

    python bench/ingest.py                 # 3 runs, 8 s per phase
    python bench/ingest.py --runs 1 --seconds 4 --profile /tmp/ingest.html
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson

from llmloop.testing.tansu import TansuBroker, free_port

LLMLOOP = str(Path(sys.executable).with_name("llmloop"))


def event() -> dict:
    return {
        "type": "completion",
        "event_id": str(uuid.uuid4()),
        "timestamp": datetime.now(UTC).isoformat(),
        "model": "gpt-4o-mini",
        "prompt_version": "support-v2",
        "prompt": [
            {"role": "system", "content": "You are a friendly support assistant."},
            {"role": "user", "content": "Why was I charged twice this month? " * 4},
        ],
        "completion": "A duplicate charge is usually a pending authorization; "
        "it drops off in 3-5 days. " * 4,
        "prompt_tokens": 95,
        "completion_tokens": 64,
        "latency_ms": 612.5,
        "user_id": "user-42",
        "attributes": {"locale": "de-DE", "plan": "pro"},
        "tags": ["bench"],
    }


def request_bytes(port: int, key: str, events: int) -> bytes:
    body = orjson.dumps({"events": [event() for _ in range(events)]})
    head = (
        f"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, req: bytes) -> int:
    writer.write(req)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def closed_loop(port: int, reqs: list[bytes], conns: int, seconds: float) -> tuple:
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def worker(i: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        n = i
        while time.perf_counter() < stop_at:
            t = time.perf_counter()
            status = await roundtrip(reader, writer, reqs[n % len(reqs)])
            latencies.append(time.perf_counter() - t)
            errors += status != 202
            n += conns
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(conns)))
    return len(latencies) / (time.perf_counter() - start), latencies, errors


async def open_loop(port: int, reqs: list[bytes], rate: float, seconds: float, conns: int):
    """Requests at a fixed rate; latency counts from the scheduled send time."""
    queue: asyncio.Queue[float] = asyncio.Queue()
    latencies: list[float] = []
    errors = 0

    async def worker(i: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        n = i
        while (scheduled := await queue.get()) >= 0:
            status = await roundtrip(reader, writer, reqs[n % len(reqs)])
            latencies.append(time.perf_counter() - scheduled)
            errors += status != 202
            n += conns
        writer.close()

    workers = [asyncio.create_task(worker(i)) for i in range(conns)]
    start = time.perf_counter()
    total = int(rate * seconds)
    for k in range(total):
        scheduled = start + k / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait(scheduled)
    for _ in workers:
        queue.put_nowait(-1.0)
    await asyncio.gather(*workers)
    return total / (time.perf_counter() - start), latencies, errors


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 10) - 1] * 1000 if values else float("nan")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_ingest(
    broker: TansuBroker,
    data_dir: Path,
    port: int,
    profile: str | None,
    bus_options: dict,
    server_cpu: int | None,
):
    env = {
        **os.environ,
        "LLMLOOP_BUS_URL": broker.url(partitions=6, **bus_options),
        "LLMLOOP_DATA_DIR": str(data_dir),
        "LLMLOOP_LOG_LEVEL": "WARNING",
    }
    cmd = [LLMLOOP, "ingest", "--port", str(port)]
    if profile:
        renderer = "html" if profile.endswith(".html") else "text"  # text: read in a terminal
        cmd = [sys.executable, "-m", "pyinstrument", "-r", renderer, "-o", profile]
        cmd += ["-m", "llmloop_app.cli", "ingest", "--port", str(port)]
    pin = server_cpu is not None
    proc = subprocess.Popen(
        cmd, env=env, preexec_fn=(lambda: os.sched_setaffinity(0, {server_cpu})) if pin else None
    )
    import httpx

    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("ingest did not become ready")


def one_run(args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, TansuBroker() as broker:
        data_dir = Path(tmp)
        key = subprocess.run(
            [LLMLOOP, "keys", "create", "--project", "bench", "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        port = free_port()
        options = dict(o.split("=", 1) for o in args.bus_option)
        proc = start_ingest(broker, data_dir, port, args.profile, options, args.server_cpu)
        out: dict[str, float] = {}
        try:
            batches = [request_bytes(port, key, 100) for _ in range(50)]
            singles = [request_bytes(port, key, 1) for _ in range(2000)]
            asyncio.run(closed_loop(port, batches, 4, 1.0))  # warm up
            rps, lat, err = asyncio.run(closed_loop(port, batches, args.batch_conns, args.seconds))
            out.update(
                batch_events_s=rps * 100,
                batch_p50_ms=pct(lat, 50),
                batch_p99_ms=pct(lat, 99),
                batch_errors=err,
                rss_batch_mib=rss_mib(proc.pid),
            )
            rps, lat, err = asyncio.run(closed_loop(port, singles, args.single_conns, args.seconds))
            out.update(single_max_rps=rps, single_errors=err)
            target = 0.7 * rps
            rate, lat, err = asyncio.run(
                open_loop(port, singles, target, args.seconds, args.single_conns)
            )
            out.update(
                single_70pct_rps=rate,
                single_p50_ms=pct(lat, 50),
                single_p99_ms=pct(lat, 99),
                single_70pct_errors=err,
                rss_single_mib=rss_mib(proc.pid),
            )
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(30)
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0, help="per phase")
    parser.add_argument("--batch-conns", type=int, default=8, help="connections, batch phase")
    parser.add_argument("--single-conns", type=int, default=32, help="connections, single phase")
    parser.add_argument(
        "--bus-option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="kafka:// URL option for ingest's producer, e.g. linger_ms=20 (repeatable)",
    )
    parser.add_argument(
        "--profile", metavar="FILE", help="run the server under pyinstrument (.html or .txt)"
    )
    parser.add_argument(
        "--server-cpu",
        type=int,
        metavar="N",
        help="pin ingest to CPU N and this script and the broker to the other CPUs: "
        "the figures are then per ingest core",
    )
    args = parser.parse_args()
    if args.server_cpu is not None:
        others = set(os.sched_getaffinity(0)) - {args.server_cpu}
        os.sched_setaffinity(0, others)  # the broker, started below, inherits this
    runs = []
    for i in range(args.runs):
        result = one_run(args)
        runs.append(result)
        print(f"run {i + 1}: " + "  ".join(f"{k}={v:,.1f}" for k, v in result.items()), flush=True)
    print(f"\nmedians over {len(runs)} runs ({os.cpu_count()} CPUs, shared machine):")
    for name in runs[0]:
        print(f"  {name:<20} {statistics.median(r[name] for r in runs):>12,.1f}")


if __name__ == "__main__":
    main()
