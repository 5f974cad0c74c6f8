"""AnoVox voxel-level anomaly metrics, exact for small inputs and streaming for whole splits.

Definitions (as AnoVox's benchmark computes them, so numbers compare with its paper):

- AP: scikit-learn's ``average_precision_score``: ``sum_i (R_i - R_{i-1}) P_i`` over
  the distinct score thresholds in descending order; tied scores form one step.
  0 when there are no positives.
- AUROC: area under the ROC curve (trapezoids between distinct thresholds, so ties
  count one half, as ``roc_auc_score``). Undefined (NaN) with a single class.
- FPR95: the false-positive rate at the first threshold t in 1.00, 0.99, ..., 0.00
  (binarising ``score > t``) whose true-positive rate is >= 0.95. 1.0 when no
  threshold reaches it; NaN without positives or negatives.
- F1 and PPV: means over t in 0.25, 0.30, ..., 0.70 (``score > t``); PPV is 0
  where nothing is predicted positive, F1 is ``2 TP / (2 TP + FP + FN)`` (0 when
  undefined).

Pooled scores over a split run to tens of millions of voxels, so
:class:`ScoreHistogram` accumulates per-bin counts of positives and negatives
(bounded memory, mergeable across workers). Its bins are aligned with the 0.01
thresholds, so FPR95, F1 and PPV are exact; AP and AUROC treat scores within one
bin (1e-5 wide by default) as tied, which shifts them by at most that resolution.
:func:`binary_metrics` computes everything exactly from score arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from anovox_perception.errors import ConfigError

__all__ = [
    'F1_THRESHOLDS',
    'FPR_THRESHOLDS',
    'METRIC_KEYS',
    'Curves',
    'ScoreHistogram',
    'binary_metrics',
]

# 1.00, 0.99, ..., 0.00 (rounded so each equals its decimal literal).
FPR_THRESHOLDS = np.round(np.arange(100, -1, -1) / 100.0, 2)
# 0.25, 0.30, ..., 0.70: ten thresholds.
F1_THRESHOLDS = np.round(0.25 + 0.05 * np.arange(10), 2)
METRIC_KEYS = ('AUROC', 'AP', 'FPR95', 'F1', 'PPV', 'voxels')
_TARGET_TPR = 0.95
_MAX_CURVE_POINTS = 2000


@dataclass(frozen=True)
class Curves:
    """ROC and precision-recall curves (at most a few thousand points, for plots)."""

    fpr: np.ndarray
    tpr: np.ndarray
    recall: np.ndarray
    precision: np.ndarray


def _count_above(values: np.ndarray, counts: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Counts with value > t for each threshold t (``values`` ascending, same units as ``thresholds``)."""
    first = np.searchsorted(values, thresholds, side='right')
    suffix = np.concatenate([np.cumsum(counts[::-1])[::-1], [0]]).astype(np.float64)
    return suffix[first]


def _fpr95_index(values: np.ndarray, pos: np.ndarray, fpr_thresholds: np.ndarray) -> int | None:
    """Index of the first of ``fpr_thresholds`` (descending) where TPR >= 0.95; None if none is."""
    hit = np.flatnonzero(_count_above(values, pos, fpr_thresholds) / float(pos.sum()) >= _TARGET_TPR)
    return int(hit[0]) if len(hit) else None


def _grouped_metrics(
    values: np.ndarray, pos: np.ndarray, neg: np.ndarray, fpr_thresholds: np.ndarray, f1_thresholds: np.ndarray
) -> dict[str, float]:
    """Metrics from per-distinct-score counts.

    Args:
        values: Ascending distinct score values (or bin indices).
        pos: Positives per value.
        neg: Negatives per value.
        fpr_thresholds: FPR95 thresholds in the units of ``values``, in descending order.
        f1_thresholds: F1 / PPV thresholds in the units of ``values``.
    """
    n_pos = float(pos.sum())
    n_neg = float(neg.sum())
    out: dict[str, float] = {'voxels': int(n_pos + n_neg)}
    # Descending cumulative counts: tps[i] = positives with score >= values_desc[i].
    tps = np.cumsum(pos[::-1].astype(np.float64))
    fps = np.cumsum(neg[::-1].astype(np.float64))
    if n_pos > 0:
        precision = tps / np.maximum(tps + fps, 1.0)
        recall_steps = pos[::-1] / n_pos
        out['AP'] = float(max(0.0, np.sum(recall_steps * precision)))
    else:
        out['AP'] = 0.0
    if n_pos > 0 and n_neg > 0:
        tpr = np.concatenate([[0.0], tps / n_pos])
        fpr = np.concatenate([[0.0], fps / n_neg])
        out['AUROC'] = float(np.trapezoid(tpr, fpr))
    else:
        out['AUROC'] = math.nan

    if n_pos > 0 and n_neg > 0:
        hit = _fpr95_index(values, pos, fpr_thresholds)
        out['FPR95'] = (
            1.0 if hit is None else float(_count_above(values, neg, fpr_thresholds[hit : hit + 1])[0] / n_neg)
        )
    else:
        out['FPR95'] = math.nan
    tp = _count_above(values, pos, f1_thresholds)
    fp = _count_above(values, neg, f1_thresholds)
    fn = n_pos - tp
    ppv = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
    f1_den = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, f1_den, out=np.zeros_like(tp), where=f1_den > 0)
    out['F1'] = float(f1.mean())
    out['PPV'] = float(ppv.mean())
    return {key: out[key] for key in METRIC_KEYS}


def _curves(pos: np.ndarray, neg: np.ndarray) -> Curves:
    n_pos, n_neg = max(float(pos.sum()), 1.0), max(float(neg.sum()), 1.0)
    tps = np.concatenate([[0.0], np.cumsum(pos[::-1].astype(np.float64))])
    fps = np.concatenate([[0.0], np.cumsum(neg[::-1].astype(np.float64))])
    keep = np.unique(np.linspace(0, len(tps) - 1, min(len(tps), _MAX_CURVE_POINTS)).round().astype(np.int64))
    tps, fps = tps[keep], fps[keep]
    precision = np.divide(tps, tps + fps, out=np.ones_like(tps), where=(tps + fps) > 0)
    return Curves(fpr=fps / n_neg, tpr=tps / n_pos, recall=tps / n_pos, precision=precision)


def _check_inputs(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        msg = f'metrics: {s.size} scores but {y.size} labels'
        raise ConfigError(msg)
    if not np.all(np.isfinite(s)):
        msg = 'metrics: scores contain NaN or inf; the model output is broken upstream'
        raise ConfigError(msg)
    return s, y.astype(bool)


def binary_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Exact AnoVox metrics of scores against binary labels (1 = anomaly).

    Args:
        scores: Anomaly scores, any shape (thresholds assume [0, 1]).
        labels: Booleans or 0/1 of the same size.

    Returns:
        Dict with :data:`METRIC_KEYS` (``voxels`` is the number of scores).

    Raises:
        ConfigError: On mismatched sizes or non-finite scores.
    """
    s, y = _check_inputs(scores, labels)
    values, inverse = np.unique(s, return_inverse=True)
    pos = np.bincount(inverse, weights=y, minlength=len(values))
    neg = np.bincount(inverse, weights=~y, minlength=len(values))
    return _grouped_metrics(values, pos, neg, FPR_THRESHOLDS, F1_THRESHOLDS)


class ScoreHistogram:
    """Streaming accumulator of anomaly scores in [0, 1] for pooled metrics.

    Bin ``b = ceil(score * n_bins)`` (0 for a score of 0), so ``score > t`` for a
    threshold ``t = j / 100`` is exactly ``b > j * n_bins / 100``.

    Args:
        n_bins: Score resolution; a multiple of 100.

    Raises:
        ConfigError: When ``n_bins`` is not a positive multiple of 100.
    """

    def __init__(self, n_bins: int = 100_000) -> None:
        if n_bins <= 0 or n_bins % 100:
            msg = f'ScoreHistogram: n_bins must be a positive multiple of 100, got {n_bins}'
            raise ConfigError(msg)
        self.n_bins = n_bins
        self.pos = np.zeros(n_bins + 1, dtype=np.int64)
        self.neg = np.zeros(n_bins + 1, dtype=np.int64)

    @property
    def positives(self) -> int:
        return int(self.pos.sum())

    @property
    def negatives(self) -> int:
        return int(self.neg.sum())

    @property
    def voxels(self) -> int:
        return self.positives + self.negatives

    def add(self, scores: np.ndarray, labels: np.ndarray) -> None:
        """Accumulate scores (clipped to [0, 1]) with their binary labels.

        Raises:
            ConfigError: On mismatched sizes or non-finite scores.
        """
        s, y = _check_inputs(scores, labels)
        scaled = np.clip(s, 0.0, 1.0) * self.n_bins
        # Snap products within float error of a bin edge onto it, so a score equal to a
        # threshold (0.55 * 200 = 110.00000000000001) stays "not above" it, as in the exact path.
        nearest = np.round(scaled)
        scaled = np.where(np.abs(scaled - nearest) < 1e-6, nearest, scaled)
        bins = np.ceil(scaled).astype(np.int64)
        self.pos += np.bincount(bins[y], minlength=self.n_bins + 1)
        self.neg += np.bincount(bins[~y], minlength=self.n_bins + 1)

    def merge(self, other: ScoreHistogram) -> None:
        """Add another histogram's counts (e.g. from another worker).

        Raises:
            ConfigError: When the bin counts differ.
        """
        if other.n_bins != self.n_bins:
            msg = f'ScoreHistogram.merge: {other.n_bins} bins vs {self.n_bins}'
            raise ConfigError(msg)
        self.pos += other.pos
        self.neg += other.neg

    def _nonempty(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        keep = np.flatnonzero((self.pos + self.neg) > 0)
        return keep, self.pos[keep], self.neg[keep]

    def metrics(self) -> dict[str, float]:
        """The AnoVox metrics of everything accumulated (see module docstring)."""
        values, pos, neg = self._nonempty()
        return _grouped_metrics(values, pos, neg, self._in_bins(FPR_THRESHOLDS), self._in_bins(F1_THRESHOLDS))

    def _in_bins(self, thresholds: np.ndarray) -> np.ndarray:
        """Score thresholds (multiples of 0.01) in bin units."""
        return np.round(thresholds * 100) * (self.n_bins / 100)

    def fpr95_threshold(self) -> float | None:
        """The threshold FPR95 is read at: the first t in 1.00, 0.99, ..., 0.00 where TPR >= 0.95.

        None without positives or when no threshold reaches the TPR.
        """
        values, pos, _ = self._nonempty()
        if pos.sum() == 0:
            return None
        hit = _fpr95_index(values, pos, self._in_bins(FPR_THRESHOLDS))
        return None if hit is None else float(FPR_THRESHOLDS[hit])

    def curves(self) -> Curves:
        """ROC and PR curves for plotting."""
        _, pos, neg = self._nonempty()
        return _curves(pos, neg)
