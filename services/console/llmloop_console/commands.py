"""``llmloop console``: serve the console alone; ``llmloop console token``: sign-in tokens."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from llmloop.cliutil import CliError, add_log_option, add_store_options, settings_from

TOKEN_HELP = """\
Console tokens are for people, not apps (apps hold ingest keys). A token is
stored hashed in DATA_DIR/console.db, printed once, and scoped to the projects
given with --project ('*': every project). Every page and API call of the
console shows only those projects.

Examples:
  llmloop console token create --project shop-assistant --note alice
  llmloop console token list
  llmloop console token revoke 3f9a1c2b
"""


def _tokens(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from llmloop_console.tokens import ConsoleTokens, tokens_path

    settings = settings_from(args)
    return ConsoleTokens(tokens_path(settings.data_dir)), settings


def cmd_token_create(args: argparse.Namespace) -> int:
    tokens, settings = _tokens(args)
    try:
        token, info = tokens.create(args.project, note=args.note)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    url = args.url or f"http://127.0.0.1:{settings.port}"
    print(token)
    print(f"# id {info.token_id}, projects {', '.join(info.projects)} (shown once)")
    print(f"# sign in: {url}/console/signin?token={token}")
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    tokens, _ = _tokens(args)
    for t in tokens.list_tokens():
        state = f"revoked {t.revoked_at}" if t.revoked_at else "active"
        print(f"{t.token_id}  {','.join(t.projects):<30} {t.created_at}  {state}  {t.note}")
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    tokens, _ = _tokens(args)
    try:
        info = tokens.revoke(args.id)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    print(f"revoked {info.token_id} ({', '.join(info.projects)})")
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    import uvicorn

    from llmloop.logs import setup_logging
    from llmloop.store import open_store
    from llmloop_console.app import create_app
    from llmloop_console.tokens import ConsoleTokens, tokens_path

    settings = settings_from(args)
    setup_logging(settings.log_level, settings.log_format)
    sink = None
    if args.ingest_url:
        from llmloop_console.sinks import HttpSink, parse_keys

        try:
            keys = parse_keys(os.environ.get("LLMLOOP_CONSOLE_INGEST_KEYS", ""))
        except ValueError as exc:
            raise CliError(str(exc)) from exc
        sink = HttpSink(args.ingest_url, keys)
    store = open_store(settings.store_url)
    try:
        app = create_app(store, ConsoleTokens(tokens_path(settings.data_dir)), sink=sink)
        uvicorn.run(app, host=settings.host, port=args.console_port, log_config=None)
    finally:
        store.close()
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    console = sub.add_parser(
        "console",
        help="the browser console on its own (llmloop up serves it already), and its tokens",
        description="Serve the console against a store (e.g. --store clickhouse://host:8123) "
        "for the distributed runtime: it reads the store and writes nothing to it.",
    )
    add_store_options(console)
    console.add_argument("--host", help="address to bind (default 127.0.0.1)")
    console.add_argument(
        "--console-port", type=int, default=7071, help="port (default 7071; up serves on 7070)"
    )
    console.add_argument(
        "--ingest-url",
        help="where review judgments go (POST /v1/events), with one ingest key per project in "
        "LLMLOOP_CONSOLE_INGEST_KEYS=project=key,...; without it the review queue is read-only",
    )
    add_log_option(console)
    console.set_defaults(func=cmd_console)
    token_sub = console.add_subparsers(dest="console_command", metavar="COMMAND")
    token = token_sub.add_parser(
        "token",
        help="create, list or revoke console sign-in tokens",
        description=TOKEN_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).add_subparsers(dest="token_command", metavar="COMMAND", required=True)

    create = token.add_parser("create", help="a new token scoped to projects (printed once)")
    create.add_argument(
        "--project",
        action="append",
        required=True,
        help="a project it may see (repeatable; '*': all)",
    )
    create.add_argument("--note", default="", help="who or what it is for")
    create.add_argument("--url", help="console address for the printed link")
    create.add_argument("--data-dir", type=Path, help="where console.db lives")
    create.set_defaults(func=cmd_token_create)

    listing = token.add_parser("list", help="every token (without the token itself)")
    listing.add_argument("--data-dir", type=Path, help="where console.db lives")
    listing.set_defaults(func=cmd_token_list)

    revoke = token.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("id", metavar="ID", help="its id, as `list` shows it (a prefix will do)")
    revoke.add_argument("--data-dir", type=Path, help="where console.db lives")
    revoke.set_defaults(func=cmd_token_revoke)
