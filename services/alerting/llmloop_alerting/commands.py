"""``llmloop alerting``, ``llmloop rules check FILE``, ``llmloop alerts dlq list|replay``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from llmloop.cliutil import CliError, add_broker_option, add_log_option, settings_from

if TYPE_CHECKING:
    from llmloop_alerting.rules import Rule

RULES_HELP = """\
A rules file has `receivers` (webhook | slack | pagerduty, with url / routing_key,
${ENV_VAR} or ${ENV_VAR:-default} allowed) and `rules`, each with: name, metric,
match (exact labels), match_re (regex labels), op (> >= < <= == !=), threshold,
p_value_below, min_sample_size, for, severity (info | warning | critical), renotify,
no_data (keep | resolve | alert) with no_data_after, send_resolved, labels,
annotations (summary, runbook_url; {value} {threshold} {labels[model]} filled in)
and receivers. Durations: 30s, 5m, 1h30m, 2d.
"""


def _settings(args: argparse.Namespace) -> Any:
    from llmloop_alerting.settings import AlertingSettings

    settings = settings_from(args, AlertingSettings)
    overrides = {}
    if getattr(args, "rules", None) is not None:
        overrides["alerting_rules"] = args.rules
    if getattr(args, "state", None) is not None:
        overrides["alerting_state"] = args.state
    return settings.model_copy(update=overrides) if overrides else settings


def cmd_alerting(args: argparse.Namespace) -> int:
    from llmloop.logs import setup_logging
    from llmloop.service import named, serve
    from llmloop_alerting.rules import RulesError

    settings = _settings(args)
    setup_logging(settings.log_level, settings.log_format)
    try:
        asyncio.run(serve(named("alerting"), settings))
    except RulesError as exc:
        raise CliError(str(exc)) from exc
    return 0


def cmd_rules_check(args: argparse.Namespace) -> int:
    from llmloop_alerting.rules import RulesError, load_rules

    try:
        rules = load_rules(args.file)
    except RulesError as exc:
        print(f"error: {exc.source}: {len(exc.problems)} problem(s)", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    off = [r.name for r in rules.receivers if not r.enabled]
    print(
        f"{args.file}: ok, {len(rules.rules)} rule(s), {len(rules.receivers)} receiver(s)"
        + (f"; off (no URL / routing key): {', '.join(off)}" if off else "")
    )
    for rule in rules.rules:
        print(f"  {rule.name}: {describe(rule)} -> {', '.join(rule.receivers) or 'bus only'}")
    return 0


def describe(rule: Rule) -> str:
    """One line that says when a rule fires and when it resolves."""
    where = "".join(f" {k}={v}" for k, v in rule.match.items())
    p = f" and p < {rule.p_value_below}" if rule.p_value_below is not None else ""
    n = f", n >= {rule.min_sample_size}" if rule.min_sample_size else ""
    windows = " non-overlapping" if rule.non_overlapping() else ""
    fires = (
        f"{rule.confirm} of {rule.confirm_window}{windows} windows"
        if rule.confirm_window > rule.confirm
        else f"{rule.confirm}{windows} window(s) in a row"
    )
    if rule.for_:
        fires += f" and for {rule.for_}"
    quiet = f"{rule.op} {rule.resolve_threshold}" if rule.resolve_threshold is not None else ""
    resolves = f"resolves after {rule.resolve_after} window(s)" + (
        f" not {quiet}" if quiet else " not breaching"
    )
    return f"{rule.metric}{where} {rule.op} {rule.threshold}{p}{n}; fires on {fires}; {resolves}"


def _journal(args: argparse.Namespace) -> Any:
    from llmloop_alerting.journal import Journal

    path = _settings(args).state_path
    if not Path(path).exists():
        raise CliError(
            f"no alerting state at {path}: has the alerting service run here? "
            "(--data-dir / --state)"
        )
    journal = Journal(path)
    journal.open_sync()
    return journal


def cmd_dlq_list(args: argparse.Namespace) -> int:
    journal = _journal(args)
    try:
        dead = journal.dead_letters_sync()
    finally:
        journal.close_sync()
    if args.json:
        for n in dead:
            sys.stdout.buffer.write(
                orjson.dumps(
                    {
                        "id": n.id,
                        "receiver": n.receiver,
                        "rule": n.alert.rule,
                        "status": n.alert.status,
                        "fingerprint": n.alert.fingerprint,
                        "attempts": n.attempts,
                        "last_status": n.last_status,
                        "error": n.last_error,
                    }
                )
                + b"\n"
            )
        return 0
    if not dead:
        print("no dead-lettered notifications")
        return 0
    print(f"{'ID':<14}{'RECEIVER':<16}{'RULE':<28}{'STATUS':<10}{'TRIES':<7}LAST ERROR")
    for n in dead:
        print(
            f"{n.id[:12]:<14}{n.receiver[:15]:<16}{n.alert.rule[:27]:<28}"
            f"{n.alert.status:<10}{n.attempts:<7}{n.last_error[:60]}"
        )
    print(f"{len(dead)} dead-lettered; `llmloop alerts dlq replay ID...` (or --all) sends again")
    return 0


def cmd_dlq_replay(args: argparse.Namespace) -> int:
    if not args.ids and not args.all:
        raise CliError("name the notifications to replay (ID prefixes from `dlq list`) or --all")
    journal = _journal(args)
    try:
        replayed = journal.replay_sync(None if args.all else args.ids)
    finally:
        journal.close_sync()
    if not replayed:
        raise CliError("no dead-lettered notification matches; see `llmloop alerts dlq list`")
    print(
        f"queued {len(replayed)} notification(s) again; the alerting service sends them "
        "within a second (or when it next starts)"
    )
    return 0


def _state_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, help="data dir (default .llmloop)")
    p.add_argument(
        "--state",
        type=Path,
        metavar="FILE",
        help="the alerting state file (default DATA_DIR/alerting.db)",
    )


def add_commands(sub: Any) -> None:
    run = sub.add_parser(
        "alerting",
        help="run the alerting service alone (distributed runtime)",
        description="Evaluate alert rules on the metric events of --broker, publish alert "
        "events and send signed webhooks. State lives in DATA_DIR/alerting.db, so a restart "
        "neither loses nor repeats a notification. " + RULES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--rules",
        type=Path,
        metavar="FILE",
        help="rules YAML (default: LLMLOOP_ALERTING_RULES, else the shipped set)",
    )
    _state_options(run)
    add_broker_option(run)
    add_log_option(run)
    run.set_defaults(func=cmd_alerting)

    rules = sub.add_parser("rules", help="alert rules files").add_subparsers(
        dest="rules_command", metavar="COMMAND", required=True
    )
    check = rules.add_parser(
        "check",
        help="validate a rules file",
        description="Parse and validate FILE; every problem is printed with the rule and the "
        "field it is about. Exit status 1 when there is any. " + RULES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("file", type=Path, metavar="FILE")
    check.set_defaults(func=cmd_rules_check)

    alerts = sub.add_parser("alerts", help="alert notifications").add_subparsers(
        dest="alerts_command", metavar="COMMAND", required=True
    )
    dlq = alerts.add_parser(
        "dlq", help="dead-lettered notifications: list and replay"
    ).add_subparsers(dest="dlq_command", metavar="COMMAND", required=True)
    lst = dlq.add_parser(
        "list",
        help="notifications no receiver accepted",
        description="Notifications given up on after their last attempt "
        "(or refused with a 4xx). Also in ClickHouse: notification_dead_letters.",
    )
    lst.add_argument("--json", action="store_true", help="one JSON object per line")
    _state_options(lst)
    lst.set_defaults(func=cmd_dlq_list)
    rep = dlq.add_parser(
        "replay",
        help="send dead-lettered notifications again",
        description="Queue dead letters again with fresh attempts and the same "
        "idempotency key; the running alerting service picks them up.",
    )
    rep.add_argument("ids", nargs="*", metavar="ID", help="notification ids (prefixes ok)")
    rep.add_argument("--all", action="store_true", help="replay every dead letter")
    _state_options(rep)
    rep.set_defaults(func=cmd_dlq_replay)
