"""The processor's commands: ``llmloop processor``, ``llmloop baseline set``, ``llmloop report``.

Heavy imports (chDB, faust, Evidently) happen inside the command functions so
``llmloop --help`` answers at once.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from llmloop.cliutil import (
    CliError,
    add_broker_option,
    add_log_option,
    add_store_options,
    open_store_for_cli,
    settings_from,
)

DT = "DateTime64(3, 'UTC')"


def cmd_processor(args: argparse.Namespace) -> int:
    from llmloop.logs import setup_logging
    from llmloop.store import StoreError
    from llmloop_processor.runtime import serve
    from llmloop_processor.settings import ProcessorSettings

    settings = settings_from(args, ProcessorSettings)
    if args.faust:
        _exec_faust_worker(settings)
    setup_logging(settings.log_level, settings.log_format)
    try:
        asyncio.run(serve(settings))
    except StoreError as exc:
        raise CliError(str(exc)) from exc
    return 0


def _exec_faust_worker(settings: Any) -> None:
    """Replace this process with ``faust -A llmloop_processor.app worker``, configured
    by the same settings (the app reads them from the environment when it starts)."""
    import os

    from llmloop.bus.kafka import KafkaOptions
    from llmloop.redaction import redact_url

    if not settings.bus_url.startswith("kafka://"):
        raise CliError(
            f"--faust needs a Kafka broker (--broker kafka://HOST:PORT), "
            f"not {redact_url(settings.bus_url)!r}"
        )
    try:
        KafkaOptions.from_url(settings.bus_url)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    os.environ.update(
        LLMLOOP_BUS_URL=settings.bus_url,
        LLMLOOP_STORE_URL=settings.store_url,
        LLMLOOP_DATA_DIR=str(settings.data_dir),
        LLMLOOP_LOG_LEVEL=settings.log_level,
    )
    argv = [sys.executable, "-m", "faust", "-A", "llmloop_processor.app", "worker"]
    os.execv(sys.executable, [*argv, "--loglevel", settings.log_level.lower()])


def _when(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO date/time (e.g. 2026-05-01 or 2026-05-01T12:00)"
        ) from exc
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _window(args: argparse.Namespace) -> tuple[datetime, datetime]:
    end = args.to or datetime.now(UTC)
    start = args.from_ or end - timedelta(hours=24)
    if start >= end:
        raise CliError(f"--from {start.isoformat()} is not before --to {end.isoformat()}")
    return start, end


def _project(store: Any, args: argparse.Namespace, start: datetime, end: datetime) -> str:
    """The project the model's completions in the window belong to (--project, or the only one)."""
    found = store.query(
        "SELECT project_id, count() FROM completion_enrichments WHERE model = {model:String} "
        f"AND ts >= {{start:{DT}}} AND ts < {{end:{DT}}} "
        + ("AND project_id = {project:String} " if args.project else "")
        + "GROUP BY project_id ORDER BY project_id",
        {"model": args.model, "start": start, "end": end, "project": args.project or ""},
    ).rows
    if not found:
        raise CliError(
            f"no enriched completions of model {args.model!r}"
            + (f" in project {args.project!r}" if args.project else "")
            + f" between {start.isoformat()} and {end.isoformat()}"
        )
    if len(found) > 1:
        names = ", ".join(str(r[0]) for r in found)
        raise CliError(
            f"model {args.model!r} is used by several projects ({names}): pass --project"
        )
    return str(found[0][0])


def cmd_baseline_set(args: argparse.Namespace) -> int:
    start, end = _window(args)
    settings = settings_from(args)
    store = open_store_for_cli(settings)
    try:
        project = _project(store, args, start, end)
        count = store.query(
            "SELECT uniqExact(event_id) FROM completion_enrichments WHERE project_id = {p:String} "
            "AND model = {m:String} AND (prompt_version = {v:String} OR {v:String} = '') "
            f"AND ts >= {{start:{DT}}} AND ts < {{end:{DT}}}",
            {"p": project, "m": args.model, "v": args.prompt_version, "start": start, "end": end},
        ).scalar()
        store.command(
            "INSERT INTO drift_baselines (project_id, model, prompt_version, window_start, "
            "window_end, note, set_at) VALUES ({p:String}, {m:String}, {v:String}, "
            f"{{start:{DT}}}, {{end:{DT}}}, {{note:String}}, now64(3))",
            {
                "p": project,
                "m": args.model,
                "v": args.prompt_version,
                "start": start,
                "end": end,
                "note": args.note,
            },
        )
    finally:
        store.close()
    scope = (
        f"prompt version {args.prompt_version!r}" if args.prompt_version else "every prompt version"
    )
    print(
        f"baseline pinned for {project}/{args.model} ({scope}): "
        f"{start.isoformat()} .. {end.isoformat()}, {count} completions"
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from llmloop_processor import windows
    from llmloop_processor.report import write_report
    from llmloop_processor.settings import ProcessorSettings

    start, end = _window(args)
    settings = settings_from(args, ProcessorSettings)
    store = open_store_for_cli(settings)
    try:
        project = _project(store, args, start, end)
        key = (project, args.model, args.prompt_version or None)
        current = windows.current(store, key, start, end, args.sample)
        reference, source = windows.reference(
            store, key, settings.processor_reference_size, args.sample
        )
    finally:
        store.close()
    if current.size < 2 or reference.size < 2:
        raise CliError(
            f"not enough data: {reference.size} reference and {current.size} current completions"
        )
    out = write_report(
        reference,
        current,
        args.out,
        title=f"llmloop drift: {project}/{args.model}",
        embeddings=not args.no_embeddings,
    )
    print(
        f"wrote {out} ({reference.size} reference completions [{source}] vs "
        f"{current.size} current, {start.isoformat()} .. {end.isoformat()})",
        file=sys.stderr,
    )
    return 0


def _window_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="the model's name as apps log it")
    p.add_argument("--project", help="needed only when several projects use the model")
    p.add_argument(
        "--prompt-version", default="", help="one prompt version (default: every version)"
    )
    p.add_argument(
        "--from",
        dest="from_",
        metavar="ISO",
        type=_when,
        help="window start (default: --to - 24 h)",
    )
    p.add_argument("--to", metavar="ISO", type=_when, help="window end, exclusive (default: now)")
    add_store_options(p)


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "processor",
        help="run the processor alone (distributed runtime)",
        description="Consume every topic from --broker and write --store, each event once; "
        "enrich completions and compute drift, bias and feedback statistics on a timer. "
        "The only writer of ClickHouse. On Kafka, `faust -A llmloop_processor.app worker` "
        "runs the same handlers as a faust app (also: `llmloop processor --faust`).",
    )
    p.add_argument(
        "--faust",
        action="store_true",
        help="run as a faust-streaming worker (Kafka only): partitions are shared between "
        "workers of one app id (LLMLOOP_PROCESSOR_FAUST_APP_ID)",
    )
    add_store_options(p)
    add_broker_option(p)
    add_log_option(p)
    p.set_defaults(func=cmd_processor)

    baseline = sub.add_parser(
        "baseline",
        help="pin the reference window that drift is measured against",
        description="Drift compares each window with a reference: the first "
        "LLMLOOP_PROCESSOR_REFERENCE_SIZE completions unless one is pinned here.",
    )
    actions = baseline.add_subparsers(dest="baseline_action", required=True, metavar="ACTION")
    pin = actions.add_parser(
        "set",
        help="pin [--from, --to) of a model as its reference",
        description="Pin a window of a model's completions as its drift reference, e.g.\n"
        "  llmloop baseline set --model gpt-4o --from 2026-05-01 --to 2026-05-08\n"
        "The latest pin wins; pin a quiet, known-good week.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _window_options(pin)
    pin.add_argument("--note", default="", help="why this window (kept with the pin)")
    pin.set_defaults(func=cmd_baseline_set)

    report = sub.add_parser(
        "report",
        help="write an Evidently drift report (HTML) for a window",
        description="Compare a window of a model's completions with its reference (pinned, "
        "or the first N) in an Evidently HTML report: scalar features and prompt "
        "embeddings.\n  llmloop report --model gpt-4o --out report.html",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _window_options(report)
    report.add_argument("--out", type=Path, required=True, help="the HTML file to write")
    report.add_argument("--sample", type=int, default=2_000, help="most completions per side")
    report.add_argument(
        "--no-embeddings", action="store_true", help="scalar features only (faster: no t-SNE)"
    )
    report.set_defaults(func=cmd_report)
