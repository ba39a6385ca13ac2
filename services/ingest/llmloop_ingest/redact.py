"""PII redaction before an event leaves ingest, for projects that ask for it.

The detector is the shared one (``llmloop.pii``); this module knows which fields
of an event hold text a user typed.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from llmloop.pii import redact_text

# Which fields of an ingest event hold free text a user may have typed.
_TEXT_FIELDS = ("prompt", "completion", "comment", "correction", "choices")
# Which fields of a message part (issue 13) hold such text: a tool's arguments and
# results carry what the user typed as often as the text does.
_PART_TEXT_FIELDS = ("content", "arguments", "response")


def _redact_message(m: Any, counts: Counter[str]) -> Any:
    if not isinstance(m, dict):
        return m
    out = dict(m)
    if isinstance(out.get("content"), str):
        out["content"] = redact_text(out["content"], counts)
    if isinstance(out.get("parts"), list):
        out["parts"] = [
            {
                **p,
                **{
                    k: redact_text(p[k], counts)
                    for k in _PART_TEXT_FIELDS
                    if isinstance(p.get(k), str) and p.get("type") != "blob"
                },
            }
            if isinstance(p, dict)
            else p
            for p in out["parts"]
        ]
    return out


def redact_event(raw: dict[str, Any], counts: Counter[str]) -> dict[str, Any]:
    """A copy of a raw ingest event with its free-text fields redacted."""
    out = dict(raw)
    for name in _TEXT_FIELDS:
        value = out.get(name)
        if isinstance(value, str):
            out[name] = redact_text(value, counts)
        elif isinstance(value, list):  # chat messages
            out[name] = [_redact_message(m, counts) for m in value]
    return out
