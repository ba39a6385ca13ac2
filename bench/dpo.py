"""DPO job throughput: TRL's default configuration against ours, same run.

    .venv/bin/python bench/dpo.py                # CPU here: a ~7M-parameter Llama
    python bench/dpo.py --size 1b --steps 30     # a GPU: ~0.9B parameters, bf16, MFU

Three configurations train the same model (same seed, same data: ``steps x batch``
pairs whose lengths vary 2-12x, so padding matters), each in its own process (so
peak memory is its own), interleaved over ``--repeats``:

* ``trl-default``: DPOTrainer as shipped (TRL 1.16 pads every batch: it ignores
  ``padding_free=True`` since its DPO refactor);
* ``packed``: our padding-free collator (``jobs/packing.py``), nothing else;
* ``ours``: packed, reference log-probs precomputed once (no reference forward in
  the loop), and Liger's fused kernels when ``liger_kernel`` is importable (GPU).

Printed per configuration (medians over repeats): tokens/s (real, non-padding
tokens of prompt+chosen and prompt+rejected, over the training loop plus any
reference pass precomputed for it; tokenising the dataset is left out), pairs/s,
peak memory (CUDA: max allocated; CPU: the process's peak RSS, which includes
the libraries, ~0.6 GB), on CUDA the model FLOPs utilisation (6N per trained
token + 2N per reference token, against the GPU's dense bf16 peak), and the
largest per-step loss gap to the default's curve (equal curves: the same
training, only faster).

Goal (issue 17): ours >= 1.5x the default's tokens/s for a 0.5-1.5B model on one
GPU, at equal loss curves.
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
                # A leading space: answers start on a token boundary after the prompt.
                "chosen": " " + " ".join(rng.choices(GOOD, k=k * 2)),
                "rejected": " " + " ".join(rng.choices(BAD, k=k * 2)),
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


def run_once(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One training run of configuration ``name`` (in a fresh process: see ``main``)."""
    import resource

    import torch
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from llmloop_retraining.jobs.dpo import build_tiny
    from llmloop_retraining.jobs.packing import make_padding_free

    rows = synthetic_pairs(args.steps * args.batch)
    texts = [t for r in rows for t in r.values()]
    model, tokenizer = build_tiny(texts, seed=0, size=args.size)
    cuda = torch.cuda.is_available()
    if cuda:
        model = model.to("cuda", dtype=torch.bfloat16)
        torch.cuda.reset_peak_memory_stats()
    if args.attn:
        model.config._attn_implementation = args.attn
    params = sum(p.numel() for p in model.parameters())
    ours = name == "ours"
    liger = ours and cuda and importlib.util.find_spec("liger_kernel") is not None
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
        precompute_ref_log_probs=ours,
        use_liger_kernel=liger,
    )
    # A fresh fingerprint per run: TRL caches precomputed reference log-probs by dataset
    # fingerprint and model hash, and a cache hit would flatter the later repeats.
    dataset = Dataset.from_list(rows).map(lambda r: r, new_fingerprint=f"{name}-{time.time_ns()}")
    # The reference pass that "ours" moves out of the loop runs in the constructor: time
    # it, and count it with the loop, so that moving work is not counted as saving it.
    precompute = [0.0]
    original = DPOTrainer._precompute_ref_logps

    def timed(self: Any, *a: Any, **kw: Any) -> Any:
        began = time.perf_counter()
        try:
            return original(self, *a, **kw)
        finally:
            precompute[0] += time.perf_counter() - began

    DPOTrainer._precompute_ref_logps = timed
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
        if name in ("packed", "ours"):
            make_padding_free(trainer)
        if cuda:
            torch.cuda.synchronize()
        loop_started = time.perf_counter()
        result = trainer.train()
    if cuda:
        torch.cuda.synchronize()
    ended = time.perf_counter()
    # Training work: the loop plus any reference pass precomputed for it. Tokenising the
    # dataset (the constructor's other work, the same for every configuration) is left out.
    seconds = ended - loop_started + precompute[0]
    tokens = count_tokens(tokenizer, rows)
    # Policy: forward+backward (6N per token); reference: one forward (2N), in the
    # loop or precomputed, the same work either way.
    flops = 8 * params * tokens
    out = {
        "config": name,
        "params": params,
        "seconds": seconds,
        "end_to_end_seconds": ended - started,
        "tokens_per_s": tokens / seconds,
        "samples_per_s": len(rows) / seconds,
        "train_loss": float(result.training_loss),
        "losses": [e["loss"] for e in trainer.state.log_history if "loss" in e],
        "liger": liger,
        # ru_maxrss is in KiB on Linux.
        "peak_memory_gb": (
            torch.cuda.max_memory_allocated() / 2**30
            if cuda
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        ),
    }
    if cuda:
        name_ = torch.cuda.get_device_name()
        peak = next((v for k, v in PEAK_BF16.items() if k in name_), None)
        out["device"] = name_
        out["mfu"] = flops / seconds / peak if peak else None
    return out


CONFIGS = ("trl-default", "packed", "ours")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--size",
        choices=["tiny", "mini", "small", "1b"],
        default=None,
        help="tiny (~0.1M params), mini (~7M, default on CPU), small (~350M) or 1b (~0.9B, "
        "default on GPU)",
    )
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--attn",
        choices=["sdpa", "eager", "flex_attention", "flash_attention_2"],
        help="attention implementation (default: the model's, sdpa); packed batches get a "
        "block-diagonal mask with sdpa/eager/flex, variable-length kernels with flash",
    )
    parser.add_argument("--out", default="bench/results/dpo", help="run output (git-ignored)")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = parser.parse_args()
    import multiprocessing

    import torch

    if args.size is None:
        args.size = "1b" if torch.cuda.is_available() else "mini"
    device = (
        torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else (f"CPU, {torch.get_num_threads()} threads")
    )
    print(
        f"DPO bench: {args.size} Llama, {args.steps * args.batch} pairs, {args.steps} steps x "
        f"batch {args.batch}, {args.repeats} repeats, on {device}"
    )
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CONFIGS}
    spawn = multiprocessing.get_context("spawn")
    for i in range(args.repeats):
        # Interleaved, order alternating: drifting machine load and warm-up hit all alike.
        for name in CONFIGS[:: 1 if i % 2 == 0 else -1]:
            with spawn.Pool(1) as pool:
                runs[name].append(pool.apply(run_once, (name, args)))
    summary = {}
    base = runs["trl-default"][0]["losses"]
    for name, results in runs.items():
        losses = results[0]["losses"]
        summary[name] = {
            "tokens_per_s": statistics.median(r["tokens_per_s"] for r in results),
            "samples_per_s": statistics.median(r["samples_per_s"] for r in results),
            "peak_memory_gb": statistics.median(r["peak_memory_gb"] for r in results),
            "mfu": statistics.median(r["mfu"] for r in results) if results[0].get("mfu") else None,
            "loss_gap": max(
                (abs(a - b) for a, b in zip(base, losses, strict=False)), default=float("nan")
            ),
        }
        s = summary[name]
        mfu = f"  MFU {s['mfu']:.1%}" if s["mfu"] else ""
        print(
            f"{name:<12} {s['tokens_per_s']:>10.0f} tokens/s  {s['samples_per_s']:>8.1f} "
            f"pairs/s  peak {s['peak_memory_gb']:.2f} GB{mfu}  loss gap {s['loss_gap']:.1e}  "
            f"(params {results[0]['params']:,}, liger {results[0]['liger']})"
        )
    default = summary["trl-default"]["tokens_per_s"]
    opt = runs["ours"][0]["losses"]
    print(
        f"speed-up vs trl-default: packed {summary['packed']['tokens_per_s'] / default:.2f}x, "
        f"ours {summary['ours']['tokens_per_s'] / default:.2f}x tokens/s; loss {base[0]:.4f} -> "
        f"{base[-1]:.4f} (default), {opt[0]:.4f} -> {opt[-1]:.4f} (ours)"
    )
    if args.json:
        print(json.dumps({"summary": summary, "runs": runs}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
