"""Waiting before trying again: one backoff and one Retry-After parser for everything
that retries (the SDK's clients, alerting's webhooks, a consumer whose handler fails).

Standard library only: the SDK (base install) uses it.
"""

from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime


def backoff(attempt: int, base_s: float, max_s: float, hint_s: float | None = None) -> float:
    """Seconds to wait before retry ``attempt`` (0 for the first retry).

    Exponential with "equal jitter": between d/2 and d, d = min(max_s, base_s * 2**attempt),
    so retries of many clients (or alerts) spread out, yet none comes back at once. A
    server's Retry-After (``hint_s``) is a floor.
    """
    cap = min(max_s, base_s * 2.0**attempt)
    return max(cap / 2 + random.uniform(0, cap / 2), hint_s or 0.0)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP-date (RFC 9110
    section 10.2.3); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None
