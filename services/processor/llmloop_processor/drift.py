"""Drift statistics: pure functions over numpy arrays, no I/O, no broker.

Embedding drift compares a reference window with the current one three ways:

* MMD with an RBF kernel whose bandwidth is the median heuristic, and a
  permutation p-value. The kernel is approximated with random Fourier features
  (Rahimi & Recht), so memory and time stay linear in the number of samples:
  a 10k x 10k window never builds a 20k x 20k kernel. The permutation test is
  exact in size whatever the approximation, because it permutes the statistic
  it reports.
* the cosine distance between the two centroids, cheap and easy to read;
* the ROC AUC of a domain classifier (ridge classifier, 2-fold
  cross-validated) that tries to tell the windows apart: 0.5 means it cannot.

Scalar features use PSI (reference-quantile bins) and the two-sample KS test.

What an alert can rest on: the MMD permutation p-value (valid whatever the
kernel approximation), its ``score`` (MMD² over the 95th percentile of the
permutation null: a multiple of chance at this sample size, comparable across
embedding models, unlike raw MMD²), and the classifier's out-of-fold AUC with a
Mann-Whitney p-value. The centroid distance and PSI are descriptive: PSI is
corrected for its small-sample expectation, the centroid distance is not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating]

# Above this many rows the median of pairwise distances is taken on a sample:
# the median of 500 x 500 distances is stable to a few percent.
MEDIAN_SAMPLE = 500
PSI_BINS = 10
PSI_EPS = 1e-4
PSI_MIN_PER_BIN = 10  # reference rows per bin, or fewer bins
# A p-value at or below this after the first permutations (but not beyond all of them)
# gets more of them, so a real drift reaches the p-values a multiplicity correction asks for.
EXTEND_BELOW = 0.05
NULL_QUANTILE = 0.95


@dataclass(frozen=True)
class MMDResult:
    """MMD^2 (unbiased), its permutation p-value, the null's scale and the bandwidth used."""

    mmd2: float
    p_value: float
    sigma: float
    n_ref: int
    n_cur: int
    null_q95: float = float("nan")  # 95th percentile of MMD^2 over the permutations
    permutations: int = 0

    @property
    def score(self) -> float:
        """MMD^2 as a multiple of the null's 95th percentile: > 1 is beyond chance."""
        scale = max(self.null_q95, 1e-12)
        return self.mmd2 / scale


def median_sigma(x: Array, y: Array, rng: np.random.Generator) -> float:
    """The median heuristic: sigma = median Euclidean distance between pooled points."""
    pooled = np.vstack([x, y])
    if len(pooled) > MEDIAN_SAMPLE:
        pooled = pooled[rng.choice(len(pooled), MEDIAN_SAMPLE, replace=False)]
    sq = np.sum(pooled**2, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * pooled @ pooled.T, 0.0)
    upper = d2[np.triu_indices(len(pooled), k=1)]
    sigma = float(np.sqrt(np.median(upper))) if upper.size else 1.0
    return sigma if sigma > 0 else 1.0


def rff(z: Array, sigma: float, features: int, rng: np.random.Generator) -> Array:
    """Random Fourier features phi with phi(a).phi(b) ~= exp(-|a-b|^2 / sigma^2)."""
    d = z.shape[1]
    # k(a, b) = exp(-gamma |a-b|^2) with gamma = 1/sigma^2 (Evidently's convention),
    # whose spectral density is N(0, 2 gamma I).
    w = rng.normal(0.0, np.sqrt(2.0) / sigma, size=(d, features)).astype(np.float32)
    b = rng.uniform(0.0, 2 * np.pi, size=features).astype(np.float32)
    out = z.astype(np.float32, copy=False) @ w
    out += b
    np.cos(out, out=out)
    out *= np.float32(np.sqrt(2.0 / features))
    return out


def _mmd2u(sum_x: Array, sum_y: Array, sq_x: float, sq_y: float, m: int, n: int) -> Array:
    """Unbiased MMD^2 from feature sums (vectorised over rows of sum_x / sum_y)."""
    kxx = (np.sum(sum_x**2, axis=-1) - sq_x) / (m * (m - 1))
    kyy = (np.sum(sum_y**2, axis=-1) - sq_y) / (n * (n - 1))
    kxy = np.sum(sum_x * sum_y, axis=-1) / (m * n)
    return kxx + kyy - 2.0 * kxy


def mmd_test(
    ref: Array,
    cur: Array,
    *,
    permutations: int = 200,
    max_permutations: int = 2_000,
    features: int = 1024,
    seed: int = 0,
) -> MMDResult:
    """MMD^2_u between two samples with an RBF kernel and a permutation p-value.

    Args:
        ref: reference sample, shape (m, d).
        cur: current sample, shape (n, d).
        permutations: label shuffles for the p-value; its resolution is 1/(permutations+1).
        max_permutations: shuffles when the first ones put p at or below ``EXTEND_BELOW``
            with some of them beyond the observed value: only borderline windows pay for
            the finer resolution.
        features: random Fourier features; more is closer to the exact kernel.
        seed: fixes the features and the shuffles, so a window's result is reproducible.
    """
    m, n = len(ref), len(cur)
    if m < 2 or n < 2:
        raise ValueError(f"MMD needs at least 2 samples per window (got {m} and {n})")
    rng = np.random.default_rng(seed)
    sigma = median_sigma(ref, cur, rng)
    phi = rff(np.vstack([ref, cur]), sigma, features, rng)
    # Each point's own term phi_i.phi_i, removed for the unbiased estimate; the sum
    # over a group of the diagonal is needed per permutation too.
    diag = np.sum(phi * phi, axis=1)
    total, diag_total = phi.sum(axis=0), float(diag.sum())
    sum_x = phi[:m].sum(axis=0)
    observed = float(
        _mmd2u(sum_x, total - sum_x, diag[:m].sum(), diag_total - diag[:m].sum(), m, n)
    )
    null: list[np.ndarray] = []
    chunk = 64  # permutations per matrix product: bounded memory (chunk x (m+n))

    def shuffle(count: int) -> None:
        for start in range(0, count, chunk):
            k = min(chunk, count - start)
            mask = np.zeros((k, m + n), dtype=np.float32)
            for row in range(k):
                mask[row, rng.permutation(m + n)[:m]] = 1.0
            sx = mask @ phi
            dx = mask @ diag
            null.append(_mmd2u(sx, total - sx, dx, diag_total - dx, m, n))

    shuffle(permutations)
    stats = np.concatenate(null)
    exceed = int(np.sum(stats >= observed))
    # Beyond every shuffle (exceed == 0), p is already at its floor 1/(permutations+1);
    # only a borderline p gets the finer resolution, where it can change a verdict.
    if (
        max_permutations > permutations
        and exceed
        and (exceed + 1) / (permutations + 1) <= EXTEND_BELOW
    ):
        shuffle(max_permutations - permutations)
        stats = np.concatenate(null)
    return MMDResult(
        mmd2=observed,
        p_value=(int(np.sum(stats >= observed)) + 1) / (len(stats) + 1),
        sigma=sigma,
        n_ref=m,
        n_cur=n,
        null_q95=float(np.quantile(stats, NULL_QUANTILE)),
        permutations=len(stats),
    )


def centroid_cosine_distance(ref: Array, cur: Array) -> float:
    """1 - cos(mean(ref), mean(cur)): 0 when the windows point the same way on average."""
    a, b = ref.mean(axis=0), cur.mean(axis=0)
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    return 0.0 if denom == 0 else float(1.0 - np.dot(a, b) / denom)


def classifier_auc(
    ref: Array, cur: Array, *, seed: int = 0, max_per_side: int = 5_000
) -> tuple[float, float]:
    """ROC AUC of a linear classifier telling the windows apart, and its p-value.

    Out-of-fold scores only (2-fold, stratified), so an overfit classifier cannot
    claim drift; the p-value is the one-sided Mann-Whitney test that the current
    window's out-of-fold scores rank above the reference's (AUC = U / (m n)).
    Rows must already be one per duplicate cluster and session (see
    ``exchangeable``): near-duplicates on both sides of a fold would let the
    classifier recognise rows instead of windows. A ridge classifier (closed form)
    rather than a logistic regression: the same linear boundary for this purpose,
    20-30x faster on 384-d embeddings.
    """
    from scipy.stats import mannwhitneyu
    from sklearn.linear_model import RidgeClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    rng = np.random.default_rng(seed)
    if len(ref) > max_per_side:
        ref = ref[rng.choice(len(ref), max_per_side, replace=False)]
    if len(cur) > max_per_side:
        cur = cur[rng.choice(len(cur), max_per_side, replace=False)]
    x = np.vstack([ref, cur])
    y = np.r_[np.zeros(len(ref)), np.ones(len(cur))]
    folds = StratifiedKFold(n_splits=2, shuffle=True, random_state=seed)
    scores = cross_val_predict(
        RidgeClassifier(alpha=1.0), x, y, cv=folds, method="decision_function"
    )
    test = mannwhitneyu(scores[y == 1], scores[y == 0], alternative="greater")
    auc = float(test.statistic) / (len(cur) * len(ref))
    return auc, float(test.pvalue)


def psi(ref: Array, cur: Array, bins: int = PSI_BINS) -> float:
    """Population stability index over reference-quantile bins, small-sample corrected.

    At most one bin per ``PSI_MIN_PER_BIN`` reference rows, and NaN when fewer than
    two bins remain (a feature with one or two values has no distribution to
    compare). Two samples of one distribution give PSI about (bins - 1)(1/m + 1/n)
    (its chi-square approximation), so that expectation is subtracted: 0 means no
    more change than sampling explains. Descriptive: no shipped rule reads it.
    """
    ref, cur = np.asarray(ref, dtype=float), np.asarray(cur, dtype=float)
    ref, cur = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    bins = min(bins, ref.size // PSI_MIN_PER_BIN)
    if bins < 2 or cur.size == 0:
        return float("nan")
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    k = len(edges) + 1
    if k < 2:
        return float("nan")
    p = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=k)
    q = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=k)
    p = np.maximum(p / p.sum(), PSI_EPS)
    q = np.maximum(q / q.sum(), PSI_EPS)
    raw = float(np.sum((q - p) * np.log(q / p)))
    return max(raw - (k - 1) * (1.0 / ref.size + 1.0 / cur.size), 0.0)


def ks(ref: Array, cur: Array) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and p-value (NaNs dropped)."""
    from scipy.stats import ks_2samp

    ref, cur = np.asarray(ref, dtype=float), np.asarray(cur, dtype=float)
    ref, cur = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    if ref.size == 0 or cur.size == 0:
        return float("nan"), float("nan")
    result = ks_2samp(ref, cur)
    return float(result.statistic), float(result.pvalue)
