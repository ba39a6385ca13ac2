"""The replicated retraining controller's pairing rate: feedback records in, pairs out.

With ``LLMLOOP_RETRAIN_REPLICATED`` the joiners scale by replicas (they keep nothing),
and one controller applies every feedback record of the join log to its SQLite state
(``PairJoin.apply`` with the completions each record carries): that single thread
bounds the feedback rate the cluster can pair. This prints records/s and µs per
record for the realistic mix of ``tests/integration/retraining_data.py`` (a third each
preference, correction, thumbs), in batches as the controller reads them.

    .venv/bin/python bench/retrain_join.py [--pairs 20000] [--batch 2000] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=20_000, help="items of traffic (~1 pair each)")
    ap.add_argument("--batch", type=int, default=2000, help="records per apply (controller batch)")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
    from retraining_data import feedback_traffic

    from llmloop.events import CompletionLogged, FeedbackGiven
    from llmloop_retraining import pairs as P
    from llmloop_retraining.join import PairJoin
    from llmloop_retraining.replicated import referenced

    traffic = feedback_traffic(args.pairs, seed=7)
    known = {
        str(e.event_id): P.Completion.from_event(e)
        for e in traffic
        if isinstance(e, CompletionLogged)
    }
    # What the joiners append: each feedback with the completions it names.
    records = [
        (e, [known[i] for i in referenced(e) if i in known])
        for e in traffic
        if isinstance(e, FeedbackGiven)
    ]
    rates = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            join = PairJoin(Path(tmp) / "state.db")
            made = 0
            began = time.perf_counter()
            for i in range(0, len(records), args.batch):
                chunk = records[i : i + args.batch]
                result = join.apply([f for f, _ in chunk], [c for _, cs in chunk for c in cs])
                made += len(result.pairs)
            elapsed = time.perf_counter() - began
            join.close()
        rates.append(len(records) / elapsed)
    rate = statistics.median(rates)
    print(
        f"{len(records)} feedback records ({made} pairs) in batches of {args.batch}: "
        f"{rate:,.0f} records/s = {1e6 / rate:.0f} µs per record (median of {args.runs}; "
        f"runs {', '.join(f'{r:,.0f}' for r in rates)})"
    )


if __name__ == "__main__":
    main()
