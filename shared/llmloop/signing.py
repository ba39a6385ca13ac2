"""Signed webhooks: how llmloop signs what it sends, and how a receiver checks it.

Every webhook llmloop sends carries::

    X-Llmloop-Timestamp: 1732111265
    X-Llmloop-Signature: v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd
    Idempotency-Key: 3f0c...            (the same on every retry of one notification)

``v1`` is the hex HMAC-SHA256, keyed with the shared secret, of
``f"{timestamp}.".encode() + body`` (the raw request body, byte for byte). The
timestamp is inside the MAC so a captured request cannot be replayed later than
the tolerance; the receiver compares in constant time. During a secret rotation
the sender may put several ``v1=`` entries in one header (comma-separated); one
match is enough. A receiver needs only this module, from the base install::

    from llmloop.signing import verify_signature
    verify_signature(secret, request.body, request.headers)   # raises InvalidSignature

Plain ``hashlib``/``hmac``: no dependency beyond the standard library.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping

SIGNATURE_HEADER = "X-Llmloop-Signature"
TIMESTAMP_HEADER = "X-Llmloop-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SCHEME = "v1"
# Five minutes, as Stripe and Slack do: generous for clock skew and slow retries,
# short enough that a captured request is useless soon.
DEFAULT_TOLERANCE_S = 300


class InvalidSignature(ValueError):
    """A request's signature is missing, malformed, stale or wrong; the message says which."""


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def signature(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"{timestamp}." + body`` under ``secret``."""
    return hmac.new(_key(secret), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(
    secrets: str | bytes | Iterable[str | bytes], body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """The signature headers for ``body``: timestamp and one ``v1=`` entry per secret.

    Args:
        secrets: the shared secret, or several during a rotation (old and new).
        body: the exact bytes that will be sent.
        timestamp: Unix seconds; now when omitted (tests pin it).
    """
    ts = int(time.time()) if timestamp is None else timestamp
    keys = [secrets] if isinstance(secrets, str | bytes) else list(secrets)
    if not keys or any(not k for k in keys):
        raise ValueError("a webhook secret must not be empty")
    entries = ",".join(f"{SCHEME}={signature(k, ts, body)}" for k in keys)
    return {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: entries}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # plain dicts are case-sensitive; HTTP headers are not
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def verify_signature(
    secrets: str | bytes | Iterable[str | bytes],
    body: bytes,
    headers: Mapping[str, str],
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> int:
    """Check a webhook from llmloop; returns its timestamp, raises ``InvalidSignature``.

    Args:
        secrets: the shared secret, or several accepted ones during a rotation.
        body: the raw request body, before any JSON parsing.
        headers: the request headers (any case-insensitive or plain mapping).
        tolerance_s: how old (or how far in the future) the timestamp may be.
        now: Unix seconds to compare with; the clock when omitted.
    """
    raw_ts = _header(headers, TIMESTAMP_HEADER)
    raw_sig = _header(headers, SIGNATURE_HEADER)
    if not raw_ts or not raw_sig:
        raise InvalidSignature(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
    try:
        ts = int(raw_ts)
    except ValueError:
        raise InvalidSignature(f"{TIMESTAMP_HEADER} {raw_ts!r} is not Unix seconds") from None
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:
        raise InvalidSignature(
            f"{TIMESTAMP_HEADER} is {current - ts:.0f} s off the clock "
            f"(tolerance {tolerance_s:.0f} s): stale or replayed"
        )
    offered = [
        value
        for scheme, _, value in (part.strip().partition("=") for part in raw_sig.split(","))
        if scheme == SCHEME and value
    ]
    if not offered:
        raise InvalidSignature(f"{SIGNATURE_HEADER} has no {SCHEME}= entry")
    keys = [secrets] if isinstance(secrets, str | bytes) else list(secrets)
    expected = [signature(k, ts, body) for k in keys]
    # compare_digest on every pair: the time taken says nothing about which byte differed.
    if not any(hmac.compare_digest(e, o) for e in expected for o in offered):
        raise InvalidSignature("signature does not match the body and the shared secret")
    return ts
