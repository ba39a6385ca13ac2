"""Statistics tick time against keys and processor replicas (issue 16).

For 10, 100 and 1,000 (project, model, prompt_version) keys of synthetic enriched and
embedded rows in chDB, runs the timer's compute() as 1, 2 and 3 replicas would: each
with the events-topic partitions a consumer group deals it (``shard.assign_like_kafka``),
one after another on this machine. Prints per replica the keys it computed and its
time; the tick's wall time with replicas on their own cores is the slowest replica's.
Keys computed summed over replicas equals the keys: work is split, not repeated.

    .venv/bin/python bench/stats_scale.py [--keys 10 100 1000] [--per-key 40] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta

from llmloop.bus import open_bus
from llmloop.store import open_store
from llmloop.store.migrate import migrate
from llmloop_processor import synthetic
from llmloop_processor.settings import ProcessorSettings
from llmloop_processor.shard import assign_like_kafka
from llmloop_processor.stats import StatsRunner

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
INTERVAL = 600.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--per-key", type=int, default=40, help="rows per key per window")
    ap.add_argument("--partitions", type=int, default=12)
    ap.add_argument("--workers", type=int, default=1, help="processor_stats_workers")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    start = NOW - timedelta(seconds=INTERVAL)
    day = timedelta(days=1)
    print(
        f"statistics tick, {args.per_key} rows/key (+ as many reference rows), "
        f"{args.partitions} partitions, {args.workers} worker(s)/replica; median of "
        f"{args.repeat}"
    )
    print(
        f"{'keys':>6} {'replicas':>8} {'keys per replica':>22} {'s per replica':>26} "
        f"{'tick wall s':>11} {'ms/key':>7}"
    )
    for n in args.keys:
        with tempfile.TemporaryDirectory() as tmp:
            store = open_store(f"chdb:///{tmp}/chdb")
            migrate(store)
            keys = synthetic.keys(n)
            synthetic.write(store, keys, args.per_key, start - day, NOW - day, seed=1)
            synthetic.write(store, keys, args.per_key, start, NOW, seed=2)
            s = ProcessorSettings(
                data_dir=tmp,
                processor_stats_interval_s=INTERVAL,
                processor_stats_window_s=INTERVAL,
                processor_reference_size=args.per_key,
                processor_min_samples=20,
                processor_feedback_settle_s=0,
                processor_profiles=False,
                processor_stats_workers=args.workers,
            )
            bus = open_bus("memory://")
            for replicas in args.replicas:
                counts, times = [], []
                for shard in assign_like_kafka(args.partitions, replicas):
                    runner = StatsRunner(store, bus, s, ownership=lambda shard=shard: shard)
                    samples = []
                    for _ in range(args.repeat):
                        began = time.perf_counter()
                        runner.compute(start, NOW)
                        samples.append(time.perf_counter() - began)
                    counts.append(runner.last_keys)
                    times.append(statistics.median(samples))
                assert sum(counts) == n, (counts, n)  # every key once, none twice
                wall = max(times)
                print(
                    f"{n:>6} {replicas:>8} {'+'.join(map(str, counts)):>22} "
                    f"{' '.join(f'{t:.2f}' for t in times):>26} {wall:>11.2f} "
                    f"{1000 * sum(times) / n:>7.1f}"
                )
            store.close()


if __name__ == "__main__":
    main()
