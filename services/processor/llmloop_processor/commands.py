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
from typing import TYPE_CHECKING, Any

from llmloop.cliutil import (
    CliError,
    add_broker_option,
    add_log_option,
    add_store_options,
    open_store_for_cli,
    publish_for_cli,
    query_json,
    settings_from,
    sql_time,
)

if TYPE_CHECKING:
    from llmloop_processor.compare import Query

DT = "DateTime64(3, 'UTC')"


def cmd_processor(args: argparse.Namespace) -> int:
    from llmloop.logs import setup_logging
    from llmloop.service import named, serve
    from llmloop.store import StoreError
    from llmloop_processor.settings import ProcessorSettings

    settings = settings_from(args, ProcessorSettings)
    if args.faust:
        _exec_faust_worker(settings)
    setup_logging(settings.log_level, settings.log_format)
    try:
        asyncio.run(serve(named("processor"), settings))
    except StoreError as exc:
        raise CliError(str(exc)) from exc
    return 0


def _exec_faust_worker(settings: Any) -> None:
    """Replace this process with ``faust -A llmloop_processor.app worker``, configured
    by the same settings (the app reads them from the environment when it starts)."""
    import os

    from llmloop.bus.kafka import KafkaOptions
    from llmloop.urls import redact_url

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


def _project(rows: Query, args: argparse.Namespace, start: datetime, end: datetime) -> str:
    """The project the model's completions in the window belong to (--project, or the only one)."""
    found = rows(
        "SELECT project_id, count() FROM completion_enrichments WHERE model = {model:String} "
        f"AND ts >= {{start:{DT}}} AND ts < {{end:{DT}}} "
        + ("AND project_id = {project:String} " if args.project else "")
        + "GROUP BY project_id ORDER BY project_id",
        {
            "model": args.model,
            "start": sql_time(start),
            "end": sql_time(end),
            "project": args.project or "",
        },
    )
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
    """Pin a window: read what it holds (through ``up`` when it runs), then publish the pin;
    the processor stores it, as it stores a promotion (one writer)."""
    from llmloop import topics
    from llmloop.events import BaselinePinned

    start, end = _window(args)
    settings = settings_from(args)

    def rows(sql: str, params: dict[str, Any]) -> list[list[Any]]:
        return [list(r.values()) for r in query_json(settings, sql, params)]

    project = _project(rows, args, start, end)
    [[count]] = rows(
        "SELECT uniqExact(event_id) FROM completion_enrichments WHERE project_id = {p:String} "
        "AND model = {m:String} AND (prompt_version = {v:String} OR {v:String} = '') "
        f"AND ts >= {{start:{DT}}} AND ts < {{end:{DT}}}",
        {
            "p": project,
            "m": args.model,
            "v": args.prompt_version,
            "start": sql_time(start),
            "end": sql_time(end),
        },
    )
    pin = BaselinePinned(
        project_id=project,
        model=args.model,
        prompt_version=args.prompt_version,
        window_start=start,
        window_end=end,
        note=args.note,
    )
    asyncio.run(publish_for_cli(settings, topics.EVENTS, [pin]))
    scope = (
        f"prompt version {args.prompt_version!r}" if args.prompt_version else "every prompt version"
    )
    print(
        f"baseline pinned for {project}/{args.model} ({scope}): "
        f"{start.isoformat()} .. {end.isoformat()}, {count} completions "
        "(the processor stores the pin; statistics use it from their next window)"
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
        project = _project(lambda sql, p: store.query(sql, p).rows, args, start, end)
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


def _since(text: str | None) -> datetime | None:
    """``7d`` / ``12h`` / ``30m`` ago, or an ISO date or time (UTC)."""
    if text is None:
        return None
    units = {"m": 60, "h": 3600, "d": 86400, "w": 604800}
    if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
        return datetime.now(UTC) - timedelta(seconds=float(text[:-1]) * units[text[-1]])
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise CliError(f"--since {text!r}: expected e.g. 7d, 12h or 2026-05-01") from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _cell(value: float, interval: tuple[float, float], n: int | None, fmt: str) -> str:
    text = f"{value:{fmt}} [{interval[0]:{fmt}}, {interval[1]:{fmt}}]"
    return text + (f" n={n}" if n is not None else "")


def cmd_compare(args: argparse.Namespace) -> int:
    import json

    import orjson

    from llmloop.cliutil import query_for_cli
    from llmloop_processor.compare import OUTCOMES, arm_sums, compare_versions

    settings = settings_from(args)
    if args.a == args.b:
        raise CliError("--a and --b name the same version")
    outcomes = args.outcome or list(OUTCOMES)
    since = _since(args.since)

    def query(sql: str, params: dict[str, Any]) -> list[list[Any]]:
        raw = query_for_cli(settings, sql, params)
        return [orjson.loads(line) for line in raw.splitlines() if line.strip()]

    sums = {
        o: arm_sums(query, o, args.model, (args.a, args.b), project=args.project, since=since)
        for o in outcomes
    }
    if not any(sums.values()):
        raise CliError(
            f"no completions of model {args.model!r} with version {args.a!r} or {args.b!r}"
            + (f" since {since:%F %T}" if since else "")
        )
    results = compare_versions(sums, args.a, args.b, alpha=args.alpha, tune_n=args.tune_n)
    if args.json:
        out = {
            name: None
            if r is None
            else {
                "a": {"n": r.a.n, "value": r.a.mean, "interval": r.a_interval},
                "b": {"n": r.b.n, "value": r.b.mean, "interval": r.b_interval},
                "difference": r.diff,
                "interval": r.diff_interval,
                "p_value": r.p_value,
                "significant": r.significant,
                "b_worse": r.b_worse,
            }
            for name, r in results.items()
        }
        print(
            json.dumps(
                {
                    "model": args.model,
                    "a": args.a,
                    "b": args.b,
                    "alpha": args.alpha,
                    "outcomes": out,
                },
                indent=2,
            )
        )
        return 0
    level = f"{1 - args.alpha:.0%}"
    print(
        f"{args.model}: A = {args.a}, B = {args.b}; {level} always-valid intervals and mSPRT "
        f"p-values (valid at every look; see `llmloop compare --help`)"
    )
    print(f"{'OUTCOME':<18} {'A':>27} {'B':>27} {'B - A':>27} {'P':>7}  VERDICT")
    for name, r in results.items():
        if r is None:
            print(f"{name:<18} {'(fewer than 2 observations on a side)':>27}")
            continue
        fmt = ".4g" if OUTCOMES[name].unit in ("ms", "usd") else ".3f"
        verdict = (
            "B worse" if r.b_worse else "B better" if r.significant else "no significant difference"
        )
        print(
            f"{name:<18} {_cell(r.a.mean, r.a_interval, r.a.n, fmt):>27} "
            f"{_cell(r.b.mean, r.b_interval, r.b.n, fmt):>27} "
            f"{_cell(r.diff, r.diff_interval, None, '+' + fmt):>27} "
            f"{r.p_value:>7.3g}  {verdict}"
        )
    return 0


def add_commands(sub: Any) -> None:
    from llmloop.contracts.metrics import VERSION_OUTCOMES

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

    compare = sub.add_parser(
        "compare",
        help="A/B: two model versions on live traffic, per outcome, always valid",
        description="Per outcome (thumbs_up, negative_feedback, mean_score, toxicity, refusal, "
        "latency_ms, cost_usd), each version's value with its interval, the difference B - A "
        "with its interval, and a p-value. Intervals and p-values are anytime-valid "
        "(normal-mixture confidence sequence / mSPRT, Howard et al. 2021, Johari et al. 2017): "
        "they hold at every sample size at once, so you may run this every day and act the "
        "first time it says significant, without inflating false positives. The unit is the "
        "completion (its latest thumbs, its feedback's negative flag, ...).\n"
        "  llmloop compare --model gpt-4o --a 2026-05-01 --b dpo-20260512",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compare.add_argument("--model", required=True)
    compare.add_argument("--a", required=True, metavar="VERSION", help="the current version")
    compare.add_argument("--b", required=True, metavar="VERSION", help="the challenger")
    compare.add_argument("--project", help="only this project's traffic")
    compare.add_argument("--since", help="only completions since (7d, 12h, 2026-05-01)")
    compare.add_argument(
        "--outcome", action="append", choices=VERSION_OUTCOMES, help="repeat to pick some"
    )
    compare.add_argument("--alpha", type=float, default=0.05, help="error rate (default 0.05)")
    compare.add_argument(
        "--tune-n",
        type=int,
        default=1000,
        help="observations per version at which the intervals are tightest (any value is "
        "valid; default 1000)",
    )
    compare.add_argument("--json", action="store_true", help="print the results as JSON")
    add_store_options(compare)
    compare.set_defaults(func=cmd_compare)
