"""``llmloop``: the command line. Its own commands (up, migrate, query, demo, schemas) and
every installed service's, from the service registry (``llmloop.service``).

Heavy imports (FastAPI, chDB, aiokafka) happen inside the command that needs
them, so ``llmloop --help`` answers at once.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from llmloop import __version__
from llmloop.cliutil import (
    CliError,
    add_broker_option,
    add_log_option,
    add_store_options,
    open_store_for_cli,
    query_for_cli,
    settings_from,
)

EPILOG = """\
Quick start:
  llmloop up --demo            run everything locally, with demo traffic; it prints
                               the console's sign-in link (http://127.0.0.1:7070/)
  llmloop query "SELECT model, count() FROM completions GROUP BY model"

Every option can also come from the environment with the LLMLOOP_ prefix,
e.g. LLMLOOP_DATA_DIR, LLMLOOP_BUS_URL, LLMLOOP_STORE_URL, LLMLOOP_PORT.
"""


# --- commands --------------------------------------------------------------------------


def cmd_up(args: argparse.Namespace) -> int:
    from llmloop.logs import setup_logging
    from llmloop.runtime_file import RuntimeInfo
    from llmloop.store import StoreError
    from llmloop_app.embedded import PortInUse, run_embedded

    settings = settings_from(args)
    running = RuntimeInfo.running(settings.data_dir)
    if running is not None:
        raise CliError(
            f"llmloop up is already running on {settings.data_dir} "
            f"(pid {running.pid}, API at {running.api_url})"
        )
    setup_logging(settings.log_level, settings.log_format)
    try:
        asyncio.run(run_embedded(settings, demo=args.demo, demo_rate=args.demo_rate))
    except (StoreError, PortInUse) as exc:
        raise CliError(str(exc)) from exc
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from llmloop.store.migrate import migrate
    from llmloop.urls import redact_url

    settings = settings_from(args)
    cluster = args.cluster if args.cluster is not None else settings.clickhouse_cluster
    if args.print_sql:
        from llmloop.store.cluster import Cluster
        from llmloop.store.migrate import load_migrations, render

        for m in load_migrations():
            print(f"-- {m.label}" + (f" on cluster {cluster!r}" if cluster else ""))
            for statement in render(m.up, Cluster(cluster) if cluster else None):
                print(statement + ";\n")
        return 0
    store = open_store_for_cli(settings)
    try:
        report = migrate(store, target=args.to, cluster=cluster)
    finally:
        store.close()
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for label in report.applied:
        print(f"applied      {label}")
    for label in report.rolled_back:
        print(f"rolled back  {label}")
    where = redact_url(settings.store_url)
    if report.changed:
        print(f"{where}: schema is now at version {report.current}")
    else:
        print(f"{where}: nothing to do, schema is at version {report.current}")
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    params = dict(_param(p) for p in args.param)
    if args.format is None:
        args.format = "PrettyCompactMonoBlock" if sys.stdout.isatty() else "TabSeparated"
    # Through `up` while it owns the embedded store (one process may open it), else direct.
    output = query_for_cli(settings, args.sql, params, args.format, timeout_s=args.timeout)
    sys.stdout.buffer.write(output)
    sys.stdout.flush()
    return 0


def _param(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise CliError(f"--param {text!r}: expected NAME=VALUE")
    return name, value


def cmd_demo(args: argparse.Namespace) -> int:
    from llmloop.store.migrate import migrate
    from llmloop_app.backfill import backfill

    settings = settings_from(args)
    store = open_store_for_cli(settings)
    try:
        migrate(store)
        report = backfill(
            store, hours=args.hours, events_per_minute=args.rate, project=args.project
        )
    finally:
        store.close()
    rows = ", ".join(f"{n} {table}" for table, n in sorted(report.rows.items()))
    print(f"wrote {args.hours:g} h of demo history for project {args.project!r}: {rows}")
    return 0


def cmd_schemas_export(args: argparse.Namespace) -> int:
    from llmloop import schemas

    directory = Path(args.out) if args.out else schemas.default_dir()
    if args.check:
        stale = schemas.stale(directory)
        if stale:
            print(
                f"stale event schemas in {directory}: {', '.join(stale)}\n"
                "run `llmloop schemas export` and commit the result",
                file=sys.stderr,
            )
            return 1
        print(f"event schemas in {directory} are current")
        return 0
    changed = schemas.export(directory)
    print(f"wrote {', '.join(changed)}" if changed else "event schemas already current")
    return 0


# --- parser ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmloop",
        description="Close the loop around a deployed LLM: log, monitor, alert, fine-tune.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"llmloop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    up = sub.add_parser(
        "up",
        help="run everything in one process (API, local log, chDB)",
        description="Run the embedded runtime: the HTTP API on --port, a durable local log, "
        "and the processor writing chDB under --data-dir. Migrates the store first. "
        "Ctrl-C stops it cleanly; a kill -9 loses nothing that was acknowledged.",
    )
    add_store_options(up)
    add_broker_option(up)
    up.add_argument("--host", help="address to bind (default 127.0.0.1)")
    up.add_argument("--port", type=int, help="API port (default 7070)")
    up.add_argument("--demo", action="store_true", help="also generate realistic demo traffic")
    up.add_argument(
        "--demo-rate",
        type=float,
        default=20.0,
        metavar="N",
        help="demo events per second (default 20)",
    )
    add_log_option(up)
    up.set_defaults(func=cmd_up)

    mig = sub.add_parser(
        "migrate",
        help="apply the ClickHouse migrations (idempotent)",
        description="Apply pending migrations from schemas/clickhouse in order. "
        "Running it again changes nothing. --to N rolls forward or back to version N.",
    )
    add_store_options(mig)
    mig.add_argument("--to", type=int, metavar="N", help="target version (default: newest)")
    mig.add_argument(
        "--cluster",
        metavar="NAME",
        help="run ON CLUSTER NAME with replicated engines and Distributed tables "
        "(default: LLMLOOP_CLICKHOUSE_CLUSTER; empty: single node)",
    )
    mig.add_argument(
        "--print",
        dest="print_sql",
        action="store_true",
        help="print the DDL that would run (for --cluster: the generated cluster form); "
        "touch no store",
    )
    mig.set_defaults(func=cmd_migrate)

    q = sub.add_parser(
        "query",
        help="run SQL on the store (works while `up` runs)",
        description="Run one SQL statement. While `llmloop up` owns the embedded store, the "
        "query goes through it; otherwise the store is opened directly. Values belong in "
        'parameters: llmloop query "SELECT count() FROM completions WHERE model = {m:String}" '
        "--param m=gpt-4o-mini",
    )
    q.add_argument("sql", help="the SQL statement")
    q.add_argument(
        "--format",
        "-f",
        default=None,
        help="ClickHouse output format: TabSeparated, CSV, JSONEachRow, ... (default: "
        "PrettyCompactMonoBlock on a terminal, TabSeparated into a pipe or file, as "
        "clickhouse-client does)",
    )
    q.add_argument(
        "--param",
        "-p",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="bind {NAME:Type} in the SQL (repeatable)",
    )
    q.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
    add_store_options(q)
    q.set_defaults(func=cmd_query)

    demo = sub.add_parser(
        "demo",
        help="fill the store with hours of demo history (every dashboard shows data)",
        description="Write demo traffic laid out over the past --hours straight to the store: "
        "completions and feedback from two models and two prompt versions, with a drift "
        "episode in the last part and a bias gap on the de-DE locale. For live traffic "
        "instead, run `llmloop up --demo`. Needs the store to itself (stop `up` first).",
    )
    add_store_options(demo)
    demo.add_argument("--hours", type=float, default=6.0, help="history length (default 6)")
    demo.add_argument(
        "--rate", type=int, default=40, metavar="N", help="events per simulated minute (default 40)"
    )
    demo.add_argument("--project", default="demo", help="project id (default demo)")
    demo.set_defaults(func=cmd_demo)

    sch = sub.add_parser("schemas", help="event JSON Schemas").add_subparsers(
        dest="schemas_command", metavar="COMMAND", required=True
    )
    exp = sch.add_parser(
        "export",
        help="write schemas/events/*.json from the event models",
        description="Write one JSON Schema per event type. --check writes nothing and "
        "fails when a committed file differs from the models (for CI).",
    )
    exp.add_argument("--out", help="directory (default: the package's schemas/events)")
    exp.add_argument("--check", action="store_true", help="fail if any file is stale")
    exp.set_defaults(func=cmd_schemas_export)

    from llmloop.service import discover

    for spec in discover():  # each service adds its own commands
        if spec.add_commands is not None:
            spec.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # bad URLs and settings: say what, not where
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
