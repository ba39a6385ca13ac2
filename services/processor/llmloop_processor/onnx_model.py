"""all-MiniLM-L6-v2 on ONNX Runtime, int8: the default embedding path (issue 18).

The model is exported here, from the packaged weights, never downloaded:
``torch.onnx.export`` of the transformer with its mean pooling and L2
normalisation, then ``quantize_dynamic(per_channel=True)`` (per-tensor int8
loses too much: cosine 0.91-0.94 to fp32; per channel keeps >= 0.98). The
export runs once, in a short-lived subprocess so that the process that embeds
never imports torch (~300 MB less resident), and is cached on disk under a key
of the weights' identity and this module's export version.

Texts are truncated to ``max_tokens`` word pieces and batched by length, so a
batch of short texts is not padded to the length of one long one.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from llmloop_processor.derived import cache_dir, cached_export

EXPORT_VERSION = 1
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def export_key(model_path: str) -> str:
    """Identity of an export: the weights (size and config) and the export version."""
    root = Path(model_path)
    h = hashlib.sha256(f"v{EXPORT_VERSION}".encode())
    for name in ("config.json", "tokenizer.json", "1_Pooling/config.json"):
        file = root / name
        if file.exists():
            h.update(file.read_bytes())
    for weights in sorted(root.glob("*.safetensors")) + sorted(root.glob("*.bin")):
        h.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return h.hexdigest()[:16]


def ensure_exported(model_path: str, directory: Path | None = None) -> Path:
    """The int8 ONNX file of ``model_path``, exported (in a subprocess) if not cached yet."""
    target = (directory or cache_dir("onnx")) / export_key(model_path) / "model.int8.onnx"
    return cached_export(
        target,
        [sys.executable, "-m", "llmloop_processor.onnx_model", model_path],
        "embedding model as ONNX int8",
        env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
    )


def export(model_path: str, target: Path) -> None:
    """Export (fp32), quantize (int8, per channel), move into place atomically."""
    import tempfile

    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel, AutoTokenizer

    class Pooled(torch.nn.Module):
        """The transformer, mean pooling over the mask, L2 normalisation: the model's own."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(out.dtype)
            pooled = (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=1)

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModel.from_pretrained(model_path).eval()
    sample = tokenizer(["a", "b c"], padding=True, return_tensors="pt")
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        fp32 = Path(tmp) / "model.onnx"
        with torch.no_grad():
            torch.onnx.export(
                Pooled(model),
                tuple(sample[n] for n in _INPUTS),
                str(fp32),
                input_names=list(_INPUTS),
                output_names=["embedding"],
                dynamic_axes={n: {0: "batch", 1: "seq"} for n in _INPUTS}
                | {"embedding": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
        quantized = Path(tmp) / "model.int8.onnx"
        quantize_dynamic(str(fp32), str(quantized), weight_type=QuantType.QInt8, per_channel=True)
        os.replace(quantized, target)


class OnnxEncoder:
    """``encode`` like SentenceTransformer's, on ONNX Runtime, for the exported model."""

    def __init__(
        self,
        model_path: str,
        onnx_file: Path,
        *,
        max_tokens: int = 256,
        threads: int = 1,
        max_batch_tokens: int = 512,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(Path(model_path) / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=max_tokens)
        self.tokenizer.no_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        # Memory patterns pre-plan one arena block per input shape seen; with inputs of
        # every length they only add to the peak (measured: 337 -> 276 MiB, same speed).
        options.enable_mem_pattern = False
        self.session = ort.InferenceSession(
            str(onnx_file), options, providers=["CPUExecutionProvider"]
        )
        self.max_tokens = max_tokens
        self.max_batch_tokens = max_batch_tokens

    def encode(self, texts: list[str], batch_size: int = 32, **_: Any) -> NDArray[np.float32]:
        """Unit-length embeddings, in the order of ``texts``; batches grouped by length.

        A batch holds at most ``batch_size`` texts and ``max_batch_tokens`` tokens of
        padded width: long texts go in smaller batches, which bounds the activation
        memory ONNX Runtime's arena keeps (it grows to the largest batch it saw). On
        one thread, larger batches of long texts are no faster: 512 tokens held the
        child at 152 MiB after 1,200 realistic texts, against 337 MiB at 2,048 tokens
        (``bench/embed.py`` reports the rate).
        """
        out = np.empty((len(texts), 384), dtype=np.float32)
        if not texts:
            return out
        encodings = self.tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        budget = self.max_batch_tokens
        start = 0
        while start < len(order):
            stop = start + 1
            # Sorted by length: the last text of a batch sets its padded width.
            while (
                stop < len(order)
                and stop - start < batch_size
                and (stop - start + 1) * len(encodings[order[stop]].ids) <= budget
            ):
                stop += 1
            chunk = order[start:stop]
            start = stop
            width = len(encodings[chunk[-1]].ids)
            ids = np.zeros((len(chunk), width), dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.int64)
            types = np.zeros((len(chunk), width), dtype=np.int64)
            for row, i in enumerate(chunk):
                e = encodings[i]
                n = len(e.ids)
                ids[row, :n] = e.ids
                mask[row, :n] = e.attention_mask
                types[row, :n] = e.type_ids
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            out[chunk] = self.session.run(None, feeds)[0]
        return out


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    export(sys.argv[1], Path(sys.argv[2]))
