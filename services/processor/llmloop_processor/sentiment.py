"""Sentiment: VADER's compound score, the same numbers as the original, 5x faster.

VADER (``vaderSentiment``) is pure Python and was the processor's most expensive
scalar feature: about 1 ms for a realistic prompt and answer (issue 18). Its
rules are kept exactly; what is gone is the work they never needed:

* its negation and idiom checks lower-case the text's whole word list for every
  sentiment word (quadratic in the text's length); here the words are lowered
  once and each check reads the three words before the current one (two after,
  for idioms);
* it rebuilds the text one character at a time to replace emojis, even when
  there are none; ASCII text skips that pass (no emoji is ASCII);
* it runs its per-word rules for every word and scans a 60-word negation list
  per check; here only lexicon words get the rules, and negations are a set.

``tests/unit/processor/test_features.py`` checks equality with the original on
realistic answers and on the rules' corner cases (negation, boosters, "but",
"least", idioms, capitals, emojis). Only the compound score is computed.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from functools import cache
from itertools import compress
from typing import Any

_PUNCTUATION = string.punctuation
_KNOWN_WORDS = 50_000  # distinct words remembered (about 12 MB at most; real text repeats)
# A word as the rules see it: form, lower-cased, upper-case, in the lexicon, changes
# nothing before a sentiment word, first word of an idiom or multi-word booster, lexicon value.
_Word = tuple[str, str, bool, bool, bool, bool, float]


class FastVader:
    """``SentimentIntensityAnalyzer().polarity_scores(text)["compound"]``, faster."""

    def __init__(self) -> None:
        from vaderSentiment import vaderSentiment as vs

        self._vs = vs
        original = vs.SentimentIntensityAnalyzer()
        self.lexicon: dict[str, float] = original.lexicon
        self.emojis: dict[str, str] = original.emojis
        self._original = original
        self._negate = frozenset(vs.NEGATE)
        # The first two words of every multi-word idiom or booster: the idiom check can
        # change nothing where no two neighbouring words are such a pair (every phrase it
        # looks up has two words or more, and starts with one).
        phrases = [k.split(" ") for k in (*vs.SPECIAL_CASES, *vs.BOOSTER_DICT) if " " in k]
        self._pairs = frozenset((p[0], p[1]) for p in phrases)
        self._firsts = frozenset(p[0] for p in phrases)
        # Words that change nothing as one of the three before a sentiment word: not a
        # booster, a negation, or a word a rule names. Behind such words only (and no
        # idiom in reach), a word's valence is its lexicon value: no rule runs.
        named = {"no", "least", "so", "this", "never", "without", "doubt"}
        self._changes = frozenset(vs.BOOSTER_DICT) | self._negate | named
        self._words: dict[str, _Word] = {}

    def compound(self, text: str) -> float:
        """The compound score of ``text`` in [-1, 1], rounded to 4 places as VADER does."""
        vs = self._vs
        if not text.isascii():
            text = self._without_emojis(text)
        text = text.strip()
        # Per word: its form (punctuation stripped unless that leaves two characters or
        # fewer), lower-cased, upper-case or not, and what the rules need to know of it.
        # Looked up, not recomputed: words repeat. Then one tuple per property.
        known, learn = self._words, self._learn
        rows = [known.get(w) or learn(w) for w in text.split()]
        if not rows:
            return 0.0
        words, lower, upper, lexical, inert, first, values = zip(*rows, strict=True)
        if True not in lexical:  # no lexicon word: every valence is 0, and so is the score
            return 0.0
        n = len(words)
        caps = sum(upper)
        cap_diff = 0 < n - caps < n
        sentiments: list[float] = [0] * n
        # Where a phrase starts (its first two words neighbours): the idiom check can
        # change only the words within its reach (most texts hold none).
        pairs = self._pairs
        starts = [j for j in compress(range(n - 1), first) if (lower[j], lower[j + 1]) in pairs]
        if (
            all(inert)
            and not (cap_diff and any(compress(upper, lexical)))
            and "but" not in lower
            and not starts
        ):  # no rule applies to any word (see __init__): the lexicon values (most texts)
            sentiments = list(values)
        else:
            self._rules(words, lower, upper, lexical, inert, starts, cap_diff, sentiments)
            if "but" in lower:
                sentiments = _but_check(lower.index("but"), sentiments)
        total = float(sum(sentiments))
        if total:  # the emphasis of ! and ? goes with the sign; nothing to emphasise at 0
            emphasis = self._original._punctuation_emphasis(text)
            total += emphasis if total > 0 else -emphasis
        return round(vs.normalize(total), 4)

    def _rules(
        self,
        words: Sequence[str],
        lower: Sequence[str],
        upper: Sequence[bool],
        lexical: Sequence[bool],
        inert: Sequence[bool],
        starts: Sequence[int],
        cap_diff: bool,
        sentiments: list[float],
    ) -> None:
        """Each lexicon word's valence in ``sentiments``, its rules applied (``starts``:
        where the text's phrases start)."""
        vs, lexicon, last = self._vs, self.lexicon, len(words) - 1
        for i in compress(range(len(words)), lexical):
            low = lower[i]
            if low in vs.BOOSTER_DICT or (low == "kind" and i < last and lower[i + 1] == "of"):
                continue
            lo = max(0, i - 3)
            if (
                low != "no" and all(inert[lo:i]) and not (starts and _near(starts, i))
            ):  # no rule applies (see __init__): the lexicon value, with the capitals rule
                valence = lexicon[low]
                if upper[i] and cap_diff:
                    valence = valence + vs.C_INCR if valence > 0 else valence - vs.C_INCR
                sentiments[i] = valence
            else:
                sentiments[i] = self._valence(words, lower, i, cap_diff, starts)

    def _learn(self, word: str) -> _Word:
        stripped = word.strip(_PUNCTUATION)
        form = word if len(stripped) <= 2 else stripped
        low = form.lower()
        inert = low not in self._changes and "n't" not in low
        value = self.lexicon.get(low, 0.0)
        row = (
            form,
            low,
            form.isupper(),
            low in self.lexicon,
            inert,
            low in self._firsts,
            value,
        )
        if len(self._words) < _KNOWN_WORDS:
            self._words[word] = row
        return row

    def _valence(
        self,
        words: Sequence[str],
        lower: Sequence[str],
        i: int,
        cap_diff: bool,
        starts: Sequence[int],
    ) -> float:
        # SentimentIntensityAnalyzer.sentiment_valence for a lexicon word, rule by rule.
        vs, lexicon, low = self._vs, self.lexicon, lower[i]
        valence = lexicon[low]
        if low == "no" and i != len(words) - 1 and lower[i + 1] in lexicon:
            valence = 0.0
        if (
            (i > 0 and lower[i - 1] == "no")
            or (i > 1 and lower[i - 2] == "no")
            or (i > 2 and lower[i - 3] == "no" and lower[i - 1] in ("or", "nor"))
        ):
            valence = lexicon[low] * vs.N_SCALAR
        if words[i].isupper() and cap_diff:
            valence = valence + vs.C_INCR if valence > 0 else valence - vs.C_INCR
        for start_i in range(3):
            k = i - (start_i + 1)
            if k < 0 or lower[k] in lexicon:
                continue
            scalar = vs.BOOSTER_DICT.get(lower[k], 0.0)  # scalar_inc_dec
            if scalar:
                if valence < 0:
                    scalar *= -1
                if words[k].isupper() and cap_diff:
                    scalar = scalar + vs.C_INCR if valence > 0 else scalar - vs.C_INCR
                scalar *= (1.0, 0.95, 0.9)[start_i]
            valence = self._negation(valence + scalar, lower, start_i, i)
            if start_i == 2 and starts and _near(starts, i):
                lo = i - 3
                valence = vs.SentimentIntensityAnalyzer._special_idioms_check(
                    valence, lower[lo : i + 3], 3
                )
        # _least_check
        if i > 1 and lower[i - 1] not in lexicon and lower[i - 1] == "least":
            if lower[i - 2] != "at" and lower[i - 2] != "very":
                valence *= vs.N_SCALAR
        elif i > 0 and lower[i - 1] not in lexicon and lower[i - 1] == "least":
            valence *= vs.N_SCALAR
        return float(valence)

    def _negation(self, valence: float, lower: Sequence[str], start_i: int, i: int) -> float:
        # SentimentIntensityAnalyzer._negation_check, on the three words before word i.
        n_scalar = self._vs.N_SCALAR
        w1, w2 = lower[i - 1], lower[i - 2] if i > 1 else ""
        if start_i == 0:
            if self._negated(w1):
                valence *= n_scalar
        elif start_i == 1:
            if w2 == "never" and w1 in ("so", "this"):
                valence *= 1.25
            elif not (w2 == "without" and w1 == "doubt") and self._negated(w2):
                valence *= n_scalar
        else:
            w3 = lower[i - 3]
            if (w3 == "never" and w2 in ("so", "this")) or w1 in ("so", "this"):
                valence *= 1.25
            elif not (w3 == "without" and "doubt" in (w2, w1)) and self._negated(w3):
                valence *= n_scalar
        return valence

    def _negated(self, word: str) -> bool:  # vaderSentiment.negated([word])
        return word in self._negate or "n't" in word

    def _without_emojis(self, text: str) -> str:
        # The original's emoji pass: each emoji becomes its description.
        out, prev_space = [], True
        for ch in text:
            description = self.emojis.get(ch)
            if description is None:
                out.append(ch)
                prev_space = ch == " "
            else:
                out.append(description if prev_space else " " + description)
                prev_space = False
        return "".join(out)


def _near(starts: Sequence[int], i: int) -> bool:
    """Whether a phrase starting at one of ``starts`` can lie within words i-3 .. i+2, the
    idiom check's reach: it starts at i-3 .. i+1."""
    return any(i - 3 <= j <= i + 1 for j in starts)


def _but_check(bi: int, sentiments: list[float]) -> list[float]:
    """``SentimentIntensityAnalyzer._but_check``: halve what comes before the first "but",
    raise what comes after by half. The original rewrites, for each word in turn, the
    first word that has the same valence (``list.index``), quadratic in the text and
    quirky when two words share one; the quirk is kept. Zeros are skipped: rewriting a
    zero leaves it zero."""
    nonzero = [p for p, v in enumerate(sentiments) if v]
    for p in nonzero:
        value = sentiments[p]
        si = next(j for j in nonzero if sentiments[j] == value)
        if si < bi:
            sentiments[si] = value * 0.5
        elif si > bi:
            sentiments[si] = value * 1.5
    return sentiments


@cache
def analyzer() -> Any:
    """The one analyzer of this process (its lexicon loads on first use)."""
    return FastVader()


_SCORES: dict[int, float] = {}
CACHE_SIZE = 65_536


def compound(text: str) -> float:
    """VADER's compound score of ``text`` (its first 5,000 characters), cached: canned
    answers, refusals and templated prompts repeat. The cache holds the text's hash, not
    the text: 65,536 realistic texts kept ~100 MB alive in the feature worker (issue 18);
    two texts of one 64-bit hash in 65,536 are a 1-in-10^10 chance. Emptied when full."""
    key = hash(text)
    score = _SCORES.get(key)
    if score is None:
        if len(_SCORES) >= CACHE_SIZE:
            _SCORES.clear()
        score = _SCORES[key] = float(analyzer().compound(text[:5000]))
    return score


def clear_cache() -> None:
    """Forget the cached scores (benchmarks measure the uncached path)."""
    _SCORES.clear()
