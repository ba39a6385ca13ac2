"""Embedding throughput: the processor's Embedder against raw SentenceTransformer.encode.

Same texts (distinct, so the cache does not help), same batch size, same model
object, torch CPU. Prints sentences/s (median of --runs) and the ratio, then the
cache's effect on a realistic stream with repeated prompts, and the Int8 storage
form's cosine agreement with fp32.

    .venv/bin/python bench/embed.py [--n 1000] [--batch 32] [--runs 3] [--ort-path DIR]

Goal (issue 4): processor >= 0.9x raw. ONNX backends: onnxruntime and onnx are not
project dependencies; with them importable (e.g. ``pip install --target /tmp/ortlib
onnxruntime onnx`` and ``--ort-path /tmp/ortlib``) the bench exports the model with
torch's TorchScript exporter (offline), quantizes it to int8 per channel, and
reports speed and cosine agreement with torch fp32.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ort-path", help="a directory holding onnxruntime and onnx")
    args = parser.parse_args()
    if args.ort_path:
        import sys

        sys.path.append(args.ort_path)  # last: the venv's numpy etc. keep precedence

    import numpy as np
    import torch

    from llmloop_processor.corpus import prompts
    from llmloop_processor.embed import Embedder, dequantize, quantize

    texts = list(
        dict.fromkeys(prompts("cooking", 4 * args.n, 1) + prompts("programming", 4 * args.n, 2))
    )
    texts = texts[: args.n]
    embedder = Embedder(batch_size=args.batch, cache_size=0)
    model = embedder.load()
    model.encode(texts[:64], batch_size=args.batch)  # warm-up
    raw_rates, ours_rates = [], []
    for run in range(args.runs):
        # A suffix per run so neither side sees a text twice across runs.
        batch = [f"{t} ({run})" for t in texts]
        # Alternate who goes first: the machine is shared, load drifts during a run.
        order = ("raw", "ours") if run % 2 == 0 else ("ours", "raw")
        for side in order:
            embedder._cache.clear()
            t = time.perf_counter()
            if side == "raw":
                model.encode(
                    batch, batch_size=args.batch, normalize_embeddings=True, show_progress_bar=False
                )
                raw_rates.append(len(batch) / (time.perf_counter() - t))
            else:
                embedder.encode(batch)
                ours_rates.append(len(batch) / (time.perf_counter() - t))
    raw, ours = statistics.median(raw_rates), statistics.median(ours_rates)
    print(
        f"{len(texts):,} distinct short prompts, batch {args.batch}, torch threads "
        f"{torch.get_num_threads()}, median of {args.runs} runs:"
    )
    print(f"  raw SentenceTransformer.encode  {raw:8.0f} sentences/s")
    print(
        f"  processor Embedder.encode       {ours:8.0f} sentences/s  "
        f"({ours / raw:.2f}x raw; goal >= 0.9x)"
    )

    # The embedded runtime's default: the model in a child process (IPC per chunk).
    child = Embedder(batch_size=args.batch, cache_size=0, in_process=False)
    child.encode(texts[:64])  # loads the model in the child
    child_rates = []
    for run in range(args.runs):
        t = time.perf_counter()
        child.encode([f"{x} (child {run})" for x in texts])
        child_rates.append(len(texts) / (time.perf_counter() - t))
    child.close()
    print(
        f"  Embedder in a child process     {statistics.median(child_rates):8.0f} sentences/s  "
        f"({statistics.median(child_rates) / raw:.2f}x raw)"
    )

    # A stream where 60% of prompts repeat earlier ones (templates, retries).
    cached = Embedder(batch_size=args.batch)
    cached._model = model
    rng = np.random.default_rng(0)
    stream = [texts[i] for i in rng.integers(0, int(len(texts) * 0.4), size=len(texts))]
    t = time.perf_counter()
    cached.encode(stream)
    rate = len(stream) / (time.perf_counter() - t)
    print(
        f"  with the cache, 60% repeats     {rate:8.0f} events/s  "
        f"({cached.misses} distinct texts embedded)"
    )

    vectors = model.encode(texts[:500], normalize_embeddings=True)
    back = dequantize(quantize(vectors))
    cos = np.sum(vectors * back, axis=1) / np.linalg.norm(back, axis=1)
    print(
        f"  Int8 storage: cosine to fp32 min {cos.min():.4f}, mean {cos.mean():.5f}; "
        f"384 B per vector instead of 1,536"
    )

    onnx_section(model, texts, args.batch, args.runs, raw)


def onnx_section(model, texts, batch, runs, raw):  # type: ignore[no-untyped-def]
    """ONNX Runtime fp32 and int8 (per-channel) against torch fp32, if installed."""
    import tempfile

    import numpy as np
    import torch

    try:
        import onnxruntime as ort
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        print("  ONNX: onnxruntime not importable here (see --ort-path); skipped")
        return

    class Pooled(torch.nn.Module):
        """The transformer plus mean pooling and L2 normalisation, as the model does."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
            out = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(out.dtype)
            pooled = (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=1)

    tok = model.tokenizer
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = f"{tmp}/minilm.onnx", f"{tmp}/minilm.int8.onnx"
        sample = tok(["a", "b c"], padding=True, return_tensors="pt")
        torch.onnx.export(
            Pooled(model[0].auto_model.eval()),
            tuple(sample[n] for n in names),
            fp32,
            input_names=names,
            output_names=["embedding"],
            dynamic_axes={n: {0: "batch", 1: "seq"} for n in names} | {"embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
        quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8, per_channel=True)
        reference = model.encode(texts, batch_size=batch, normalize_embeddings=True)
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        for label, path in (("onnxruntime fp32", fp32), ("onnxruntime int8", int8)):
            session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

            def encode(items: list[str], session=session) -> np.ndarray:  # type: ignore[no-untyped-def]
                out = []
                for i in range(0, len(items), batch):
                    enc = tok(
                        items[i : i + batch],
                        padding=True,
                        truncation=True,
                        max_length=256,
                        return_tensors="np",
                    )
                    out.append(session.run(None, {n: enc[n].astype(np.int64) for n in names})[0])
                return np.concatenate(out)

            encode(texts[:64])
            rates = []
            for _ in range(runs):
                t = time.perf_counter()
                vectors = encode(texts)
                rates.append(len(texts) / (time.perf_counter() - t))
            cos = np.sum(vectors * reference, axis=1)
            rate = statistics.median(rates)
            print(
                f"  {label:<31} {rate:8.0f} sentences/s  ({rate / raw:.2f}x torch), "
                f"cosine to torch fp32 min {cos.min():.4f} mean {cos.mean():.4f}"
            )


if __name__ == "__main__":
    main()
