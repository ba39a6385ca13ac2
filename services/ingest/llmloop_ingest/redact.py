"""PII redaction before an event leaves ingest: emails, phone numbers, cards, IP addresses.

Patterns are deliberately conservative: a card number must pass the Luhn
check, a phone number needs 8+ digits in a phone-like shape, an IPv4 address
needs four octets of 0-255. What is replaced becomes ``[EMAIL]``, ``[PHONE]``,
``[CARD]``, ``[IP]``, so the text stays readable for drift and feedback analysis.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from typing import Any

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_IPV4 = re.compile(r"(?<!\d\.)(?<!\d)(?:\d{1,3}\.){3}\d{1,3}(?!\.?\d)")
_IPV6 = re.compile(r"(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$|^\d{2}[./-]\d{2}[./-]\d{4}$")
_PHONE = re.compile(r"(?<![\w+])\+?\(?\d[\d ().-]{6,}\d(?!\w)")

# Which fields of an ingest event hold free text a user may have typed.
_TEXT_FIELDS = ("prompt", "completion", "comment", "correction")


def luhn_ok(digits: str) -> bool:
    """Whether ``digits`` pass the Luhn checksum that every card number carries."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def redact_text(text: str, counts: Counter[str]) -> str:
    """``text`` with PII replaced; ``counts`` gains one per replacement, by kind."""
    if not text:
        return text

    def email(m: re.Match[str]) -> str:
        counts["email"] += 1
        return "[EMAIL]"

    def card(m: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            counts["card"] += 1
            return "[CARD]"
        return m.group()

    def ipv4(m: re.Match[str]) -> str:
        try:
            ipaddress.IPv4Address(m.group())
        except ValueError:
            return m.group()
        counts["ip"] += 1
        return "[IP]"

    def ipv6(m: re.Match[str]) -> str:
        try:
            ipaddress.IPv6Address(m.group())
        except ValueError:
            return m.group()
        counts["ip"] += 1
        return "[IP]"

    def phone(m: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", m.group())
        if 8 <= len(digits) <= 15 and not _DATE.match(m.group().strip()):
            counts["phone"] += 1
            return "[PHONE]"
        return m.group()

    # Order matters: cards and IPs before phones, whose pattern would swallow them.
    text = _EMAIL.sub(email, text)
    text = _CARD.sub(card, text)
    text = _IPV4.sub(ipv4, text)
    text = _IPV6.sub(ipv6, text)
    return _PHONE.sub(phone, text)


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
