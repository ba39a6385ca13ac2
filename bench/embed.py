"""Embedding throughput: int8 ONNX against fp32 torch, short and long texts, one run.

The processor's default path (``onnx-int8``: the packaged all-MiniLM-L6-v2
exported locally to ONNX, quantized per channel, run by ONNX Runtime, texts
truncated to the token budget and batched by length) against the torch path
(sentence-transformers fp32), on the same texts with the same thread count:

* short: distinct prompts of ~10 words (``corpus.prompts``);
* long: the realistic corpus in the repo (``corpus.long_completions``): prompts
  of 200-800 characters and answers of 200-1,500, half prompts, half answers.

Prints sentences/s of each (median of --runs), the ratio, and the cosine of the
int8 vectors to torch fp32 (min and mean; goal >= 0.98), then the processor's
Embedder against raw SentenceTransformer.encode (issue 4: >= 0.9x), and the
Int8 storage form's cosine.

    .venv/bin/python bench/embed.py [--n 600] [--batch 32] [--runs 3] [--threads 2] [--tokens 256]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def rate_of(encode, texts: list[str], runs: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    rates, out = [], None
    for run in range(runs):
        batch = texts if run == 0 else [f"{t} ({run})" for t in texts]  # no cache help
        t = time.perf_counter()
        vectors = encode(batch)
        rates.append(len(batch) / (time.perf_counter() - t))
        if run == 0:
            out = vectors
    return statistics.median(rates), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600, help="texts per corpus")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=256, help="token budget (truncation)")
    args = parser.parse_args()

    import numpy as np
    import torch

    from llmloop.testing.corpus import long_completions, prompts
    from llmloop_processor.embed import Embedder, dequantize, quantize

    torch.set_num_threads(args.threads)
    short = list(
        dict.fromkeys(prompts("cooking", 4 * args.n, 1) + prompts("programming", 4 * args.n, 2))
    )
    short = short[: args.n]
    pairs = long_completions("cooking", args.n // 4, 3) + long_completions(
        "programming", args.n // 4, 4
    )
    long = [t for pair in pairs for t in pair]
    common = {"batch_size": args.batch, "cache_size": 0, "max_seq_length": args.tokens}
    onnx = Embedder(backend="onnx-int8", threads=args.threads, **common)
    fp32 = Embedder(backend="torch", threads=args.threads, **common)
    t = time.perf_counter()
    onnx.load()
    print(
        f"onnx-int8 model ready in {time.perf_counter() - t:.1f} s (export cached after the first)"
    )
    model = fp32.load()
    onnx.encode(short[:64])
    fp32.encode(short[:64])
    print(
        f"batch {args.batch}, {args.threads} thread(s), token budget {args.tokens}, "
        f"median of {args.runs} runs (a shared CPU: compare the ratios, not the absolutes)"
    )
    for label, texts in (("short", short), ("long", long)):
        chars = statistics.mean(len(x) for x in texts)
        torch_rate, ref = rate_of(fp32.encode, texts, args.runs)
        onnx_rate, got = rate_of(onnx.encode, texts, args.runs)
        cos = np.sum(np.asarray(ref) * np.asarray(got), axis=1)
        print(
            f"  {label:<5} ({len(texts):,} texts, {chars:.0f} chars avg): "
            f"torch fp32 {torch_rate:7.1f}/s, onnx int8 {onnx_rate:7.1f}/s = "
            f"{onnx_rate / torch_rate:.2f}x; cosine to fp32 min {cos.min():.4f} "
            f"mean {cos.mean():.4f} (goal >= 0.98)"
        )

    # The processor's wrapper against the raw library call (issue 4), torch path.
    raw_rate, _ = rate_of(
        lambda b: model.encode(b, batch_size=args.batch, normalize_embeddings=True),
        short,
        args.runs,
    )
    ours_rate, _ = rate_of(fp32.encode, short, args.runs)
    print(
        f"  Embedder.encode vs raw SentenceTransformer.encode (torch, short): "
        f"{ours_rate / raw_rate:.2f}x (goal >= 0.9x)"
    )
    vectors = model.encode(short[:500], normalize_embeddings=True)
    back = dequantize(quantize(vectors))
    cos = np.sum(vectors * back, axis=1) / np.linalg.norm(back, axis=1)
    print(
        f"  Int8 storage: cosine to fp32 min {cos.min():.4f}, mean {cos.mean():.5f}; "
        "384 B per vector instead of 1,536"
    )


if __name__ == "__main__":
    main()
