"""Our drift numbers agree with Evidently 0.7's methods on the same real embeddings.

Tolerances: MMD^2 within 15% (+0.001 absolute) of ``MMDDriftMethod`` (we use random
Fourier features and a pooled median bandwidth, Evidently the exact kernel and a
cross-sample median); domain-classifier ROC AUC within 0.05 of ``ModelDriftMethod``
(a ridge classifier with 2-fold CV against SGD on a 50% split).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmloop_processor.drift import classifier_auc, mmd_test


def _df(x: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(x, columns=[f"e{i}" for i in range(x.shape[1])])


@pytest.mark.parametrize("share", [0.0, 0.25, 0.5, 1.0])
def test_mmd_and_classifier_auc_agree_with_evidently(topic_embeddings, share: float) -> None:
    from evidently.metrics.embeddings import MMDDriftMethod, ModelDriftMethod

    base, other = topic_embeddings["cooking"], topic_embeddings["programming"]
    moved = int(500 * share)
    ref = base[:500]
    cur = np.vstack([base[500 : 1000 - moved], other[:moved]])
    ours = mmd_test(ref, cur, permutations=50)
    theirs, _, _ = MMDDriftMethod()(_df(cur), _df(ref))
    assert abs(ours.mmd2 - theirs) <= 0.15 * theirs + 1e-3, (ours.mmd2, theirs)
    # ModelDriftMethod mutates the frames it is given: copies.
    their_auc, _, _ = ModelDriftMethod()(_df(cur).copy(), _df(ref).copy())
    assert abs(classifier_auc(ref, cur)[0] - their_auc) <= 0.05
