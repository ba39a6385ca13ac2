"""Toxicity: alt-profanity-check's model, with its numbers, without scikit-learn loaded.

``profanity_check`` is a TF-IDF bag of words (lower-cased ``\\w\\w+`` tokens, L2
norm) under five sigmoid-calibrated linear SVMs whose probabilities are averaged.
Loading it imports scikit-learn, SciPy and pandas: about 150 MB resident in the
feature worker for a dot product (issue 18). So its weights are read once from
the installed package (in a short-lived subprocess, which is the only place
scikit-learn is imported), cached on disk under the model files' identity, and
applied here with numpy: the same probabilities (the tests compare them with
``predict_prob``), about twice as fast.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
from collections.abc import Sequence
from functools import cache
from itertools import repeat
from pathlib import Path

import numpy as np

from llmloop_processor.derived import cache_dir, cached_export
from llmloop_processor.words import SEPARATOR, joined_ascii_words

EXPORT_VERSION = 1
_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # the vectorizer's token_pattern


def _model_files() -> list[Path]:
    spec = importlib.util.find_spec("profanity_check")  # found, not imported (that loads it)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("alt-profanity-check is not installed (the processor extra has it)")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    return [data / "vectorizer.joblib", data / "model.joblib"]


def weights_file() -> Path:
    """The exported weights of the installed model, exported first if not cached yet."""
    h = hashlib.sha256(f"v{EXPORT_VERSION}".encode())
    for file in _model_files():
        h.update(file.read_bytes())
    target = cache_dir("toxicity") / h.hexdigest()[:16] / "weights.npz"
    return cached_export(target, [sys.executable, "-m", __name__], "toxicity model")


def export(target: Path) -> None:
    """Write the vocabulary, IDF, and each calibrated SVM's weights to ``target``."""
    from profanity_check import profanity_check as pc

    vectorizer, model = pc.vectorizer, pc.model
    params = vectorizer.get_params()
    expected = {"lowercase": True, "ngram_range": (1, 1), "norm": "l2", "use_idf": True}
    expected |= {"token_pattern": _TOKEN.pattern, "sublinear_tf": False, "binary": False}
    if any(params[k] != v for k, v in expected.items()) or model.method != "sigmoid":
        raise RuntimeError(f"profanity_check's model changed shape: {params}, {model.method}")
    words = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.__getitem__)
    members = model.calibrated_classifiers_
    np.savez_compressed(
        target,
        words=np.array(words),
        idf=vectorizer.idf_,
        coef=np.stack([m.estimator.coef_.ravel() for m in members]),
        intercept=np.array([float(m.estimator.intercept_[0]) for m in members]),
        a=np.array([m.calibrators[0].a_ for m in members]),
        b=np.array([m.calibrators[0].b_ for m in members]),
    )


class Toxicity:
    """Probability of profanity / abuse per text, as ``profanity_check.predict_prob``."""

    def __init__(self, weights: Path) -> None:
        with np.load(weights) as w:
            self.index = {word: i for i, word in enumerate(w["words"].tolist())}
            self._batch_index = {
                word.encode(): i for word, i in self.index.items() if word.isascii()
            }
            self._batch_index[SEPARATOR.encode()] = -2
            self.idf, self.coef = w["idf"], w["coef"]
            self.intercept, self.a, self.b = w["intercept"], w["a"], w["b"]

    def __call__(self, texts: Sequence[str]) -> list[float]:
        # Each text's tokens as vocabulary indices with the text's row, then for the whole
        # batch at once: the term counts per text (unique (text, term) pairs), the TF-IDF,
        # its L2 norm and the five decision values (sums per text by bincount). No
        # per-text Counter: half the time (issue 14).
        rows, term = self._terms(texts)
        n, vocabulary = len(texts), len(self.idf)
        known = term >= 0
        pair = rows[known] * vocabulary + term[known]
        pair, count = np.unique(pair, return_counts=True)
        row, term = pair // vocabulary, pair % vocabulary
        x = count * self.idf[term]
        norm = np.sqrt(np.bincount(row, weights=x * x, minlength=n))
        x /= norm[row]
        decision = (
            np.stack([np.bincount(row, weights=c[term] * x, minlength=n) for c in self.coef])
            + self.intercept[:, None]
        )
        p = 1.0 / (1.0 + np.exp(self.a[:, None] * decision + self.b[:, None]))
        return p.mean(axis=0).tolist()  # type: ignore[no-any-return]

    def _terms(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The tokens of ``texts`` as vocabulary indices (-1: out of vocabulary; one-
        character runs never are in it), and the row of the text each comes from.

        The ASCII texts (the tokens are their \\w runs of two characters or more) are
        split as one batch (``joined_ascii_words``): one pass for all of them, where one
        per text was most of the model's cost on short texts. Others by the regex."""
        lows = [t.lower() for t in texts]
        batch: list[int] = []
        alone: list[int] = []
        for i, low in enumerate(lows):
            (batch if low.isascii() and SEPARATOR not in low else alone).append(i)
        words = joined_ascii_words([lows[i] for i in batch])
        found = np.fromiter(map(self._batch_index.get, words, repeat(-1)), np.int64, len(words))
        # The separators (-2) count the texts: a word's text is the number before it.
        rows = [np.asarray(batch, dtype=np.int64)[np.cumsum(found == -2)]]
        terms = [found]
        for i in alone:
            ids = list(map(self.index.get, _TOKEN.findall(lows[i]), repeat(-1)))
            rows.append(np.full(len(ids), i, dtype=np.int64))
            terms.append(np.array(ids, dtype=np.int64))
        return np.concatenate(rows), np.concatenate(terms)


@cache
def model() -> Toxicity:
    """The process's toxicity model (exported on first use)."""
    return Toxicity(weights_file())


if __name__ == "__main__":
    export(Path(sys.argv[1]))
