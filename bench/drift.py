"""Drift computation time and peak memory for a 10k x 10k window of 384-d embeddings.

Runs each configuration in a fresh subprocess so peak RSS (ru_maxrss) is that of
the computation alone, and prints the median over several runs.

    .venv/bin/python bench/drift.py [--n 10000] [--runs 3] [--permutations 200]

Goal (issue 4): <= 3 s and <= 1 GiB for MMD + permutation p-value + centroid
cosine + domain-classifier AUC on 10k x 10k x 384.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def child(n: int, permutations: int) -> None:
    import numpy as np

    from llmloop_processor.drift import centroid_cosine_distance, classifier_auc, mmd_test

    rng = np.random.default_rng(0)

    def unit(x: np.ndarray) -> np.ndarray:
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    ref = unit(rng.normal(size=(n, 384)))
    cur = unit(rng.normal(size=(n, 384)) + 0.05)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    timings = {}
    t = time.perf_counter()
    mmd = mmd_test(ref, cur, permutations=permutations)
    timings["mmd_s"] = time.perf_counter() - t
    t = time.perf_counter()
    centroid_cosine_distance(ref, cur)
    timings["centroid_s"] = time.perf_counter() - t
    t = time.perf_counter()
    auc, _ = classifier_auc(ref, cur)
    timings["auc_s"] = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                **timings,
                "total_s": sum(timings.values()),
                "peak_rss_mib": peak / 1024,
                "inputs_rss_mib": base_rss / 1024,
                "mmd2": mmd.mmd2,
                "p": mmd.p_value,
                "auc": auc,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--permutations", type=int, default=200)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.n, args.permutations)
        return
    results = []
    for _ in range(args.runs):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                "--n",
                str(args.n),
                "--permutations",
                str(args.permutations),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    print(
        f"drift on {args.n:,} x {args.n:,} x 384, {args.permutations} permutations, "
        f"median of {args.runs} runs:"
    )
    for key in ("mmd_s", "centroid_s", "auc_s", "total_s"):
        print(f"  {key:<12} {med[key]:.2f} s")
    print(
        f"  peak RSS     {med['peak_rss_mib']:.0f} MiB "
        f"(inputs alone {med['inputs_rss_mib']:.0f} MiB)"
    )
    print(f"  MMD^2 {med['mmd2']:.4f}, p {med['p']:.3f}, domain AUC {med['auc']:.3f}")
    print(
        f"  goal: <= 3 s ({'met' if med['total_s'] <= 3 else 'NOT met'}), "
        f"<= 1 GiB ({'met' if med['peak_rss_mib'] <= 1024 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
