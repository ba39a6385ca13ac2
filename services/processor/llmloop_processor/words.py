"""Words of ASCII text, ten times faster than a ``\\w+`` regex, and the same words.

The scalar features split every prompt and answer into words (the demographic
terms, the toxicity model's vocabulary); a regex scan is most of their cost on
realistic lengths (issue 18). In ASCII text ``\\w`` is letters, digits and ``_``,
so mapping every other byte to a space and splitting gives exactly the maximal
``\\w+`` runs, in order. Callers fall back to their regex for other text.
"""

from __future__ import annotations

from collections.abc import Sequence

_NOT_WORD = bytes.maketrans(
    bytes(range(128)),
    bytes(c if chr(c).isalnum() or c == ord("_") else ord(" ") for c in range(128)),
)
# Between the texts of a batch (a control character; a text holding it is split alone).
SEPARATOR = "\x01"
_NOT_WORD_BUT_SEPARATOR = bytes(c if c == ord(SEPARATOR) else _NOT_WORD[c] for c in range(256))


def ascii_words(text: str) -> list[bytes]:
    """The maximal ``\\w+`` runs of ``text``, which must be ASCII (``text.isascii()``)."""
    return text.encode("ascii").translate(_NOT_WORD).split()


def joined_ascii_words(texts: Sequence[str]) -> list[bytes]:
    """The words of ``texts`` (each ASCII, none holding ``SEPARATOR``) in order, with
    ``SEPARATOR`` (encoded) between one text's words and the next's: one translation
    and one split for a batch, where one each per text was most of the cost."""
    joined = f" {SEPARATOR} ".join(texts).encode("ascii")
    return joined.translate(_NOT_WORD_BUT_SEPARATOR).split()
