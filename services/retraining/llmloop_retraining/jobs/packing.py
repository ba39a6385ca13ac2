"""Padding-free (packed) preference batches for TRL's DPOTrainer.

TRL 1.x ignores ``padding_free=True`` since its DPO refactor: every batch is
padded to its longest prompt+answer, so with answers of varied length much of
each forward and backward pass is spent on padding. Here the batch's 2B
sequences (B chosen, then B rejected) are packed end to end into as few rows as
fit (``pack``), with position ids restarting at 0 for each; transformers then confines
attention to each sequence (``masking_utils.find_packed_sequence_indices``: a
block-diagonal causal mask with sdpa / eager / flex attention, variable-length
kernels with flash attention), so every sequence sees exactly what it sees
alone, and no FLOP is spent on padding.

Plugging in without copying TRL's loss code:

* ``PackedPreferenceCollator`` returns TRL's padded batch unchanged (the loss
  and the logged metrics read ``completion_mask`` and ``attention_mask`` in that
  layout) plus the packed row and the map between the two layouts;
* ``pack_forward`` wraps the model's forward (after TRL added its fused LM head):
  given the packed keys, it runs the model on the packed rows and scatters the
  per-token outputs (log-probabilities, entropy, ...) back into the padded
  ``(2B, T-1)`` layout TRL expects. Summed per sequence, they are the same
  log-probabilities the padded path computes (tests/unit/retraining/test_packing.py).

Imports torch: job process only.
"""

from __future__ import annotations

import functools
import types
from dataclasses import dataclass
from typing import Any

import torch

# FusedCausalLMOutput's per-token fields (trl.trainer.utils.add_fused_lm_head).
PER_TOKEN = ("log_probs", "entropy", "log_sum_sq_probs", "mean_logits", "is_top1", "label_mask")
PACKED_KEYS = (
    "packed_input_ids",
    "packed_position_ids",
    "packed_rows",
    "packed_cols",
    "packed_at_row",
    "packed_at_col",
)


def pack(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    pad_token_id: int = 0,
    row_tokens: int | None = None,
) -> dict[str, torch.Tensor]:
    """The packed form of a right-padded batch, and where each real token sits in both.

    Sequences go into rows of at most ``row_tokens`` tokens (first fit, longest first;
    default: the longest sequence, so attention, which a packed row computes over the
    whole row behind a block-diagonal mask unless the kernel is variable-length, costs
    no more than padded; ``0``: one row, for flash attention's variable-length kernel).
    Each row ends in pad tokens whose positions continue the last sequence's, so under
    the causal mask no real token sees them.
    """
    lengths = [int(n) for n in attention_mask.sum(dim=1)]
    capacity = sum(lengths) if row_tokens == 0 else max(max(lengths), row_tokens or 0)
    bins: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        slot = next((b for b, r in enumerate(room) if r >= lengths[i]), None)
        if slot is None:
            bins.append([])
            room.append(capacity)
            slot = len(bins) - 1
        bins[slot].append(i)
        room[slot] -= lengths[i]
    width = capacity - min(room)
    ids = torch.full((len(bins), width), pad_token_id, dtype=input_ids.dtype)
    positions = torch.arange(width).repeat(len(bins), 1)
    at_row = torch.empty(sum(lengths), dtype=torch.long)
    at_col = torch.empty(sum(lengths), dtype=torch.long)
    starts = [0, *torch.tensor(lengths).cumsum(0).tolist()]  # token t of sequence i: starts[i] + t
    for b, members in enumerate(bins):
        col = 0
        for i in members:
            n = lengths[i]
            ids[b, col : col + n] = input_ids[i, :n]
            positions[b, col : col + n] = torch.arange(n)
            at_row[starts[i] : starts[i] + n] = b
            at_col[starts[i] : starts[i] + n] = torch.arange(col, col + n)
            col += n
        positions[b, col:] = torch.arange(n, n + width - col)
    rows = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    cols = torch.cat([torch.arange(n) for n in lengths])
    return {
        "packed_input_ids": ids,
        "packed_position_ids": positions,
        "packed_rows": rows,  # real token t is input_ids[rows[t], cols[t]] ...
        "packed_cols": cols,
        "packed_at_row": at_row,  # ... and packed_input_ids[at_row[t], at_col[t]]
        "packed_at_col": at_col,
    }


@dataclass
class PackedPreferenceCollator:
    """TRL's preference collator, plus the batch packed into rows (``pack``)."""

    inner: Any  # trl.trainer.dpo_trainer.DataCollatorForPreference
    row_tokens: int | None = None

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = dict(self.inner(examples))
        mask = batch["attention_mask"]
        right_padded = torch.arange(mask.size(1))[None] < mask.sum(1, keepdim=True)
        if not torch.equal(mask.bool(), right_padded):
            raise ValueError("packing needs right-padded batches")
        packed = pack(
            batch["input_ids"],
            mask,
            pad_token_id=int(self.inner.pad_token_id),
            row_tokens=self.row_tokens,
        )
        return {**batch, **packed}


def _unpack(
    value: torch.Tensor, packed: dict[str, torch.Tensor], shape: tuple[int, int]
) -> torch.Tensor:
    """Per-token outputs of the packed rows (shifted: width - 1) in the padded layout."""
    rows, cols = packed["packed_rows"], packed["packed_cols"]
    # Shifted position p predicts token p+1: keep the tokens whose next token is in the
    # same sequence; their output goes to (row, col) of the token in the padded layout.
    same = (rows[1:] == rows[:-1]) & (cols[1:] == cols[:-1] + 1)
    t = same.nonzero().squeeze(1)
    out = value.new_zeros(shape)
    out[rows[t], cols[t]] = value[packed["packed_at_row"][t], packed["packed_at_col"][t]]
    return out


def pack_forward(model: Any) -> None:
    """Make ``model(...)`` accept the packed keys of ``PackedPreferenceCollator``'s batches."""
    inner = model.forward

    @functools.wraps(inner)
    def forward(self: Any, *args: Any, **kwargs: Any) -> Any:
        if "packed_input_ids" not in kwargs:
            return inner(*args, **kwargs)
        packed = {k: kwargs.pop(k) for k in PACKED_KEYS}
        padded_ids = kwargs.pop("input_ids")
        kwargs.pop("attention_mask", None)  # None: transformers reads the packing from positions
        labels = kwargs.pop("labels")
        packed_labels = torch.full_like(packed["packed_input_ids"], -100)
        packed_labels[packed["packed_at_row"], packed["packed_at_col"]] = labels[
            packed["packed_rows"], packed["packed_cols"]
        ]
        outputs = inner(
            input_ids=packed["packed_input_ids"],
            position_ids=packed["packed_position_ids"],
            labels=packed_labels,
            **kwargs,
        )
        shape = (padded_ids.size(0), padded_ids.size(1) - 1)
        for name in PER_TOKEN:
            value = getattr(outputs, name, None)
            if value is not None:
                outputs[name] = _unpack(value, packed, shape)
        return outputs

    model.forward = types.MethodType(forward, model)


def make_padding_free(trainer: Any, *, row_tokens: int | None = None) -> None:
    """Switch a constructed ``DPOTrainer`` to packed batches (before ``train()``).

    The collator is wrapped, and the policy's and the reference's forwards are
    patched on top of the fused LM head TRL installed in its constructor.
    """
    from accelerate.utils import is_peft_model

    # Every loss type and metric keeps working: they read the padded completion_mask and
    # the per-token outputs, which the patched forward returns in the padded layout.
    trainer.data_collator = PackedPreferenceCollator(trainer.data_collator, row_tokens)
    policy = trainer.model.get_base_model() if is_peft_model(trainer.model) else trainer.model
    pack_forward(policy)
    if trainer.ref_model is not None:
        pack_forward(trainer.ref_model)
