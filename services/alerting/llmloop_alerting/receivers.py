"""Request bodies for each receiver type, built from an alert event.

* ``webhook``: the JSON body of Prometheus Alertmanager's webhook receiver
  (version 4: ``status``, ``alerts[]`` with ``labels``, ``annotations``,
  ``startsAt``, ``endsAt``, ``fingerprint``; ``groupLabels``, ``commonLabels``...),
  so receivers written for Alertmanager work unchanged, plus an ``llmloop``
  object with the value, threshold and ids.
* ``slack``: an incoming-webhook message, ``text`` (the notification fallback)
  and Block Kit ``blocks`` (header, fields, runbook link).
* ``pagerduty``: Events API v2, ``event_action`` trigger / resolve with the
  alert fingerprint as ``dedup_key``, so a resolve closes the incident that the
  trigger opened and a repeated trigger is folded into it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from llmloop.events import AlertStateChanged
from llmloop_alerting.rules import Receiver

# Alertmanager's "zero" endsAt for alerts that have not ended.
_ZERO_TIME = "0001-01-01T00:00:00Z"
_SLACK_HEADER_MAX = 150  # Slack rejects longer plain_text in a header block
_PAGERDUTY_SUMMARY_MAX = 1024
_EMOJI = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":information_source:"}
# PagerDuty's severities are critical, error, warning, info.
_PD_SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}


def _iso(value: datetime | None) -> str:
    return value.isoformat().replace("+00:00", "Z") if value else _ZERO_TIME


def summary(alert: AlertStateChanged) -> str:
    """One line saying what happened (the rule's summary annotation when it has one)."""
    text = alert.annotations.get("summary") or (
        f"{alert.rule}: value {alert.value} crossed {alert.threshold}"
    )
    return f"[{alert.status.upper()}] {text}"


def _labels(alert: AlertStateChanged) -> dict[str, str]:
    labels = {"alertname": alert.rule, "severity": alert.severity, **alert.labels}
    if alert.project_id:
        labels.setdefault("project", alert.project_id)
    return labels


def webhook_body(
    alert: AlertStateChanged, receiver: Receiver, notification_id: str, external_url: str = ""
) -> dict[str, Any]:
    """Alertmanager webhook payload (version 4) for one alert."""
    labels = _labels(alert)
    return {
        "version": "4",
        "groupKey": f"{{}}:{{alertname={alert.rule!r}}}:{alert.fingerprint}",
        "truncatedAlerts": 0,
        "status": alert.status,
        "receiver": receiver.name,
        "groupLabels": {"alertname": alert.rule},
        "commonLabels": labels,
        "commonAnnotations": dict(alert.annotations),
        "externalURL": external_url,
        "alerts": [
            {
                "status": alert.status,
                "labels": labels,
                "annotations": dict(alert.annotations),
                "startsAt": _iso(alert.starts_at),
                "endsAt": _iso(alert.ends_at),
                "generatorURL": external_url,
                "fingerprint": alert.fingerprint,
            }
        ],
        "llmloop": {
            "notification_id": notification_id,
            "alert_event_id": str(alert.event_id),
            "project_id": alert.project_id,
            "rule": alert.rule,
            "value": alert.value,
            "threshold": alert.threshold,
        },
    }


def slack_body(alert: AlertStateChanged, external_url: str = "") -> dict[str, Any]:
    """Slack incoming-webhook message: fallback ``text`` plus Block Kit ``blocks``."""
    resolved = alert.status == "resolved"
    icon = ":white_check_mark:" if resolved else _EMOJI.get(alert.severity, ":warning:")
    title = f"{icon} {alert.status.upper()}: {alert.rule}"
    fields = [
        {"type": "mrkdwn", "text": f"*Severity*\n{alert.severity}"},
        {"type": "mrkdwn", "text": f"*Value*\n{alert.value} (threshold {alert.threshold})"},
        {"type": "mrkdwn", "text": f"*Since*\n{_iso(alert.starts_at)}"},
    ]
    if alert.project_id:
        fields.append({"type": "mrkdwn", "text": f"*Project*\n{alert.project_id}"})
    labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items())) or "none"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:_SLACK_HEADER_MAX]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": summary(alert)[:3000]}},
        {"type": "section", "fields": fields},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"labels: {labels}"[:3000]}]},
    ]
    links = [("Runbook", alert.annotations.get("runbook_url")), ("llmloop", external_url)]
    buttons = [
        {"type": "button", "text": {"type": "plain_text", "text": text}, "url": url}
        for text, url in links
        if url
    ]
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    return {"text": summary(alert), "blocks": blocks}


def pagerduty_body(alert: AlertStateChanged, receiver: Receiver) -> dict[str, Any]:
    """PagerDuty Events API v2: trigger or resolve, deduplicated by the alert fingerprint."""
    if alert.status == "resolved":
        return {
            "routing_key": receiver.routing_key,
            "event_action": "resolve",
            "dedup_key": alert.fingerprint,
        }
    body: dict[str, Any] = {
        "routing_key": receiver.routing_key,
        "event_action": "trigger",
        "dedup_key": alert.fingerprint,
        "payload": {
            "summary": summary(alert)[:_PAGERDUTY_SUMMARY_MAX],
            "source": f"llmloop/{alert.project_id or 'default'}",
            "severity": _PD_SEVERITY[alert.severity],
            "timestamp": _iso(alert.starts_at),
            "component": alert.labels.get("model", ""),
            "group": alert.project_id or "",
            "class": alert.rule,
            "custom_details": {
                "value": alert.value,
                "threshold": alert.threshold,
                "labels": dict(alert.labels),
                "annotations": dict(alert.annotations),
            },
        },
        "client": "llmloop",
    }
    runbook = alert.annotations.get("runbook_url")
    if runbook:
        body["links"] = [{"href": runbook, "text": "Runbook"}]
    return body


def render(
    alert: AlertStateChanged, receiver: Receiver, notification_id: str, external_url: str = ""
) -> dict[str, Any]:
    """The JSON body that ``receiver`` expects for ``alert``."""
    if receiver.type == "slack":
        return slack_body(alert, external_url)
    if receiver.type == "pagerduty":
        return pagerduty_body(alert, receiver)
    return webhook_body(alert, receiver, notification_id, external_url)
