"""DPO job throughput: TRL's default configuration against the job's optimised one, same run.

    .venv/bin/python bench/dpo.py                # CPU here: a ~0.1M-parameter Llama
    python bench/dpo.py --size small --steps 50  # a GPU: ~350M parameters, bf16, MFU

Both configurations train the same model (same seed, same data: one epoch of
``steps x batch`` pairs with varied lengths, so padding matters) and print
tokens/s (non-padding tokens of prompt+chosen and prompt+rejected), samples/s
(pairs/s), the loss curve's largest gap between the two, and on CUDA the model
FLOPs utilisation (6·N FLOPs per trained token + 2·N per reference token,
against the GPU's dense bf16 peak). Each figure is the median of ``--repeats``
runs. The optimised configuration: reference log-probs precomputed once
(no reference forward in the training loop), padding-free batches (TRL 1.16
has them disabled after its DPO refactor and falls back to padding: the run
says so), Liger kernels when ``liger_kernel`` is importable.

Goal (issue 6): >= 1.5x the default tokens/s on one H100 with the same loss curve.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import io
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services" / "retraining"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

# Dense bf16 peak FLOP/s by device name fragment (vendor data sheets, SXM parts).
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12}

GOOD = [
    "glad",
    "to",
    "help",
    "here",
    "is",
    "a",
    "clear",
    "answer",
    "with",
    "steps",
    "and",
    "an",
    "example",
]
BAD = ["go", "away", "not", "my", "problem", "figure", "it", "out", "yourself", "no"]
WORDS = [
    "weather",
    "python",
    "cooking",
    "travel",
    "music",
    "history",
    "math",
    "sports",
    "garden",
    "cars",
    "tax",
    "dns",
]


def synthetic_pairs(n: int, seed: int = 0) -> list[dict[str, str]]:
    """Pairs with a learnable preference and varied lengths (2-12x a base length)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        k = rng.randint(2, 12)
        rows.append(
            {
                "prompt": "tell me about " + " ".join(rng.choices(WORDS, k=k)),
                "chosen": " ".join(rng.choices(GOOD, k=k * 2)),
                "rejected": " ".join(rng.choices(BAD, k=k * 2)),
            }
        )
    return rows


def count_tokens(tokenizer: Any, rows: list[dict[str, str]]) -> int:
    total = 0
    for r in rows:
        p = len(tokenizer(r["prompt"], add_special_tokens=False)["input_ids"])
        c = len(tokenizer(r["chosen"], add_special_tokens=False)["input_ids"])
        j = len(tokenizer(r["rejected"], add_special_tokens=False)["input_ids"])
        total += 2 * p + c + j + 2
    return total


def run_once(
    name: str, rows: list[dict[str, str]], args: argparse.Namespace, optimised: bool
) -> dict[str, Any]:
    import torch
    import trl
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from llmloop_retraining.jobs.dpo import build_tiny

    texts = [t for r in rows for t in r.values()]
    model, tokenizer = build_tiny(texts, seed=0, size=args.size)
    cuda = torch.cuda.is_available()
    if cuda:
        model = model.to("cuda", dtype=torch.bfloat16)
    params = sum(p.numel() for p in model.parameters())
    liger = optimised and importlib.util.find_spec("liger_kernel") is not None
    config = DPOConfig(
        output_dir=str(Path(args.out) / name),
        per_device_train_batch_size=args.batch,
        max_steps=args.steps,
        learning_rate=5e-4,
        beta=0.1,
        max_length=1024,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        bf16=cuda,
        gradient_checkpointing=False,
        use_cpu=not cuda,
        seed=0,
        disable_tqdm=True,
        precompute_ref_log_probs=optimised,
        padding_free=optimised,
        use_liger_kernel=liger,
    )
    # A fresh fingerprint per run: TRL caches precomputed reference log-probs by dataset
    # fingerprint and model hash, and a cache hit would flatter the later repeats.
    dataset = Dataset.from_list(rows).map(lambda r: r, new_fingerprint=f"{name}-{time.time_ns()}")
    if cuda:
        torch.cuda.synchronize()
    started = time.perf_counter()
    # transformers prints every log dict to stdout: keep the report readable.
    with contextlib.redirect_stdout(io.StringIO()):
        trainer = DPOTrainer(
            model=model,
            ref_model=copy.deepcopy(model),
            args=config,
            train_dataset=dataset,
            processing_class=tokenizer,
        )
        result = trainer.train()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    tokens = count_tokens(tokenizer, rows)
    # Policy: forward+backward (6N per token); reference: one forward (2N), in the
    # loop or precomputed, the same work either way.
    flops = 8 * params * tokens
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    notes = []
    if optimised and not getattr(trainer, "padding_free", True):
        notes.append(f"TRL {trl.__version__} disables padding_free (falls back to padding)")
    out = {
        "config": name,
        "params": params,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds,
        "samples_per_s": len(rows) / seconds,
        "train_loss": float(result.training_loss),
        "losses": losses,
        "liger": liger,
        "notes": notes,
    }
    if cuda:
        name_ = torch.cuda.get_device_name()
        peak = next((v for k, v in PEAK_BF16.items() if k in name_), None)
        out["device"] = name_
        out["mfu"] = flops / seconds / peak if peak else None
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--size",
        choices=["tiny", "small"],
        default=None,
        help="tiny (~0.1M params, default on CPU) or small (~350M, default on GPU)",
    )
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="bench/results/dpo", help="run output (git-ignored)")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = parser.parse_args()
    import torch

    if args.size is None:
        args.size = "small" if torch.cuda.is_available() else "tiny"
    rows = synthetic_pairs(args.steps * args.batch)
    device = (
        torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else (f"CPU, {torch.get_num_threads()} threads")
    )
    print(
        f"DPO bench: {args.size} Llama, {len(rows)} pairs, {args.steps} steps x batch "
        f"{args.batch}, {args.repeats} repeats, on {device}"
    )
    runs: dict[str, list[dict[str, Any]]] = {"trl-default": [], "optimised": []}
    for i in range(args.repeats):
        # Interleaved, order alternating: drifting machine load and warm-up hit both alike.
        for name in list(runs)[:: 1 if i % 2 == 0 else -1]:
            runs[name].append(run_once(name, rows, args, optimised=name == "optimised"))
    summary = {}
    for name, results in runs.items():
        summary[name] = {
            "tokens_per_s": statistics.median(r["tokens_per_s"] for r in results),
            "samples_per_s": statistics.median(r["samples_per_s"] for r in results),
            "mfu": statistics.median(r["mfu"] for r in results) if results[0].get("mfu") else None,
        }
        s = summary[name]
        mfu = f"  MFU {s['mfu']:.1%}" if s["mfu"] else ""
        print(
            f"{name:<12} {s['tokens_per_s']:>10.0f} tokens/s  {s['samples_per_s']:>8.1f} "
            f"pairs/s{mfu}  (params {results[0]['params']:,}, liger {results[0]['liger']})"
        )
    base, opt = runs["trl-default"][0]["losses"], runs["optimised"][0]["losses"]
    gap = max((abs(a - b) for a, b in zip(base, opt, strict=False)), default=float("nan"))
    speedup = summary["optimised"]["tokens_per_s"] / summary["trl-default"]["tokens_per_s"]
    print(
        f"speed-up {speedup:.2f}x tokens/s; loss {base[0]:.4f} -> {base[-1]:.4f} (default), "
        f"{opt[0]:.4f} -> {opt[-1]:.4f} (optimised); largest per-step loss gap {gap:.2e}"
    )
    for note in runs["optimised"][0]["notes"]:
        print(f"note: {note}")
    if args.json:
        print(json.dumps({"summary": summary, "runs": runs}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
