"""``llmloop retraining | retrain | datasets | models``: the retraining service and its records.

Heavy imports stay inside the command functions, so ``llmloop --help`` answers at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from llmloop.cliutil import CliError, add_broker_option, add_log_option, add_store_options

EXPORT_FORMATS = ("trl", "trl-chat", "openai")


def _settings(args: argparse.Namespace) -> Any:
    from llmloop.cliutil import settings_from
    from llmloop_retraining.config import RetrainingSettings

    settings = settings_from(args, RetrainingSettings)
    if getattr(args, "policy", None) is not None:
        settings = settings.model_copy(update={"retrain_policy_file": args.policy})
    return settings


# --- llmloop retraining ------------------------------------------------------------------


def cmd_retraining(args: argparse.Namespace) -> int:
    from llmloop.logs import setup_logging
    from llmloop.service import named, serve

    settings = _settings(args)
    setup_logging(settings.log_level, settings.log_format)
    asyncio.run(serve(named("retraining"), settings))
    return 0


# --- llmloop retrain ---------------------------------------------------------------------


class _Bar:
    """A one-line progress bar on stderr (no dependency; redraws in place)."""

    def __init__(self, width: int = 30) -> None:
        self.width = width

    def draw(self, fraction: float, text: str) -> None:
        done = int(self.width * min(max(fraction, 0.0), 1.0))
        bar = "#" * done + "-" * (self.width - done)
        sys.stderr.write(f"\r[{bar}] {fraction:4.0%} {text[:60]:<60}")
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")


def cmd_retrain(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from llmloop_retraining import benchmarks
    from llmloop_retraining.datasets import DatasetError
    from llmloop_retraining.join import PairJoin
    from llmloop_retraining.launcher import JobSpec
    from llmloop_retraining.ledger import JobLedger
    from llmloop_retraining.pipeline import cut_dataset
    from llmloop_retraining.policy import ModelState, PolicyBook, decide
    from llmloop_retraining.service import launcher_for

    settings = _settings(args)
    if args.launcher:
        settings = settings.model_copy(update={"retrain_launcher": args.launcher})
    policy = PolicyBook.load(settings.retrain_policy_file).for_model(args.model)
    if args.launcher:
        policy = policy.model_copy(update={"launcher": args.launcher})
    join, ledger = PairJoin(settings.state_path), JobLedger(settings.state_path)
    try:
        total = join.count(args.model)
        if total == 0:
            known = ", ".join(join.models()) or "none yet"
            raise CliError(
                f"no preference pairs for model {args.model!r} in {settings.state_path} "
                f"(models with pairs: {known})"
            )
        last = ledger.last(args.model)
        state = ModelState(
            new_pairs=join.count(args.model, after_seq=last.pairs_seq if last else 0),
            total_pairs=total,
            last_job_at=last.started_at if last else None,
            job_running=ledger.running(args.model),
        )
        decision = decide(policy, state, datetime.now(UTC), manual=True)
        launcher = launcher_for(settings, policy)
        if args.dry_run:
            dataset, _ = cut_dataset(settings, join, args.model, write=False)
            counts = dataset.manifest["counts"]
            print(f"# would {'start' if decision.start else 'NOT start'}: {decision.reason}")
            print(
                f"# dataset {dataset.version}: {counts['train']} train / {counts['eval']} "
                f"eval pairs, by source {counts['by_source']}, dropped {counts['dropped']}"
            )
            spec = JobSpec(
                job_id="dry-run",
                model=args.model,
                base_model=policy.base_model or args.model,
                dataset_version=dataset.version,
                dataset_dir=dataset.path,
                output_dir=settings.models_dir / "dry-run",
                train=dict(policy.train),
                benchmarks=tuple(
                    b.job_entry() for b in benchmarks.for_model(settings.datasets_dir, args.model)
                ),
            )
            print(launcher.describe(spec), end="")
            return 0
        if not decision.start:
            raise CliError(f"not retraining {args.model}: {decision.reason}")
        return asyncio.run(_retrain(settings, join, ledger, policy, launcher, args.model))
    except DatasetError as exc:
        raise CliError(str(exc)) from exc
    finally:
        join.close()
        ledger.close()


async def _retrain(
    settings: Any, join: Any, ledger: Any, policy: Any, launcher: Any, model: str
) -> int:
    from llmloop.bus import open_bus
    from llmloop_retraining.pipeline import run_retraining
    from llmloop_retraining.service import publisher

    bus = open_bus(settings.bus_url)
    await bus.start()
    bar = _Bar()

    async def show(update: Any) -> None:
        loss = update.metrics.get("loss")
        text = update.message or (
            f"step {update.metrics.get('step', 0):.0f}"
            + (f"  loss {loss:.4f}" if loss is not None else "")
        )
        bar.draw(update.progress or 0.0, text)

    try:
        outcome = await run_retraining(
            settings=settings,
            join=join,
            ledger=ledger,
            policy=policy,
            launcher=launcher,
            model=model,
            reason="requested by hand (llmloop retrain)",
            publish=publisher(bus),
            on_update=show,
        )
    finally:
        bar.close()
        await bus.close()
    print(f"job {outcome.job_id}: {outcome.stage} (dataset {outcome.dataset.version})")
    if outcome.stage != "succeeded" or outcome.gate is None:
        raise CliError(f"job {outcome.job_id} failed: {outcome.message}")
    verdict = "PASSED" if outcome.gate.passed else "FAILED"
    print(f"model version {outcome.model_version}: gate {verdict}")
    for reason in outcome.gate.reasons:
        print(f"  {reason}")
    return 0


# --- llmloop datasets ----------------------------------------------------------------------


def cmd_datasets_list(args: argparse.Namespace) -> int:
    from llmloop_retraining import datasets

    settings = _settings(args)
    found = datasets.versions(settings.datasets_dir, args.model)
    if not found:
        print(f"no dataset versions under {settings.datasets_dir}", file=sys.stderr)
        return 0
    print(f"{'VERSION':<40} {'MODEL':<24} {'TRAIN':>6} {'EVAL':>6}  CREATED")
    for v in found:
        c = v.manifest["counts"]
        print(
            f"{v.version:<40} {v.model:<24} {c['train']:>6} {c['eval']:>6}  "
            f"{v.manifest['created_at'][:19]}"
        )
    return 0


def cmd_datasets_show(args: argparse.Namespace) -> int:
    from llmloop_retraining import datasets

    settings = _settings(args)
    try:
        version = datasets.load(settings.datasets_dir, args.version)
    except datasets.DatasetError as exc:
        raise CliError(str(exc)) from exc
    manifest = dict(version.manifest)
    ids = manifest.pop("source_event_ids")
    manifest["source_event_ids"] = f"{len(ids)} ids (see {version.path / 'manifest.json'})"
    manifest["path"] = str(version.path)
    print(json.dumps(manifest, indent=2))
    return 0


def cmd_datasets_export(args: argparse.Namespace) -> int:
    from llmloop_retraining import datasets

    settings = _settings(args)
    try:
        version = datasets.load(settings.datasets_dir, args.version)
    except datasets.DatasetError as exc:
        raise CliError(str(exc)) from exc
    splits = ["train", "eval"] if args.split == "all" else [args.split]
    rows = [r for s in splits for r in version.rows(s)]
    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout  # noqa: SIM115
    try:
        for row in datasets.export_rows(rows, args.format):
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    finally:
        if args.out:
            out.close()
            print(f"wrote {len(rows)} pairs ({args.format}) to {args.out}", file=sys.stderr)
    return 0


def cmd_datasets_add_benchmark(args: argparse.Namespace) -> int:
    from llmloop_retraining import benchmarks, datasets

    settings = _settings(args)
    try:
        bench = benchmarks.add(settings.datasets_dir, args.name, args.file, model=args.model)
    except datasets.DatasetError as exc:
        raise CliError(str(exc)) from exc
    scope = f"model {args.model}" if args.model else "every model"
    print(
        f"benchmark {bench.name} version {bench.version}: {bench.manifest['tasks']} tasks, "
        f"scored at every gate run of {scope}"
    )
    return 0


def cmd_datasets_benchmarks(args: argparse.Namespace) -> int:
    from llmloop_retraining import benchmarks

    found = benchmarks.versions(_settings(args).datasets_dir, args.name)
    if not found:
        print("no benchmarks registered (llmloop datasets add-benchmark)", file=sys.stderr)
        return 0
    print(f"{'VERSION':<40} {'NAME':<20} {'MODEL':<20} {'TASKS':>6}  CREATED")
    for b in found:
        m = b.manifest
        print(
            f"{b.version:<40} {b.name:<20} {m.get('model') or '(all)':<20} {m['tasks']:>6}  "
            f"{m['created_at'][:19]}"
        )
    return 0


# --- llmloop models ----------------------------------------------------------------------


def cmd_models_list(args: argparse.Namespace) -> int:
    from llmloop_retraining.registry import fetch_versions

    rows = fetch_versions(_settings(args), model=args.model)
    if not rows:
        print("no model versions registered yet", file=sys.stderr)
        return 0
    print(f"{'VERSION':<48} {'MODEL':<20} {'GATE':<6} {'STATUS':<10} {'ACC':>6}  REGISTERED")
    for r in rows:
        acc = r["metrics"].get("preference_accuracy")
        print(
            f"{r['version']:<48} {r['model']:<20} {'pass' if r['gate_passed'] else 'FAIL':<6} "
            f"{r['status']:<10} {'' if acc is None else f'{acc:.3f}':>6}  "
            f"{str(r['registered_at'])[:19]}"
        )
    return 0


def cmd_models_show(args: argparse.Namespace) -> int:
    from llmloop_retraining.registry import fetch_version

    row = fetch_version(_settings(args), args.version)
    print(json.dumps(row, indent=2, default=str))
    return 0


def cmd_models_promote(args: argparse.Namespace) -> int:
    from llmloop_retraining.registry import fetch_version, promote

    settings = _settings(args)
    row = fetch_version(settings, args.version)
    if not row["gate_passed"] and not args.force:
        reasons = "; ".join(r for r in row["gate_reasons"] if r.startswith("failed")) or "no gate"
        raise CliError(
            f"model version {row['version']} failed its evaluation gate ({reasons}); "
            "not promoting it. Pass --force to promote it anyway."
        )
    asyncio.run(promote(settings, row, forced=not row["gate_passed"]))
    print(
        f"promoted {row['version']} ({row['model']})"
        + (" despite its failed gate (--force)" if not row["gate_passed"] else "")
    )
    return 0


# --- parser ------------------------------------------------------------------------------


def _common(p: argparse.ArgumentParser, *, broker: bool = False, store: bool = False) -> None:
    if store:
        add_store_options(p)
    else:
        p.add_argument("--data-dir", type=Path, help="embedded data dir (default .llmloop)")
    if broker:
        add_broker_option(p)


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "retraining",
        help="run the retraining service alone (distributed runtime)",
        description="Join feedback to completions into preference pairs, cut dataset versions, "
        "and start DPO jobs when a model's policy says so (new pairs, interval, alerts). State "
        "lives in DATA_DIR/retraining; job events go to llmloop.retrain.v1.",
    )
    _common(p, broker=True)
    p.add_argument("--policy", type=Path, metavar="FILE", help="YAML trigger policies per model")
    add_log_option(p)
    p.set_defaults(func=cmd_retraining)

    r = sub.add_parser(
        "retrain",
        help="fine-tune a model on its preference pairs now (DPO)",
        description="Cut a dataset version of every pair of --model, run a DPO job (local "
        "subprocess or Kubernetes Job), evaluate it on the held-out pairs and register the "
        "model version with its gate verdict. --dry-run prints what would run (for "
        "Kubernetes: the Job manifest) and changes nothing.",
        epilog="example: llmloop retrain --model gpt-4o-mini --dry-run --launcher kubernetes",
    )
    r.add_argument("--model", required=True, help="the model whose pairs to train on")
    r.add_argument("--dry-run", action="store_true", help="print the plan and the manifest only")
    r.add_argument("--launcher", choices=["local", "kubernetes"], help="where the job runs")
    r.add_argument("--policy", type=Path, metavar="FILE", help="YAML trigger policies per model")
    _common(r, broker=True)
    r.set_defaults(func=cmd_retrain)

    d = sub.add_parser("datasets", help="preference dataset versions").add_subparsers(
        dest="datasets_command", metavar="COMMAND", required=True
    )
    dl = d.add_parser("list", help="list dataset versions, newest first")
    dl.add_argument("--model", help="only this model's")
    _common(dl)
    dl.set_defaults(func=cmd_datasets_list)
    ds = d.add_parser("show", help="a version's manifest (counts, filters, drops, hash)")
    ds.add_argument("version", help="version id (a unique prefix will do)")
    _common(ds)
    ds.set_defaults(func=cmd_datasets_show)
    de = d.add_parser(
        "export",
        help="write a version as JSONL for TRL or OpenAI fine-tuning",
        description="trl: prompt/chosen/rejected strings; trl-chat: TRL's conversational form; "
        "openai: OpenAI preference fine-tuning (input.messages, preferred_output, "
        "non_preferred_output).",
    )
    de.add_argument("version", help="version id (a unique prefix will do)")
    de.add_argument("--format", "-f", choices=EXPORT_FORMATS, default="trl")
    de.add_argument("--split", choices=["train", "eval", "all"], default="train")
    de.add_argument("--out", "-o", help="file to write (default stdout)")
    _common(de)
    de.set_defaults(func=cmd_datasets_export)
    da = d.add_parser(
        "add-benchmark",
        help="register a benchmark task set (JSONL of prompt and reference)",
        description='Each line: {"prompt": ..., "reference": ...} (or "references": '
        "[...]). Versioned and content-addressed; every gate run answers its prompts with the "
        "base and the fine-tuned model and records ROUGE-L and BLEU as bench.NAME.* metrics "
        "of the model version (gate on them with not_worse_than_base: [bench.NAME.rouge_l]).",
    )
    da.add_argument("name", help="the benchmark's name (letters, digits, . _ -)")
    da.add_argument("file", type=Path, help="the JSONL file")
    da.add_argument("--model", help="score it only for this model (default: every model)")
    _common(da)
    da.set_defaults(func=cmd_datasets_add_benchmark)
    db = d.add_parser("benchmarks", help="list registered benchmark versions, newest first")
    db.add_argument("--name", help="only this benchmark's")
    _common(db)
    db.set_defaults(func=cmd_datasets_benchmarks)

    m = sub.add_parser("models", help="fine-tuned model versions and their gates").add_subparsers(
        dest="models_command", metavar="COMMAND", required=True
    )
    ml = m.add_parser("list", help="registered versions with gate verdict and status")
    ml.add_argument("--model", help="only versions of this base model")
    _common(ml, store=True)
    ml.set_defaults(func=cmd_models_list)
    ms = m.add_parser("show", help="one version's lineage, metrics and gate reasons")
    ms.add_argument("version")
    _common(ms, store=True)
    ms.set_defaults(func=cmd_models_show)
    mp = m.add_parser(
        "promote",
        help="mark a version as the one to serve",
        description="Publishes model_promoted on llmloop.retrain.v1; the processor records it. "
        "A version that failed its evaluation gate is refused unless --force.",
    )
    mp.add_argument("version")
    mp.add_argument("--force", action="store_true", help="promote even if the gate failed")
    _common(mp, store=True, broker=True)
    mp.set_defaults(func=cmd_models_promote)
