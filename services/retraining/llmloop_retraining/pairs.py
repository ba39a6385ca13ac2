"""Preference pairs: what users preferred, as (prompt, chosen, rejected).

Plain functions from completions and feedback to pairs. The stateful join that
finds the completions a feedback event is about lives in ``join.py``; these
functions hold the rules, so they are tested list in, list out.

Three sources:

* ``preference``: explicit pairwise feedback, ``chosen_id`` over ``rejected_id``;
* ``correction``: the user's corrected text is chosen, the original completion rejected;
* ``thumbs``: a thumbs-up and a thumbs-down completion of the same model for the
  same prompt (exact after normalisation) or a near-duplicate one (embedding
  cosine above a threshold, see ``join.py``).
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
import orjson

from llmloop.events import CompletionLogged

Source = Literal["preference", "correction", "thumbs"]
Prompt = str | list[dict[str, Any]]


def normalize(text: str) -> str:
    """The form two prompts must share to count as the same: NFKC, case-folded, one space."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def unit_vector(codes: Any) -> np.ndarray:
    """A stored embedding (the processor's Int8 codes, or floats) as a float32 unit vector."""
    vector = np.asarray(codes, dtype=np.float32)
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


@dataclass(frozen=True)
class Completion:
    """A completion that feedback named, with what the processor derived from it:
    ``toxicity`` of the answer (None: not scored, e.g. an event that never went through
    the processor) and the prompt's unit embedding when the processor sampled it."""

    id: str
    project_id: str
    model: str
    prompt: Prompt
    completion: str
    timestamp: datetime
    toxicity: float | None = None
    prompt_vector: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def prompt_text(self) -> str:
        if isinstance(self.prompt, str):
            return self.prompt
        return "\n".join(f"{m['role']}: {m['content']}" for m in self.prompt)

    @property
    def prompt_key(self) -> str:
        return normalize(self.prompt_text)

    @classmethod
    def from_event(cls, event: CompletionLogged) -> Completion:
        prompt: Prompt = (
            event.prompt
            if isinstance(event.prompt, str)
            else [m.model_dump(exclude_none=True) for m in event.prompt]
        )
        return cls(
            id=str(event.event_id),
            project_id=event.project_id or "",
            model=event.model,
            prompt=prompt,
            completion=event.completion,
            timestamp=event.timestamp,
        )


@dataclass(frozen=True)
class Pair:
    """One preference pair with where it came from."""

    project_id: str
    model: str
    source: Source
    prompt: Prompt
    chosen: str
    rejected: str
    source_event_ids: tuple[str, ...]
    created_at: datetime
    chosen_id: str = ""
    rejected_id: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    # The processor's toxicity of the chosen answer; None for a user's correction, which
    # the filter scores with the same model.
    chosen_toxicity: float | None = field(default=None, compare=False)

    @property
    def pair_id(self) -> str:
        """Content address: the same (model, prompt, chosen, rejected) is one pair, whatever
        feedback produced it, so duplicates from several sources count once."""
        prompt = self.prompt if isinstance(self.prompt, str) else orjson.dumps(self.prompt).decode()
        key = "\x1f".join(
            [self.project_id, self.model, normalize(prompt), self.chosen, self.rejected]
        )
        return hashlib.sha256(key.encode()).hexdigest()[:24]

    def to_dict(self) -> dict[str, Any]:
        return {
            "pair_id": self.pair_id,
            "project_id": self.project_id,
            "model": self.model,
            "source": self.source,
            "prompt": self.prompt,
            "chosen": self.chosen,
            "rejected": self.rejected,
            "chosen_id": self.chosen_id,
            "rejected_id": self.rejected_id,
            "source_event_ids": list(self.source_event_ids),
            "created_at": self.created_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pair:
        return cls(
            project_id=data["project_id"],
            model=data["model"],
            source=data["source"],
            prompt=data["prompt"],
            chosen=data["chosen"],
            rejected=data["rejected"],
            chosen_id=data.get("chosen_id", ""),
            rejected_id=data.get("rejected_id", ""),
            source_event_ids=tuple(data["source_event_ids"]),
            created_at=datetime.fromisoformat(data["created_at"]),
        )


def from_preference(
    chosen: Completion, rejected: Completion, feedback_id: str, at: datetime
) -> Pair | str:
    """The pair an explicit choice makes, or why it makes none."""
    if chosen.model != rejected.model:
        return "model_mismatch"
    if chosen.prompt_key != rejected.prompt_key:
        return "prompt_mismatch"
    return Pair(
        project_id=chosen.project_id,
        model=chosen.model,
        source="preference",
        prompt=chosen.prompt,
        chosen=chosen.completion,
        rejected=rejected.completion,
        chosen_id=chosen.id,
        rejected_id=rejected.id,
        source_event_ids=(feedback_id, chosen.id, rejected.id),
        created_at=at,
        chosen_toxicity=chosen.toxicity,
    )


def from_correction(original: Completion, correction: str, feedback_id: str, at: datetime) -> Pair:
    """The user's text is what the model should have said; the original is what it did say."""
    return Pair(
        project_id=original.project_id,
        model=original.model,
        source="correction",
        prompt=original.prompt,
        chosen=correction,
        rejected=original.completion,
        chosen_id="",
        rejected_id=original.id,
        source_event_ids=(feedback_id, original.id),
        created_at=at,
    )


def from_thumbs(
    up: Completion, down: Completion, feedback_ids: tuple[str, str], at: datetime
) -> Pair | str:
    """A thumbs-up completion over a thumbs-down one; the prompt is the liked one's."""
    if up.model != down.model:
        return "model_mismatch"
    if up.id == down.id:
        return "same_completion"
    return Pair(
        project_id=up.project_id,
        model=up.model,
        source="thumbs",
        prompt=up.prompt,
        chosen=up.completion,
        rejected=down.completion,
        chosen_id=up.id,
        rejected_id=down.id,
        source_event_ids=(*feedback_ids, up.id, down.id),
        created_at=at,
        chosen_toxicity=up.toxicity,
    )
