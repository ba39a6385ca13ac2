"""The processor's settings (env prefix ``LLMLOOP_``, e.g. ``LLMLOOP_PROCESSOR_EMBED=false``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import orjson
from pydantic import Field

from llmloop.settings import Settings


class ProcessorSettings(Settings):
    """Enrichment, embeddings and windowed statistics. Defaults work on a laptop."""

    processor_embed: bool = Field(
        default=True, description="Embed prompts and completions (all-MiniLM-L6-v2)."
    )
    processor_embed_model: str = Field(
        default="",
        description="A sentence-transformers model directory; default: the packaged one.",
    )
    processor_embed_sample_rate: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="Fraction of completions embedded by default; with the adaptive "
        "sampler, the highest rate it may choose.",
    )
    processor_embed_sample_rates: dict[str, float] = Field(
        default_factory=dict,
        description='Per "project/model" or "model" rates (ceilings when adaptive), '
        'JSON: {"gpt-4o": 0.1}.',
    )
    # Issue 18: embeddings are a sample sized by need and capacity, never a backlog
    # that holds back the scalar features.
    processor_embed_adaptive: bool = Field(
        default=True,
        description="Size the embedding sample from the measured embedding throughput "
        "(false: the fixed rates above).",
    )
    processor_embed_target_per_window: int = Field(
        default=200,
        ge=1,
        description="Embedded completions wanted per (project, model, prompt version) "
        "and statistics window when traffic allows.",
    )
    processor_embed_capacity_hint: float = Field(
        default=20.0, gt=0, description="Completions/s assumed embeddable before measured."
    )
    processor_embed_headroom: float = Field(
        default=0.7,
        gt=0,
        le=1,
        description="Share of the measured embedding throughput the sample may use.",
    )
    processor_embed_backend: Literal["onnx-int8", "torch"] = Field(
        default="onnx-int8",
        description="onnx-int8: the packaged model exported locally to ONNX Runtime, int8 "
        "per channel (faster, cosine >= 0.98 to fp32); torch: sentence-transformers fp32.",
    )
    processor_embed_max_tokens: int = Field(
        default=256, ge=8, le=512, description="Token budget: longer texts are truncated."
    )
    processor_embed_threads: int = Field(
        default=1,
        ge=1,
        description="Threads the embedding model may use: its bounded share of the CPU.",
    )
    processor_embed_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="Niceness added to the embedding child process (lower priority "
        "than the API and the sink).",
    )
    processor_embed_cache_dir: str = Field(
        default="",
        description="Where the ONNX export is cached; default ~/.cache/llmloop/onnx.",
    )
    processor_embed_in_child: bool = Field(
        default=True,
        description="Run the model in a child process, so its import and compute never "
        "hold the GIL of the process that serves the API and the sink.",
    )
    processor_enrich_batch_size: int = Field(
        default=1_000,
        gt=0,
        description="Completions per enrichment batch: one duplicate look-up and one "
        "insert each, so larger batches keep up with more traffic.",
    )
    processor_features_in_child: bool = Field(
        default=True,
        description="Compute sentiment, toxicity, refusal, PII and demographic features in a "
        "worker process, so they use another core than the API and the sink (issue 18).",
    )
    processor_embed_batch_size: int = Field(default=32, gt=0)
    processor_embed_cache_size: int = Field(default=50_000, ge=0)
    processor_prices: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description="USD per 1M (input, output) tokens, merged over the defaults, JSON: "
        '{"my-model": [0.5, 1.5]}.',
    )
    processor_prices_file: Path | None = Field(
        default=None, description="A JSON file of prices in the same form, merged likewise."
    )
    processor_stats_interval_s: float = Field(
        default=60.0, gt=0, description="How often windowed statistics are computed."
    )
    processor_stats_window_s: float = Field(
        default=300.0, gt=0, description="Length of the current window the statistics cover."
    )
    processor_stats_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Keys computed at once within one replica (threads: numpy and the "
        "store release the GIL); replicas split the keys between them (issue 16). One by "
        "default: whylogs profiling is serialised and a 2-core laptop gains little.",
    )
    processor_reference_size: int = Field(
        # 2,000 (the sample cap): a 10% topic shift at 1,000 per window is found in 100%
        # of windows against 2,000 reference rows, 75% against 1,000 (bench/soundness.py).
        default=2_000,
        ge=10,
        description="Reference = the first N events unless a baseline is pinned.",
    )
    processor_sample_cap: int = Field(
        default=2_000, ge=10, description="Most events per window that drift is computed on."
    )
    processor_min_samples: int = Field(
        default=30, ge=2, description="Windows with fewer events produce no statistics."
    )
    processor_reference_mode: Literal["first_n", "rolling"] = Field(
        default="first_n",
        description="Without a pinned baseline: the first N events, or a rolling "
        "reference (the window's hours, reference_offset earlier).",
    )
    processor_reference_offset_s: float = Field(
        default=7 * 86_400.0,
        gt=0,
        description="Rolling reference: how far back (a week: the same hours last week).",
    )
    processor_reference_span_s: float = Field(
        default=3_600.0, gt=0, description="Rolling reference: its length, ending offset ago."
    )
    processor_permutations: int = Field(default=200, ge=20, le=10_000)
    processor_max_permutations: int = Field(
        default=2_000,
        ge=20,
        le=100_000,
        description="Permutations for a window whose first ones give p <= 0.05, so that "
        "real drift reaches the p-values a multiplicity correction asks for.",
    )
    processor_near_duplicate: float = Field(
        default=0.97,
        gt=0,
        le=1.0,
        description="Cosine above which two rows of a window count once in drift tests.",
    )
    processor_feedback_settle_s: float = Field(
        default=600.0,
        ge=0,
        description="Feedback metrics (rates, negative-feedback bias) describe the window "
        "that ended this long ago, so that feedback on its completions had time to arrive.",
    )
    processor_canary_lookback_s: float = Field(
        default=7 * 86400.0,
        ge=0,
        description="Canary comparisons (canary_outcome_difference) cover the completions of "
        "this span before the settled window's end, cumulatively; 0 turns them off.",
    )
    processor_canary_min_samples: int = Field(
        default=30, ge=2, description="Observations each version needs before it is compared."
    )
    processor_profiles: bool = Field(
        default=True, description="Keep a whylogs profile of each window's scalar features."
    )
    # The faust worker (distributed runtime). Its app id is its consumer group.
    processor_faust_app_id: str = Field(default="llmloop-processor")
    processor_faust_session_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Consumer-group session; a dead worker's partitions "
        "move after this long (joins take about half).",
    )
    processor_faust_heartbeat_s: float = Field(default=3.0, gt=0)
    processor_faust_partitions: int = Field(default=6, gt=0)

    def price_table(self) -> dict[str, tuple[float, float]]:
        """Default prices, overridden by the file, overridden by the inline setting."""
        from llmloop_processor.enrichment import DEFAULT_PRICES

        table = dict(DEFAULT_PRICES)
        if self.processor_prices_file is not None:
            raw = orjson.loads(self.processor_prices_file.read_bytes())
            table.update({k: (float(v[0]), float(v[1])) for k, v in raw.items()})
        table.update(self.processor_prices)
        return table
