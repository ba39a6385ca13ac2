"""The distributed runtime as a user deploys it, for the fault tests.

Each service is its own OS process started from the CLI (ingest under uvicorn,
the processor as a faust worker, alerting, retraining) on a Kafka-protocol
broker; the processor owns the chDB store. ``Loop`` starts them, kills and
restarts them, and answers the two questions every fault test asks afterwards:
has every service consumed everything on the bus (committed offsets equal the
topics' lengths), and what does ClickHouse hold.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

from llmloop import topics
from llmloop.testing.kafka import committed, topic_length
from llmloop.testing.server import wait_ready
from llmloop.testing.tansu import TansuBroker, free_port

LLMLOOP = str(Path(sys.executable).with_name("llmloop"))
PARTITIONS = 2
# Consumer groups, per service and the topics each one reads.
GROUPS = {
    "processor": (
        "llmloop-processor",
        (topics.EVENTS, topics.METRICS, topics.ALERTS, topics.RETRAIN),
    ),
    "alerting": ("llmloop-alerting", (topics.METRICS,)),
    "retraining": ("llmloop-retraining", (topics.EVENTS, topics.ALERTS)),
}
# Fast settings for a test: short windows, short group sessions, no 7 s model import
# unless a test asks for embeddings.
FAST = {
    "LLMLOOP_PROCESSOR_FAUST_SESSION_TIMEOUT_S": "2.0",
    "LLMLOOP_PROCESSOR_FAUST_HEARTBEAT_S": "0.5",
    "LLMLOOP_PROCESSOR_FAUST_PARTITIONS": str(PARTITIONS),
    "LLMLOOP_PROCESSOR_STATS_INTERVAL_S": "2",
    "LLMLOOP_PROCESSOR_STATS_WINDOW_S": "60",
    "LLMLOOP_PROCESSOR_REFERENCE_SIZE": "100",
    "LLMLOOP_PROCESSOR_MIN_SAMPLES": "10",
    "LLMLOOP_PROCESSOR_FEEDBACK_SETTLE_S": "0",  # the scenario's feedback comes at once
    "LLMLOOP_PROCESSOR_PROFILES": "false",
    "LLMLOOP_ALERTING_TICK_S": "0.2",
    "LLMLOOP_ALERTING_BATCH_WAIT_S": "0.05",
    "LLMLOOP_ALERTING_BACKOFF_BASE_S": "0.1",
    "LLMLOOP_ALERTING_BACKOFF_MAX_S": "1",
    "LLMLOOP_ALERTING_SECRET": "loop-test-secret",
    "LLMLOOP_RETRAIN_CHECK_INTERVAL_S": "1",
    "LLMLOOP_WRITER_MAX_WAIT_S": "0.1",
}


def fast_env() -> dict[str, str]:
    return {**os.environ, **FAST, "LLMLOOP_LOG_LEVEL": "INFO"}


@dataclass
class Service:
    """One service process; killed as a container is: the whole process group at once."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    lives: int = 0
    peak_rss_mib: float = 0.0
    wanted: bool = False  # started and not deliberately stopped or killed

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.lives += 1
        self.wanted = True

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def sample_rss(self) -> float:
        """Record the process tree's resident memory (MiB); returns the current value."""
        if not self.alive():
            return 0.0
        assert self.proc is not None
        try:
            root = psutil.Process(self.proc.pid)
            rss = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
        except psutil.Error:
            return 0.0
        mib = rss / 2**20
        self.peak_rss_mib = max(self.peak_rss_mib, mib)
        return mib

    def kill(self) -> None:
        assert self.proc is not None
        self.sample_rss()
        self.wanted = False
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        """SIGTERM and wait: a clean stop exits 0 (uvicorn re-raises the SIGTERM after its
        graceful shutdown, so ingest reports it as -15, as a container's 143)."""
        if not self.alive():
            return self.proc.returncode if self.proc else 0
        assert self.proc is not None
        self.sample_rss()
        self.wanted = False
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(45)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            return -9

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


@dataclass
class Loop:
    """ingest, processor (faust), alerting and retraining on one broker, as OS processes."""

    work: Path
    broker: TansuBroker
    env: dict[str, str] = field(default_factory=dict)
    rules: dict[str, Any] | None = None
    policy: dict[str, Any] | None = None
    services: dict[str, Service] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.bus_url = self.broker.url(partitions=PARTITIONS)
        self.store_url = f"chdb:///{self.work}/chdb"
        self.port = free_port()
        self.ingest_url = f"http://127.0.0.1:{self.port}"
        base = {
            **fast_env(),
            "LLMLOOP_BUS_URL": self.bus_url,
            "LLMLOOP_STORE_URL": self.store_url,
            # faust's web server binds 6066 by default: another run on this host (or a
            # second processor, test_scale_out) would make the worker exit at start.
            "FAUST_WEB_PORT": str(free_port()),
            **self.env,
        }
        rules = self.work / "rules.yaml"
        rules.write_text(yaml.safe_dump(self.rules or {"rules": []}))
        policy = self.work / "policy.yaml"
        policy.write_text(yaml.safe_dump(self.policy or {}))
        run = subprocess.run(
            [LLMLOOP, "migrate", "--store", self.store_url], capture_output=True, text=True
        )
        assert run.returncode == 0, run.stderr
        self.key = subprocess.run(
            [
                LLMLOOP,
                "keys",
                "create",
                "--project",
                "shop",
                "--data-dir",
                str(self.work / "ingest"),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        argv = {
            "ingest": ["ingest", "--port", str(self.port), "--data-dir", str(self.work / "ingest")],
            "processor": ["processor", "--faust", "--data-dir", str(self.work / "processor")],
            "alerting": [
                "alerting",
                "--rules",
                str(rules),
                "--data-dir",
                str(self.work / "alerting"),
            ],
            "retraining": [
                "retraining",
                "--policy",
                str(policy),
                "--data-dir",
                str(self.work / "retraining"),
            ],
        }
        for name, args in argv.items():
            self.services[name] = Service(
                name, [LLMLOOP, *args], dict(base), self.work / f"{name}.log"
            )

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> Loop:
        for service in self.services.values():
            service.start()
        self.wait_ingest()
        return self

    def wait_ingest(self) -> None:
        ingest = self.services["ingest"]
        assert ingest.proc is not None
        wait_ready(self.ingest_url, ingest.proc, ingest.log, path="/healthz", timeout_s=60)

    def restart(self, name: str) -> None:
        self.services[name].start()
        if name == "ingest":
            self.wait_ingest()

    def tails(self, chars: int = 1500) -> str:
        """The end of every service's log, for a failure message."""
        return "\n".join(f"--- {s.name}\n{s.tail(chars)}" for s in self.services.values())

    def check_alive(self) -> None:
        for service in self.services.values():
            if service.wanted:
                assert service.alive(), f"{service.name} died:\n{service.tail()}"
                service.sample_rss()

    async def stop(self, *names: str) -> None:
        """Stop services cleanly, one by one; the event loop keeps serving meanwhile (a
        webhook receiver in the test answers the deliveries a stopping alerting finishes)."""
        for name in names or tuple(self.services):
            service = self.services[name]
            code = await asyncio.to_thread(service.stop)
            assert code in (0, -signal.SIGTERM), f"{name} exited {code}:\n{service.tail()}"

    def close(self) -> None:
        for service in self.services.values():
            if service.alive():
                service.kill()

    # --- the bus --------------------------------------------------------------------------

    async def settle(self, *names: str, timeout: float = 90) -> None:
        """Wait until each named service committed every message that its topics held
        when this was called (later ones, such as the next metrics, need not be)."""
        deadline = time.monotonic() + timeout
        lengths = {
            (name, topic): await topic_length(self.broker.bootstrap, topic)
            for name in names
            for topic in GROUPS[name][1]
        }
        while True:
            self.check_alive()
            behind = {}
            for (name, topic), length in lengths.items():
                done = await committed(self.broker.bootstrap, GROUPS[name][0], topic)
                if done < length:
                    behind[f"{name}/{topic}"] = (done, length)
            if not behind:
                return
            assert time.monotonic() < deadline, f"still behind (committed, length): {behind}"
            await asyncio.sleep(0.5)

    # --- the store --------------------------------------------------------------------------

    def query(self, sql: str) -> list[list[str]]:
        """Rows as TSV fields; the processor must be stopped (it owns the chDB path)."""
        run = subprocess.run(
            [LLMLOOP, "query", sql, "--store", self.store_url, "-f", "TSV"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
        return [line.split("\t") for line in run.stdout.splitlines()]
