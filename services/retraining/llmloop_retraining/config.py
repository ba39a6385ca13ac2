"""The retraining service's settings (env prefix ``LLMLOOP_``), and where its files live."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from llmloop.settings import Settings


class RetrainingSettings(Settings):
    """Settings of the retraining service, on top of the shared ones."""

    retrain_policy_file: Path | None = Field(
        default=None,
        description="YAML trigger policies per model (see policy.py); default: built-in policy.",
    )
    retrain_launcher: Literal["local", "kubernetes"] = Field(
        default="local", description="Where jobs run when the policy does not say."
    )
    retrain_replicated: bool = Field(
        default=False,
        description="Two or more replicas: each joins feedback of its events partitions "
        "(completions read from the store), one of them is the controller "
        "(llmloop.retrain.join.v1). Needs a kafka:// bus and a store all replicas reach.",
    )
    retrain_eval_fraction: float = Field(default=0.2, gt=0, lt=1)
    retrain_check_interval_s: float = Field(
        default=60.0, gt=0, description="How often time-based policies are checked."
    )
    retrain_near_duplicates: bool = Field(
        default=False,
        description=(
            "Pair thumbs across near-duplicate prompts, by the prompt embeddings the "
            "processor stored (the completions it sampled for embedding)."
        ),
    )
    retrain_near_duplicate_cosine: float = Field(default=0.92, gt=0, le=1)
    retrain_toxicity_threshold: float = Field(default=0.8, gt=0, le=1)
    retrain_job_image: str = Field(
        default="ghcr.io/llmloop/llmloop-trainer:0.1.0", description="Image of the DPO Job."
    )
    retrain_namespace: str = "llmloop"
    retrain_job_gpus: int = Field(default=1, ge=1, le=16)
    retrain_job_template: Path | None = Field(
        default=None, description="Job template; default: the one shipped in the package."
    )

    @property
    def retraining_dir(self) -> Path:
        return self.data_dir / "retraining"

    @property
    def state_path(self) -> Path:
        """The join's SQLite file: completions awaiting feedback, pairs, job ledger."""
        return self.retraining_dir / "state.db"

    @property
    def datasets_dir(self) -> Path:
        return self.data_dir / "datasets"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"
