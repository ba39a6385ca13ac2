"""Personal data in free text: found by kind, or replaced by a placeholder.

One detector for the whole loop: ingest redacts with it before an event leaves
(when a project asks), the processor flags the kinds it sees, and retraining
keeps any pair whose chosen side holds some out of its datasets. Patterns aim
at precision: a card number must pass the Luhn check, a phone number needs 8-15
digits in a phone-like shape and is not a date, an IP address must parse. What
is replaced becomes ``[EMAIL]``, ``[IBAN]``, ``[CARD]``, ``[SSN]``, ``[IP]``,
``[PHONE]``, so the text stays readable for drift and feedback analysis.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,3})?\b")
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_SSN = re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])")
_IPV4 = re.compile(r"(?<!\d\.)(?<!\d)(?:\d{1,3}\.){3}\d{1,3}(?!\.?\d)")
_IPV6 = re.compile(r"(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$|^\d{2}[./-]\d{2}[./-]\d{4}$")
_PHONE = re.compile(r"(?<![\w+])\+?\(?\d[\d ().-]{6,}\d(?!\w)")


def luhn_ok(digits: str) -> bool:
    """Whether ``digits`` pass the Luhn checksum that every card number carries."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _is_card(text: str) -> bool:
    digits = _digits(text)
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_phone(text: str) -> bool:
    return 8 <= len(_digits(text)) <= 15 and not _DATE.match(text.strip())


def _always(_: str) -> bool:
    return True


# Order matters: the longer, stricter shapes go before phones, whose pattern would
# swallow them. The last column is a cheap necessary condition on the text (its
# digit count, a character it must hold): redaction and the processor's flags run on
# every text, the patterns cost tens of microseconds each on a long answer, and most
# texts fail the condition. Replacing only removes digits, so the count taken before
# the first pattern stays a valid bound for the rest.
_DETECTORS: list[tuple[str, re.Pattern[str], Callable[[str], bool], Callable[[str, int], bool]]] = [
    ("email", _EMAIL, _always, lambda text, digits: "@" in text),
    ("iban", _IBAN, _always, lambda text, digits: digits >= 2),
    ("card", _CARD, _is_card, lambda text, digits: digits >= 13),
    ("ssn", _SSN, _always, lambda text, digits: digits >= 9 and "-" in text),
    ("ip", _IPV4, _is_ip, lambda text, digits: digits >= 4 and text.count(".") >= 3),
    ("ip", _IPV6, _is_ip, lambda text, digits: text.count(":") >= 2),
    ("phone", _PHONE, _is_phone, lambda text, digits: digits >= 8),
]


def _count_digits(text: str) -> int:
    # What the patterns' \d matches: ten C scans for ASCII text, any Unicode digit else.
    if text.isascii():
        return sum(text.count(d) for d in "0123456789")
    return len(_ANY_DIGIT.findall(text))


_ANY_DIGIT = re.compile(r"\d")


def _replacer(
    kind: str, accept: Callable[[str], bool], counts: Counter[str]
) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        if not accept(match.group()):
            return match.group()
        counts[kind] += 1
        return f"[{kind.upper()}]"

    return replace


def redact_text(text: str, counts: Counter[str]) -> str:
    """``text`` with PII replaced; ``counts`` gains one per replacement, by kind."""
    digits = _count_digits(text)
    for kind, pattern, accept, could_match in _DETECTORS:
        if text and could_match(text, digits):
            text = pattern.sub(_replacer(kind, accept, counts), text)
    return text


def kinds(text: str) -> list[str]:
    """The kinds of personal data in ``text``, sorted; never the values."""
    counts: Counter[str] = Counter()
    redact_text(text, counts)
    return sorted(counts)
