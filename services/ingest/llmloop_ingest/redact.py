"""PII redaction before an event leaves ingest, for projects that ask for it.

The detector is the shared one (``llmloop.pii``); this module knows which fields
of an event hold text a user typed.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from llmloop.pii import redact_text

# Which fields of an ingest event hold free text a user may have typed.
_TEXT_FIELDS = ("prompt", "completion", "comment", "correction")


def redact_event(raw: dict[str, Any], counts: Counter[str]) -> dict[str, Any]:
    """A copy of a raw ingest event with its free-text fields redacted."""
    out = dict(raw)
    for name in _TEXT_FIELDS:
        value = out.get(name)
        if isinstance(value, str):
            out[name] = redact_text(value, counts)
        elif isinstance(value, list):  # chat messages
            out[name] = [
                {**m, "content": redact_text(m["content"], counts)}
                if isinstance(m, dict) and isinstance(m.get("content"), str)
                else m
                for m in value
            ]
    return out
