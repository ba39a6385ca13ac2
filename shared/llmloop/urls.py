"""Secrets kept out of what llmloop prints: log lines, error messages, CLI output.

Every URL that can carry a credential (a bus or store URL with a password, a
webhook URL with a token in its query or, for Slack and most chat tools, in its
path) goes through ``redact_url`` before it is logged or put in an exception.
Standard library only: the SDK (base install) uses it too.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode

MASK = "***"
# Query parameters whose values are credentials (api_key, token, sig, password...).
_SECRET_NAME = re.compile(r"pass|pwd|secret|token|key|sig|auth|cred|code", re.IGNORECASE)


def redact_url(url: str, *, keep_path: bool = True) -> str:
    """``url`` fit for a log line: the password (or a lone user part) and secret query values
    replaced by ``***``; with ``keep_path=False`` the path and query too (webhook URLs, whose
    path is the credential: ``https://hooks.slack.com/services/T/B/SECRET``).

    ``kafka://user:pw@h1:9092,h2:9092?linger_ms=5`` -> ``kafka://user:***@h1:9092,h2:9092?linger_ms=5``.
    Text without a scheme is read as ``host/path``, so the same parts are hidden.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:  # "user:pw@host:9092", "hooks.slack.com/services/...": read as if it had one
        rest = url
    prefix = f"{scheme}://" if sep else ""
    netloc, slash, path = rest.partition("/")
    path_and_query = slash + path
    query = ""
    if "?" in netloc:  # no path: kafka://host:9092?linger_ms=5
        netloc, _, query = netloc.partition("?")
    elif "?" in path_and_query:
        path_and_query, _, query = path_and_query.partition("?")
    userinfo, at, hosts = netloc.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{hosts}" if colon else f"{MASK}@{hosts}"
    if not keep_path:
        return f"{prefix}{netloc}" + (f"/{MASK}" if path_and_query.strip("/") or query else "")
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if _SECRET_NAME.search(k) else v) for k, v in pairs], safe="*")
        return f"{prefix}{netloc}{path_and_query}?{query}"
    return f"{prefix}{netloc}{path_and_query}"
