"""The DPO job: train a policy on a dataset version with TRL, score the held-out pairs.

Run as its own process (``python -m llmloop_retraining.jobs.dpo --spec spec.json``)
by the local launcher, or as the container command of a Kubernetes Job
(``accelerate launch -m llmloop_retraining.jobs.dpo`` on multi-GPU nodes). This is
the only module that imports torch, transformers and TRL, so the retraining
service itself starts on a machine without them.

Protocol with the launcher: one JSON object per stdout line
(``{"type": "progress", "step": 3, "total": 40, "loss": 0.61}``, then
``{"type": "done", ...}``); everything else (library logs) goes to stderr. The
output directory receives the model, ``metrics.json`` (loss curve, throughput),
``eval_logps.json`` (per held-out pair log-probabilities under the policy and
the base) and ``eval_generations.json`` (greedy answers of base and policy to
the held-out prompts and to every benchmark's, with their references), from
which the service's evaluation gate computes its verdict without torch.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

# A base model named "tiny:<seed>" is built from a config with random weights and a
# tokenizer trained on the dataset's own text: real training, nothing downloaded.
TINY_PREFIX = "tiny:"


# The protocol stream: the real stdout. ``main`` points sys.stdout at stderr so that
# whatever the libraries print never mixes with protocol lines.
_protocol = sys.stdout


def emit(kind: str, **fields: Any) -> None:
    """One protocol line, flushed: the launcher turns it into a retrain event.

    Under ``accelerate launch`` every GPU runs a copy; only rank 0 speaks.
    """
    if os.environ.get("RANK", "0") != "0":
        return
    _protocol.write(json.dumps({"type": kind, **fields}) + "\n")
    _protocol.flush()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _texts(rows: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for row in rows:
        for key in ("prompt", "chosen", "rejected"):
            value = row[key]
            out.append(value if isinstance(value, str) else " ".join(m["content"] for m in value))
    return out


def build_tiny(texts: list[str], seed: int, size: str = "tiny") -> tuple[Any, Any]:
    """A small Llama from a config and a byte-level BPE tokenizer trained on ``texts``.

    ``size``: "tiny" (~0.1M parameters, CPU tests), "mini" (~7M, CPU benchmark), "small"
    (~350M) or "1b" (~0.9B), the last two for the GPU benchmark (bench/dpo.py).
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    vocab = 512 if size == "tiny" else 8192
    tok.train_from_iterator(
        texts, trainers.BpeTrainer(vocab_size=vocab, special_tokens=specials, show_progress=False)
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )
    torch.manual_seed(seed)
    dims = SIZES[size]
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **dims,
    )
    return LlamaForCausalLM(config), tokenizer


SIZES: dict[str, dict[str, int]] = {
    "tiny": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
    },
    "mini": {
        "hidden_size": 256,
        "intermediate_size": 688,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
    },
    "small": {
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 20,
        "num_attention_heads": 16,
    },
    "1b": {
        "hidden_size": 2048,
        "intermediate_size": 5632,
        "num_hidden_layers": 16,
        "num_attention_heads": 16,
    },
}


# For base models without one (the tiny model, most non-instruct checkpoints): chat
# prompts are rendered as "role: content" lines, and TRL needs some template to do it.
PLAIN_CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


def load_base(base_model: str, texts: list[str]) -> tuple[Any, Any]:
    """The base model and its tokenizer: built ("tiny:SEED") or loaded from a local path."""
    if base_model.startswith(TINY_PREFIX):
        model, tokenizer = build_tiny(texts, int(base_model[len(TINY_PREFIX) :] or 0))
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        # Local paths only: a job never downloads (HF_HUB_OFFLINE is set by the launcher).
        tokenizer = AutoTokenizer.from_pretrained(base_model)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(base_model)
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = PLAIN_CHAT_TEMPLATE
    return model, tokenizer


def _as_prompt_text(value: Any) -> str:
    return value if isinstance(value, str) else " ".join(m["content"] for m in value)


def _as_text(value: Any, tokenizer: Any) -> str:
    if isinstance(value, str):
        return value
    return str(tokenizer.apply_chat_template(value, tokenize=False))


def sequence_logps(
    model: Any, tokenizer: Any, rows: list[dict[str, Any]]
) -> dict[str, list[float]]:
    """Summed log-probability of each pair's chosen and rejected response given its prompt."""
    import torch

    model.eval()
    out: dict[str, list[float]] = {"chosen": [], "rejected": []}
    device = next(model.parameters()).device
    with torch.no_grad():
        for row in rows:
            prompt_ids = tokenizer(_as_text(row["prompt"], tokenizer), add_special_tokens=False)[
                "input_ids"
            ]
            for side in ("chosen", "rejected"):
                response_ids = tokenizer(_as_text(row[side], tokenizer), add_special_tokens=False)[
                    "input_ids"
                ] + [tokenizer.eos_token_id]
                ids = torch.tensor([prompt_ids + response_ids], device=device)
                logits = model(input_ids=ids).logits[0, :-1].float()
                logp = torch.log_softmax(logits, dim=-1)
                targets = ids[0, 1:]
                token_logps = logp.gather(1, targets[:, None])[:, 0]
                out[side].append(float(token_logps[len(prompt_ids) - 1 :].sum()))
    return out


def _generation_prompt(value: Any, tokenizer: Any) -> str:
    if isinstance(value, str):
        return value
    return str(tokenizer.apply_chat_template(value, tokenize=False, add_generation_prompt=True))


def generate(
    model: Any, tokenizer: Any, prompts: list[Any], *, max_new_tokens: int, batch_size: int = 16
) -> list[str]:
    """Greedy answers of ``model`` to ``prompts``, at most ``max_new_tokens`` tokens each.

    Greedy: the gate compares two models, and sampling noise would blur the comparison.
    Batches are left-padded so that every answer starts right after its prompt.
    """
    import torch

    model.eval()
    device = next(model.parameters()).device
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    out: list[str] = []
    try:
        with torch.no_grad():
            for i in range(0, len(prompts), batch_size):
                texts = [_generation_prompt(p, tokenizer) for p in prompts[i : i + batch_size]]
                batch = tokenizer(
                    texts, return_tensors="pt", padding=True, add_special_tokens=False
                ).to(device)
                ids = model.generate(
                    **batch,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=tokenizer.eos_token_id,
                )
                answers = ids[:, batch["input_ids"].shape[1] :]
                out += [
                    t.strip() for t in tokenizer.batch_decode(answers, skip_special_tokens=True)
                ]
    finally:
        tokenizer.padding_side = side
    return out


def _generation_sets(
    spec: dict[str, Any], eval_rows: list[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """What to answer: the held-out prompts, then each benchmark's (bounded in number)."""
    limit = int(spec.get("eval_max_prompts", 500))
    sets: dict[str, dict[str, Any]] = {
        "heldout": {
            "prompts": [r["prompt"] for r in eval_rows[:limit]],
            "references": [[r["chosen"]] for r in eval_rows[:limit]],
        }
    }
    for bench in spec.get("benchmarks", []):
        tasks = read_jsonl(Path(bench["path"]) / "tasks.jsonl")[:limit]
        sets[f"bench.{bench['name']}"] = {
            "version": bench["version"],
            "prompts": [t["prompt"] for t in tasks],
            "references": [t["references"] for t in tasks],
        }
    return sets


def _answer_all(
    model: Any, tokenizer: Any, sets: dict[str, dict[str, Any]], max_new_tokens: int
) -> dict[str, list[str]]:
    return {
        name: generate(model, tokenizer, s["prompts"], max_new_tokens=max_new_tokens)
        for name, s in sets.items()
    }


def use_fused_kernels(spec: dict[str, Any]) -> bool:
    """Liger's fused kernels (RMSNorm, RoPE, SwiGLU): on request, or "auto" on a GPU with
    ``liger_kernel`` installed (it needs Triton). TRL keeps its own fused LM head."""
    import importlib.util

    import torch

    wanted = spec.get("use_liger_kernel", spec.get("fused_kernels", "auto"))
    if wanted == "auto":
        return torch.cuda.is_available() and importlib.util.find_spec("liger_kernel") is not None
    return bool(wanted)


def train(spec: dict[str, Any]) -> dict[str, Any]:
    """Train, save the model, score held-out pairs; returns the metrics written to disk."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    import torch
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    dataset_dir, output_dir = Path(spec["dataset_dir"]), Path(spec["output_dir"])
    output_dir.mkdir(parents=True, exist_ok=True)
    train_rows = read_jsonl(dataset_dir / "train.jsonl")
    eval_rows = read_jsonl(dataset_dir / "eval.jsonl")
    if not train_rows:
        raise SystemExit(f"{dataset_dir / 'train.jsonl'} has no pairs")
    sets = _generation_sets(spec, eval_rows) if spec.get("eval_generate", True) else {}
    # The tiny tokenizer also learns the benchmark prompts' text (the tiny model only).
    bench_texts = [
        _as_prompt_text(p) for n, s in sets.items() if n != "heldout" for p in s["prompts"]
    ]
    model, tokenizer = load_base(spec["base_model"], _texts(train_rows + eval_rows) + bench_texts)
    if spec.get("lora"):
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model, LoraConfig(r=int(spec.get("lora_r", 16)), task_type="CAUSAL_LM")
        )
    reference = None if spec.get("lora") else copy.deepcopy(model)
    base_logps = sequence_logps(reference or model, tokenizer, eval_rows)
    generate_answers = bool(sets)
    max_new_tokens = int(spec.get("eval_max_new_tokens", 64))
    base_answers = _answer_all(reference or model, tokenizer, sets, max_new_tokens)

    from datasets import Dataset

    from llmloop_retraining.datasets import export_rows

    # TRL wants one form per dataset: conversational as soon as any prompt is a chat.
    chat = any(not isinstance(r["prompt"], str) for r in train_rows)
    train_set = Dataset.from_list(list(export_rows(train_rows, "trl-chat" if chat else "trl")))
    max_steps = int(spec.get("max_steps", 60))
    config = DPOConfig(
        output_dir=str(output_dir / "trainer"),
        per_device_train_batch_size=int(spec.get("batch_size", 16)),
        max_steps=max_steps,
        learning_rate=float(spec.get("learning_rate", 5e-4)),
        beta=float(spec.get("beta", 0.1)),
        # sft_weight > 0 adds the chosen answers' NLL to the DPO loss (RPO, Pang et al. 2024):
        # DPO alone may lower both answers' likelihood, and greedy answers with them.
        loss_type=["sigmoid", "sft"] if spec.get("sft_weight") else ["sigmoid"],
        loss_weights=[1.0, float(spec["sft_weight"])] if spec.get("sft_weight") else None,
        max_length=int(spec.get("max_length", 256)),
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        bf16=bool(spec.get("bf16", False)),
        gradient_checkpointing=False,
        precompute_ref_log_probs=bool(spec.get("precompute_ref_log_probs", False)),
        use_liger_kernel=use_fused_kernels(spec),
        seed=int(spec.get("seed", 0)),
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=True,
    )
    losses: list[float] = []

    class Progress(TrainerCallback):  # type: ignore[misc]
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))
                emit("progress", step=state.global_step, total=max_steps, loss=float(logs["loss"]))

    trainer = DPOTrainer(
        model=model,
        ref_model=reference,
        args=config,
        train_dataset=train_set,
        processing_class=tokenizer,
        callbacks=[Progress()],
    )
    if spec.get("padding_free", False):
        from llmloop_retraining.jobs.packing import make_padding_free

        # packed_row_tokens: None = rows of the batch's longest sequence; 0 = one row.
        make_padding_free(trainer, row_tokens=spec.get("packed_row_tokens"))
    started = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - started
    trained = trainer.model
    policy_logps = sequence_logps(trained, tokenizer, eval_rows)
    policy_answers = _answer_all(trained, tokenizer, sets, max_new_tokens)
    model_dir = output_dir / "model"
    trained.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    metrics = {
        "train_loss": float(result.training_loss),
        "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
        "losses": losses,
        "steps": max_steps,
        "train_seconds": seconds,
        "train_pairs": len(train_rows),
        "eval_pairs": len(eval_rows),
        "beta": config.beta,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "padding_free": bool(spec.get("padding_free", False)),
    }
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (output_dir / "eval_logps.json").write_text(
        json.dumps({"beta": config.beta, "policy": policy_logps, "base": base_logps})
    )
    if generate_answers:
        generations = {
            name: {
                **{k: v for k, v in s.items() if k != "prompts"},
                "base": base_answers[name],
                "policy": policy_answers[name],
                "max_new_tokens": max_new_tokens,
            }
            for name, s in sets.items()
        }
        (output_dir / "eval_generations.json").write_text(
            json.dumps(generations, ensure_ascii=False)
        )
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m llmloop_retraining.jobs.dpo",
        description="Train a DPO policy on a dataset version (train.jsonl / eval.jsonl) and write "
        "the model, metrics.json and eval_logps.json to the output directory.",
    )
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument("--spec", type=Path, help="the job spec, a JSON file")
    given.add_argument("--spec-json", help="the job spec as JSON text (Kubernetes Job args)")
    args = parser.parse_args(argv)
    global _protocol
    _protocol, sys.stdout = sys.stdout, sys.stderr
    spec = json.loads(args.spec.read_text() if args.spec else args.spec_json)
    try:
        metrics = train(spec)
    except Exception as exc:
        emit("failed", message=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    emit("done", output_dir=spec["output_dir"], final_loss=metrics["final_loss"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
