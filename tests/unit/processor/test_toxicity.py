"""Toxicity without scikit-learn: the same probabilities as alt-profanity-check's."""

from __future__ import annotations

import random
import subprocess
import sys

import numpy as np

from llmloop.testing.corpus import long_completions
from llmloop_processor.toxicity import model


def test_probabilities_equal_profanity_checks_own() -> None:
    from profanity_check import predict_prob

    texts = [t for pair in long_completions("programming", 80, 2) for t in pair] + [
        "You idiot, this is shit!",
        "what the f*** is wrong with you, moron",
        "I love this recipe",
        "",
        "a",  # no token of the vocabulary
        "STUPID stupid Stupid!!!",
        "Ünïcode wörds ärë fïne, dämn",
    ]
    # Words glued by every kind of character: a token is wherever \w\w+ stops.
    rng = random.Random(4)
    words = str.split("shit idiot damn stupid moron hell love recipe x i fuck ass the a")
    glue = [*"_-'. ,;:!?/()0123456789\t\n\x01", "é", "  ", ""]  # \x01: the batch separator
    texts += [
        "".join(rng.choice([w, w.upper(), w.title()]) + rng.choice(glue)
                for w in rng.choices(words, k=rng.randint(1, 10)))
        for _ in range(1500)
    ]  # fmt: skip
    ours, theirs = model()(texts), predict_prob(texts)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    assert max(ours) > 0.9 and min(ours) < 0.1  # both ends of the scale are exercised


def test_the_feature_worker_never_loads_scikit_learn_arrow_or_the_event_models() -> None:
    # What the worker process imports is what it holds resident (issue 18: the tree's RSS).
    heavy = ("sklearn", "scipy", "pandas", "joblib", "pyarrow", "pydantic")
    code = (
        "import sys\n"
        "from llmloop_processor.features import text_features\n"
        "text_features(['you idiot, she said'], ['damn, sorry, I cannot help'])\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
