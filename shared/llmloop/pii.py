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
from collections.abc import Callable, MutableMapping

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


# Every detector but email and IPv6 needs a digit, and its matches hold only characters
# of one small set (IBAN: A-Z, digits, spaces; card, SSN, IPv4, phone: digits and
# " .()+-"). So in ASCII text a match lies inside one maximal run of those characters
# that holds a digit: a window. Prose has few digits and lower-case letters end every
# run, so the windows are a few short spans; a pattern that finds nothing in any window
# finds nothing in the text, and is skipped. (Searching a window may find a match the
# whole text has not, at its end: then the pattern runs on the whole text, which
# decides. It never misses one: a window search sees the text before the window.)
# Other texts, and the two patterns without a digit, have cheaper necessary conditions:
# the digit count, an @, two colons with at most four hex digits between them.
_RUN_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ .()+-"
_MASK = bytes.maketrans(
    bytes(range(256)),
    bytes(
        ord("d") if chr(c).isdigit() and c < 128 else ord("u") if c in _RUN_CHARS else ord("x")
        for c in range(256)
    ),
)
_HEX = frozenset("0123456789abcdefABCDEF")


def _windows(mask: bytes) -> list[tuple[int, int, int]]:
    """The spans of a text (its ``_MASK`` translation) where a digit-bearing match could
    lie, with the number of digits each holds (a match's digits are all in its window)."""
    out = []
    i = mask.find(b"d")
    while i != -1:
        lo = mask.rfind(b"x", 0, i) + 1
        hi = mask.find(b"x", i)
        hi = len(mask) if hi == -1 else hi
        out.append((lo, hi, mask.count(b"d", lo, hi)))
        i = mask.find(b"d", hi)
    return out


def _colon_pair(text: str) -> bool:
    """Two colons with at most four hex digits between them (every IPv6 match has them)."""
    p = text.find(":")
    while p != -1:
        q = text.find(":", p + 1, p + 6)
        if q != -1 and all(c in _HEX for c in text[p + 1 : q]):
            return True
        p = text.find(":", p + 1)
    return False


class _Text:
    """What the necessary conditions read of a text: computed once, again after a change.

    The windows only when a pattern's digit count and shape pass on the whole text:
    most texts hold too few digits for any pattern, and finding windows cost more than
    those two checks (issue 14)."""

    __slots__ = ("_windows", "ascii", "digits", "mask", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.ascii = text.isascii()
        self.mask = text.encode("ascii").translate(_MASK) if self.ascii else b""
        self.digits = self.mask.count(b"d") if self.ascii else len(_ANY_DIGIT.findall(text))
        self._windows: list[tuple[int, int, int]] | None = None

    def could_hold(self, pattern: re.Pattern[str], min_digits: int, shape: bytes = b"d") -> bool:
        """Whether ``pattern`` (digit-bearing, ``min_digits`` at least, every match of
        which holds ``shape`` in ``_MASK`` letters) may match."""
        if self.digits < min_digits:
            return False
        if not self.ascii:
            return True
        if shape not in self.mask:
            return False
        if self._windows is None:
            self._windows = _windows(self.mask)
        text = self.text
        return any(
            digits >= min_digits and pattern.search(text, lo, hi)
            for lo, hi, digits in self._windows
        )


# Order matters: the longer, stricter shapes go before phones, whose pattern would
# swallow them. The last two columns are the necessary conditions on the text (above):
# the digits a match holds at least, then a check of the text (given that number);
# redaction and the processor's flags run on every text, the patterns cost tens of
# microseconds each on a long answer, and most texts fail the conditions (the digit
# count first: most texts hold too few digits for most patterns, and it costs no call).
_Gate = Callable[[_Text, int], bool]
_DETECTORS: list[tuple[str, re.Pattern[str], Callable[[str], bool], int, _Gate]] = [
    ("email", _EMAIL, _always, 0, lambda t, _: "@" in t.text),
    # An IBAN starts with two capitals and two digits ("uudd" in the mask).
    ("iban", _IBAN, _always, 2, lambda t, n: t.could_hold(_IBAN, n, b"uudd")),
    ("card", _CARD, _is_card, 13, lambda t, n: t.could_hold(_CARD, n)),
    ("ssn", _SSN, _always, 9, lambda t, n: "-" in t.text and t.could_hold(_SSN, n)),
    ("ip", _IPV4, _is_ip, 4, lambda t, n: t.text.count(".") >= 3 and t.could_hold(_IPV4, n)),
    ("ip", _IPV6, _is_ip, 0, lambda t, _: _colon_pair(t.text)),
    ("phone", _PHONE, _is_phone, 8, lambda t, n: t.could_hold(_PHONE, n)),
]


_ANY_DIGIT = re.compile(r"\d")


def _replacer(
    kind: str, accept: Callable[[str], bool], counts: MutableMapping[str, int]
) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        if not accept(match.group()):
            return match.group()
        counts[kind] = counts.get(kind, 0) + 1
        return f"[{kind.upper()}]"

    return replace


def redact_text(text: str, counts: MutableMapping[str, int]) -> str:
    """``text`` with PII replaced; ``counts`` gains one per replacement, by kind."""
    if not text:
        return text
    seen = _Text(text)
    for kind, pattern, accept, min_digits, could_match in _DETECTORS:
        if seen.digits >= min_digits and could_match(seen, min_digits):
            replaced = pattern.sub(_replacer(kind, accept, counts), seen.text)
            if replaced != seen.text:
                seen = _Text(replaced)
    return seen.text


def kinds(*texts: str) -> list[str]:
    """The kinds of personal data in any of ``texts``, sorted; never the values.

    Several texts (a prompt and its answer) are searched as one, joined by newlines:
    no pattern matches a newline, and at one each behaves as at the start or end of a
    text, so the kinds are those of the texts one by one, for one pass's cost."""
    counts: dict[str, int] = {}  # a plain dict: a Counter per text cost more than the search
    redact_text("\n".join(texts), counts)
    return sorted(counts)
