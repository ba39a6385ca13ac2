"""``llmloop ingest`` (the API as its own process) and ``llmloop keys`` (projects' API keys)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from llmloop.cliutil import CliError, add_broker_option, add_log_option, settings_from

KEYS_HELP = """\
Keys are stored hashed in DATA_DIR/keys.db (or LLMLOOP_KEYS_DB); a new key is
printed once and cannot be shown again. Changes apply to a running ingest
within LLMLOOP_KEY_CACHE_S seconds (default 5).

Several ingest replicas (Kubernetes): `llmloop keys export keys.txt`, put the
file in a Secret mounted into every replica, and set LLMLOOP_KEYS_FILE to it.

Examples:
  llmloop keys create --project shop-assistant
  llmloop keys list
  llmloop keys revoke 3f9a1c2b
"""


INGEST_HELP = """\
Ingest's own settings (environment):
  LLMLOOP_AUTH=keys|none        keys (default): every request needs a project's key
  LLMLOOP_KEYS_DB=PATH          SQLite key store (default DATA_DIR/keys.db)
  LLMLOOP_KEYS_FILE=PATH        read-only 'PROJECT SHA256' lines (`llmloop keys export`)
  LLMLOOP_REDACT_PII=a,b|*      redact emails, phones, cards, IPs for these projects
  LLMLOOP_PUBLISH_TIMEOUT_S=5   longer than this without a bus ack: 503 + Retry-After
  LLMLOOP_MAX_BATCH_EVENTS=1000, LLMLOOP_MAX_BODY_BYTES=5242880: 413 above these
  LLMLOOP_LOG_FORMAT=json       one JSON object per log line

Endpoints: POST /v1/events, POST /v1/otlp/v1/traces, GET /healthz, /readyz, /metrics,
and the OpenAPI docs at /docs.
"""


def cmd_ingest(args: argparse.Namespace) -> int:
    import uvicorn

    from llmloop.lifecycle import tune_gc
    from llmloop.logs import setup_logging
    from llmloop_ingest.app import create_app
    from llmloop_ingest.settings import IngestSettings

    settings = settings_from(args, IngestSettings)
    setup_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    tune_gc()  # batches of events: collect less often (bench/ingest.py)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,  # /metrics counts requests; a line per request costs throughput
    )
    return 0


def _store(args: argparse.Namespace) -> Any:
    from llmloop_ingest.keys import KeyStore
    from llmloop_ingest.settings import IngestSettings

    return KeyStore(settings_from(args, IngestSettings).keys_path())


def cmd_keys_create(args: argparse.Namespace) -> int:
    try:
        key, info = _store(args).create(args.project, args.note or "")
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    print(key)
    print(
        f"created key {info.key_id} for project {info.project}; it is shown only this once, "
        "store it in your app's secrets",
        file=sys.stderr,
    )
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    keys = _store(args).list_keys(args.project)
    if not keys:
        print("no keys yet: llmloop keys create --project NAME", file=sys.stderr)
        return 0
    print(f"{'KEY ID':<14}{'PROJECT':<24}{'CREATED':<28}{'REVOKED':<28}NOTE")
    for k in keys:
        print(f"{k.key_id:<14}{k.project:<24}{k.created_at:<28}{k.revoked_at or '-':<28}{k.note}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    try:
        info = _store(args).revoke(args.key_id)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    print(f"revoked key {info.key_id} of project {info.project}")
    return 0


def cmd_keys_export(args: argparse.Namespace) -> int:
    from llmloop_ingest.keys import write_key_file

    count = write_key_file(Path(args.file), _store(args))
    print(f"wrote {count} active key hashes to {args.file} (set LLMLOOP_KEYS_FILE to use it)")
    return 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "ingest",
        help="run the ingest API alone (distributed runtime)",
        description="Serve POST /v1/events and POST /v1/otlp/v1/traces, publish to --broker. "
        "Requests need a project's API key (`llmloop keys create`). Scale it horizontally; "
        "see `llmloop keys --help` for sharing keys between replicas.",
        epilog=INGEST_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_broker_option(p)
    p.add_argument("--data-dir", type=Path, help="where keys.db lives (default .llmloop)")
    p.add_argument("--host", help="address to bind (default 127.0.0.1; 0.0.0.0 in containers)")
    p.add_argument("--port", type=int, help="port (default 7070)")
    add_log_option(p)
    p.set_defaults(func=cmd_ingest)

    keys = sub.add_parser(
        "keys",
        help="create, list, revoke and export projects' API keys",
        description="Manage the API keys that ingest accepts; a key decides the project "
        "of every event sent with it.",
        epilog=KEYS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ks = keys.add_subparsers(dest="keys_command", metavar="COMMAND", required=True)

    def common(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument("--data-dir", type=Path, help="data dir holding keys.db")
        return parser

    c = common(ks.add_parser("create", help="create a key and print it (once)"))
    c.add_argument("--project", required=True, help="project id, e.g. shop-assistant")
    c.add_argument("--note", help="what the key is for, shown by `keys list`")
    c.set_defaults(func=cmd_keys_create)
    ls = common(ks.add_parser("list", help="list keys (ids, never the keys)"))
    ls.add_argument("--project", help="only this project's keys")
    ls.set_defaults(func=cmd_keys_list)
    r = common(ks.add_parser("revoke", help="revoke a key by the id `keys list` shows"))
    r.add_argument("key_id", help="the key id (8+ hex characters)")
    r.set_defaults(func=cmd_keys_revoke)
    e = common(ks.add_parser("export", help="write active key hashes for LLMLOOP_KEYS_FILE"))
    e.add_argument("file", help="output file, e.g. keys.txt")
    e.set_defaults(func=cmd_keys_export)
