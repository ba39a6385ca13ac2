"""The padding-free collator: per-sequence log-probabilities equal the padded path's on the
tiny model, and a DPO run with it follows the padded run's loss curve."""

from __future__ import annotations

import copy
import random

import pytest

torch = pytest.importorskip("torch")
trl_dpo = pytest.importorskip("trl.trainer.dpo_trainer")

from trl.trainer.utils import add_fused_lm_head  # noqa: E402

from llmloop_retraining.jobs.dpo import build_tiny  # noqa: E402
from llmloop_retraining.jobs.packing import PackedPreferenceCollator, pack, pack_forward  # noqa: E402

WORDS = ["glad", "to", "help", "here", "is", "a", "clear", "answer", "with", "steps"]
WORDS += ["go", "away", "not", "my", "problem"]


@pytest.fixture(scope="module")
def tiny():
    rng = random.Random(0)
    texts = [" ".join(rng.choices(WORDS, k=rng.randint(2, 30))) for _ in range(200)]
    return build_tiny(texts, seed=0)


def examples(tokenizer, n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)

    def ids(k: int) -> list[int]:
        return tokenizer(" ".join(rng.choices(WORDS, k=k)), add_special_tokens=False)["input_ids"]

    eos = [tokenizer.eos_token_id]
    return [
        {
            "prompt_ids": ids(rng.randint(1, 12)),
            "chosen_ids": ids(rng.randint(1, 25)) + eos,
            "rejected_ids": ids(rng.randint(1, 25)) + eos,
        }
        for _ in range(n)
    ]


def test_pack_lays_the_real_tokens_end_to_end_with_restarting_positions():
    ids = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0], [4, 0, 0, 0]])
    one_row = pack(ids, (ids != 0).long(), row_tokens=0)
    assert one_row["packed_input_ids"].tolist() == [[5, 6, 7, 8, 9, 4]]
    assert one_row["packed_position_ids"].tolist() == [[0, 1, 2, 0, 1, 0]]
    assert one_row["packed_rows"].tolist() == [0, 0, 0, 1, 1, 2]
    # Default: rows no longer than the longest sequence (3), first fit, longest first;
    # the pad at a row's end continues its last sequence's positions.
    rows = pack(ids, (ids != 0).long(), pad_token_id=0)
    assert rows["packed_input_ids"].tolist() == [[5, 6, 7], [8, 9, 4]]
    assert rows["packed_position_ids"].tolist() == [[0, 1, 2], [0, 1, 0]]
    assert rows["packed_at_row"].tolist() == [0, 0, 0, 1, 1, 1]
    assert rows["packed_at_col"].tolist() == [0, 1, 2, 0, 1, 2]
    ragged = pack(
        torch.tensor([[1, 2, 3], [4, 0, 0]]), torch.tensor([[1, 1, 1], [1, 0, 0]]), row_tokens=5
    )
    assert ragged["packed_input_ids"].tolist() == [[1, 2, 3, 4]]
    two = pack(
        torch.tensor([[1, 2, 3], [4, 5, 0]]), torch.tensor([[1, 1, 1], [1, 1, 0]]), row_tokens=4
    )
    assert two["packed_input_ids"].tolist() == [[1, 2, 3], [4, 5, 0]]
    assert two["packed_position_ids"].tolist() == [[0, 1, 2], [0, 1, 2]]


@pytest.mark.parametrize("row_tokens", [None, 0, 64])
def test_packed_log_probabilities_match_the_padded_path(tiny, row_tokens):
    model, tokenizer = tiny
    model = copy.deepcopy(model).eval()
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "mean_logits", "is_top1"))
    padded = trl_dpo.DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id)
    batch = PackedPreferenceCollator(padded, row_tokens)(examples(tokenizer, 8, seed=1))
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    plain = {k: batch[k] for k in ("input_ids", "attention_mask")}
    reference = model(**plain, labels=labels, fused_lm_head=True, use_cache=False)
    pack_forward(model)
    # Padding matters in this batch: the packed rows hold much less than 16 x longest.
    assert batch["packed_input_ids"].numel() < 0.8 * batch["input_ids"].numel()
    packed = model(
        **{k: v for k, v in batch.items() if k != "completion_mask"},
        labels=labels,
        fused_lm_head=True,
        use_cache=False,
    )
    assert packed.log_probs.shape == reference.log_probs.shape
    torch.testing.assert_close(packed.log_probs, reference.log_probs, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(
        packed.log_probs.sum(1), reference.log_probs.sum(1), atol=1e-4, rtol=1e-5
    )
    torch.testing.assert_close(packed.entropy, reference.entropy, atol=2e-5, rtol=1e-5)
    assert torch.equal(packed.is_top1, reference.is_top1)
    # Without the packed keys the forward is the padded one, unchanged.
    again = model(**plain, labels=labels, fused_lm_head=True, use_cache=False)
    torch.testing.assert_close(again.log_probs, reference.log_probs)


@pytest.mark.slow
def test_a_padding_free_dpo_run_follows_the_padded_loss_curve(tiny, tmp_path, monkeypatch):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from llmloop_retraining.jobs import packing

    unpacked = []
    real_unpack = packing._unpack
    monkeypatch.setattr(packing, "_unpack", lambda *a: unpacked.append(1) or real_unpack(*a))

    rng = random.Random(2)
    rows = [
        {
            "prompt": " ".join(rng.choices(WORDS[:5], k=rng.randint(1, 8))),
            "chosen": " ".join(rng.choices(WORDS[:10], k=rng.randint(2, 20))),
            "rejected": " ".join(rng.choices(WORDS[10:], k=rng.randint(2, 20))),
        }
        for _ in range(64)
    ]
    curves = {}
    for packed in (False, True):
        model, tokenizer = copy.deepcopy(tiny[0]), tiny[1]
        config = DPOConfig(
            output_dir=str(tmp_path / str(packed)),
            per_device_train_batch_size=16,
            max_steps=8,
            learning_rate=5e-4,
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            use_cpu=True,
            seed=0,
            disable_tqdm=True,
        )
        trainer = DPOTrainer(
            model=model,
            ref_model=copy.deepcopy(model),
            args=config,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
        )
        if packed:
            packing.make_padding_free(trainer)
        trainer.train()
        curves[packed] = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert len(curves[True]) == len(curves[False]) == 8
    # The packed run really ran packed: per step, the policy's 5 per-token fields (log_probs,
    # entropy, mean_logits, is_top1, label_mask) and the reference's 2 were unpacked.
    assert len(unpacked) == 8 * 7
    assert curves[False][-1] < curves[False][0] - 0.05  # it learned something
    for a, b in zip(curves[False], curves[True], strict=True):
        assert a == pytest.approx(b, abs=1e-3)
