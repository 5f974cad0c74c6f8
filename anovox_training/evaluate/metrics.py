"""AnoVox voxel-level anomaly metrics, exact and streaming.

Definitions (as AnoVox's ``benchmark/eval/metrics.py`` computes them, so numbers
compare with its paper; docs/METRICS.md gives them in full):

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
- specificity: ``TN / (TN + FP)`` binarising ``score > t*``, where t* is the score
  threshold of the precision-recall curve (``score >= t``) with the smallest
  ``|precision - recall|``, the lowest such score on ties. Recall counts as 1
  without positives (scikit-learn's convention), so t* is then the lowest score.
  NaN without negatives.

Every figure depends only on the number of positives and negatives at each distinct
score value, so :class:`ScoreCounts` keeps exactly that: sorted distinct scores with
their counts. It is exact, mergeable across frames and workers in any order with
bit-identical results, and its memory is bounded by the number of distinct scores.
:class:`BinnedScoreCounts` first rounds scores up onto a ``1 / n_bins`` lattice
aligned with the 0.01 thresholds (FPR95, F1 and PPV stay exact; AP, AUROC and
specificity are those of the rounded scores) for constant memory and O(N) adds.
:func:`binary_metrics` computes everything from score arrays in one call.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from anovox_perception.core.errors import ConfigError

__all__ = [
    'F1_THRESHOLDS',
    'FPR_THRESHOLDS',
    'METRIC_KEYS',
    'BinnedScoreCounts',
    'Curves',
    'ScoreCounts',
    'binary_metrics',
]

# 1.00, 0.99, ..., 0.00 (rounded so each equals its decimal literal).
FPR_THRESHOLDS = np.round(np.arange(100, -1, -1) / 100.0, 2)
# 0.25, 0.30, ..., 0.70: ten thresholds.
F1_THRESHOLDS = np.round(0.25 + 0.05 * np.arange(10), 2)
METRIC_KEYS = ('AUROC', 'AP', 'FPR95', 'F1', 'PPV', 'specificity', 'voxels')
_TARGET_TPR = 0.95
_MAX_CURVE_POINTS = 2000
# Raw scores buffered before they are folded into the sorted tables (at least; the
# buffer may grow to a quarter of the tables, so folding costs O(N log N) overall).
_MIN_PENDING = 1 << 18
_INT32_MAX = np.iinfo(np.int32).max


@dataclass(frozen=True)
class Curves:
    """ROC and precision-recall curves (at most a few thousand points, for plots)."""

    fpr: np.ndarray
    tpr: np.ndarray
    recall: np.ndarray
    precision: np.ndarray


def _at_or_above(counts: np.ndarray) -> np.ndarray:
    """Float64 totals of ``counts`` at or above each position (for ascending values): a reversed cumsum.

    Counts are integers below 2**53, so every total is exact.
    """
    return np.cumsum(counts[::-1], dtype=np.float64)[::-1]


def _above(values: np.ndarray, at_or_above: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Counts with value > t for each threshold t (``values`` ascending float64, totals from :func:`_at_or_above`)."""
    if len(values) == 0:
        return np.zeros(len(thresholds))
    first = np.searchsorted(values, thresholds, side='right')  # the first value above t
    return np.where(first < len(values), at_or_above[np.minimum(first, len(values) - 1)], 0.0)


def _fpr95_index(values: np.ndarray, pos_at_or_above: np.ndarray, n_pos: float) -> int | None:
    """Index into :data:`FPR_THRESHOLDS` of the first threshold where TPR >= 0.95; None if none is."""
    hit = np.flatnonzero(_above(values, pos_at_or_above, FPR_THRESHOLDS) / n_pos >= _TARGET_TPR)
    return int(hit[0]) if len(hit) else None


def _grouped_metrics(values: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> dict[str, float]:
    """Metrics from per-distinct-score counts (every score holds at least one count).

    Args:
        values: Ascending distinct score values (float64).
        pos: Positives per value.
        neg: Negatives per value.
    """
    n_pos = float(pos.sum())
    n_neg = float(neg.sum())
    out: dict[str, float] = {'voxels': int(n_pos + n_neg), 'AP': 0.0, 'AUROC': math.nan, 'FPR95': math.nan}
    out['specificity'] = math.nan
    if len(values) == 0:
        return {**out, 'F1': 0.0, 'PPV': 0.0}
    # Whole-table arrays are few and reused in place: a split's tables hold millions of scores.
    # Positives / negatives scoring >= each value: the precision-recall and ROC curves' points.
    tp_at = _at_or_above(pos)
    fp_at = _at_or_above(neg)
    # Computed as scikit-learn's precision_recall_curve does, so ties in |P - R| below resolve alike.
    precision = np.add(tp_at, fp_at)
    np.divide(tp_at, precision, out=precision)
    work = np.empty_like(precision)
    if n_pos > 0:
        out['AP'] = float(max(0.0, np.dot(pos, precision) / n_pos))  # sum of recall steps x precision
    if n_pos > 0 and n_neg > 0:
        # Trapezoids: each distinct score moves FPR by neg / n_neg at the mean of the TPRs
        # above and at it, (2 tp_at - pos) / (2 n_pos); ties count one half, as roc_auc_score.
        np.multiply(tp_at, 2.0, out=work)
        work -= pos
        out['AUROC'] = float(np.dot(neg, work) / (2.0 * n_pos * n_neg))
        hit = _fpr95_index(values, tp_at, n_pos)
        false_positives = 0.0 if hit is None else _above(values, fp_at, FPR_THRESHOLDS[hit : hit + 1])[0]
        out['FPR95'] = 1.0 if hit is None else float(false_positives / n_neg)
    tp = _above(values, tp_at, F1_THRESHOLDS)
    fp = _above(values, fp_at, F1_THRESHOLDS)
    fn = n_pos - tp
    ppv = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
    f1_den = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, f1_den, out=np.zeros_like(tp), where=f1_den > 0)
    out['F1'] = float(f1.mean())
    out['PPV'] = float(ppv.mean())
    if n_neg > 0:
        # AnoVox's specificity: the lowest score t* with the smallest |precision - recall|
        # (recall 1 without positives, as scikit-learn), then TN / (TN + FP) at score > t*.
        if n_pos > 0:
            np.divide(tp_at, n_pos, out=work)  # recall
        else:
            work.fill(1.0)
        np.subtract(precision, work, out=work)
        best = int(np.argmin(np.abs(work, out=work)))  # the first minimum: the lowest score
        false_positives = fp_at[best] - float(neg[best])
        out['specificity'] = float((n_neg - false_positives) / n_neg)
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
    """Flat float scores (float32 when that loses nothing, else float64) and boolean labels.

    Raises:
        ConfigError: On mismatched sizes or non-finite scores.
    """
    s = np.asarray(scores).ravel()
    if s.dtype != np.float32:
        s = s.astype(np.float64)
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        msg = f'metrics: {s.size} scores but {y.size} labels'
        raise ConfigError(msg)
    if not np.all(np.isfinite(s)):
        msg = 'metrics: scores contain NaN or inf; the model output is broken upstream'
        raise ConfigError(msg)
    if s.dtype == np.float64:
        narrow = s.astype(np.float32)
        if np.array_equal(narrow, s):  # model outputs are float32: half the memory, same values
            s = narrow
    # + 0.0 turns -0.0 into 0.0, so one key holds every zero.
    return s + s.dtype.type(0.0), y.astype(bool)


def _narrow(counts: np.ndarray) -> np.ndarray:
    """int32 counts while they fit (half the memory of int64), int64 beyond."""
    return counts.astype(np.int32) if counts.size == 0 or counts.max() <= _INT32_MAX else counts.astype(np.int64)


def _distinct(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of an ascending array and how often each occurs."""
    if sorted_values.size == 0:
        return sorted_values, np.zeros(0, dtype=np.int32)
    starts = np.flatnonzero(np.concatenate([[True], sorted_values[1:] != sorted_values[:-1]]))
    return sorted_values[starts], _narrow(np.diff(np.append(starts, sorted_values.size)))


def _merge_runs(
    values_a: np.ndarray, counts_a: np.ndarray, values_b: np.ndarray, counts_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Union of two ascending arrays of distinct values, with the counts of common values added.

    Linear in the larger array (inserting the smaller one), so folding a batch into a
    large table costs little more than copying it.
    """
    if len(values_b) > len(values_a):
        values_a, counts_a, values_b, counts_b = values_b, counts_b, values_a, counts_a
    dtype = np.result_type(values_a, values_b)  # float32 only while both are
    values_a, values_b = values_a.astype(dtype, copy=False), values_b.astype(dtype, copy=False)
    at = np.searchsorted(values_a, values_b)
    common = np.zeros(len(values_b), dtype=bool)
    inside = at < len(values_a)
    common[inside] = values_a[at[inside]] == values_b[inside]
    counts = counts_a.astype(np.int64)
    counts[at[common]] += counts_b[common]  # distinct values: no index repeats
    new = ~common
    values = np.insert(values_a, at[new], values_b[new])
    return values, _narrow(np.insert(counts, at[new], counts_b[new]))


class _CountsBase(ABC):
    """Metrics of an accumulator that can give its (values, positives, negatives) table."""

    @abstractmethod
    def _table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ascending distinct float64 scores with nonzero counts, positives and negatives per score."""

    @property
    def positives(self) -> int:
        return int(self._table()[1].sum())

    @property
    def negatives(self) -> int:
        return int(self._table()[2].sum())

    @property
    def voxels(self) -> int:
        return self.positives + self.negatives

    def metrics(self) -> dict[str, float]:
        """The AnoVox metrics of everything accumulated (:data:`METRIC_KEYS`, see module docstring)."""
        return _grouped_metrics(*self._table())

    def count_above(self, threshold: float) -> tuple[int, int]:
        """(positives, negatives) with ``score > threshold``."""
        values, pos, neg = self._table()
        t = np.array([threshold], dtype=np.float64)
        return int(_above(values, _at_or_above(pos), t)[0]), int(_above(values, _at_or_above(neg), t)[0])

    def fpr95_threshold(self) -> float | None:
        """The threshold FPR95 is read at: the first t in 1.00, 0.99, ..., 0.00 where TPR >= 0.95.

        None without positives or when no threshold reaches the TPR.
        """
        values, pos, _ = self._table()
        if pos.sum() == 0:
            return None
        hit = _fpr95_index(values, _at_or_above(pos), float(pos.sum()))
        return None if hit is None else float(FPR_THRESHOLDS[hit])

    def curves(self) -> Curves:
        """ROC and PR curves for plotting."""
        _, pos, neg = self._table()
        return _curves(pos, neg)


class ScoreCounts(_CountsBase):
    """Exact streaming accumulator: positives and negatives per distinct score value.

    Scores are kept at their exact value (float32 when every score given is a float32
    value, as model outputs are; float64 otherwise), positives and negatives in two
    sorted tables of distinct values with their counts. Adds are buffered and folded
    into the tables in batches of at least a quarter of the table, so N scores cost
    O(N log N) in all and memory stays near 8 bytes per distinct score and class.
    """

    def __init__(self) -> None:
        empty_values, empty_counts = np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int32)
        self._pos = (empty_values, empty_counts)
        self._neg = (empty_values, empty_counts)
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending_size = 0

    def add(self, scores: np.ndarray, labels: np.ndarray) -> None:
        """Accumulate scores with their binary labels (1 = anomaly).

        Raises:
            ConfigError: On mismatched sizes or non-finite scores.
        """
        s, y = _check_inputs(scores, labels)
        if s.size == 0:
            return
        self._pending.append((s, y))
        self._pending_size += s.size
        if self._pending_size >= max(_MIN_PENDING, len(self._pos[0]) + len(self._neg[0])):
            self._fold()

    def merge(self, other: ScoreCounts) -> None:
        """Add another accumulator's counts (e.g. from another worker); ``other`` is unchanged.

        Raises:
            ConfigError: When ``other`` is not a :class:`ScoreCounts`.
        """
        if not isinstance(other, ScoreCounts):
            msg = f'ScoreCounts.merge: expected ScoreCounts, got {type(other).__name__}'
            raise ConfigError(msg)
        self._fold()
        other._fold()
        self._pos = _merge_runs(*self._pos, *other._pos)
        self._neg = _merge_runs(*self._neg, *other._neg)

    def _fold(self) -> None:
        """Fold the buffered scores into the sorted tables."""
        if not self._pending:
            return
        scores = np.concatenate([s for s, _ in self._pending])
        labels = np.concatenate([y for _, y in self._pending])
        self._pending, self._pending_size = [], 0
        self._pos = _merge_runs(*self._pos, *_distinct(np.sort(scores[labels])))
        self._neg = _merge_runs(*self._neg, *_distinct(np.sort(scores[~labels])))

    @property
    def positives(self) -> int:
        self._fold()
        return int(self._pos[1].sum())

    @property
    def negatives(self) -> int:
        self._fold()
        return int(self._neg[1].sum())

    def _table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # Built on demand, not kept: it takes three times the memory of the two tables.
        self._fold()
        (pos_values, pos_counts), (neg_values, neg_counts) = self._pos, self._neg
        dtype = np.result_type(pos_values, neg_values)
        pos_values, neg_values = pos_values.astype(dtype, copy=False), neg_values.astype(dtype, copy=False)
        # Insert the positives' scores that no negative has into the negatives' (usually the larger table).
        at = np.searchsorted(neg_values, pos_values)
        new = np.ones(len(pos_values), dtype=bool)
        inside = at < len(neg_values)
        new[inside] = neg_values[at[inside]] != pos_values[inside]
        # float64 before any comparison with the (float64) thresholds.
        values = np.insert(neg_values, at[new], pos_values[new]).astype(np.float64)
        neg = np.insert(neg_counts.astype(np.float64), at[new], 0.0)
        pos = np.zeros(len(values))
        # Each positive's score lands at its insertion point, shifted by the new scores inserted before it.
        pos[at + np.cumsum(new) - new] = pos_counts
        return values, pos, neg


class BinnedScoreCounts(_CountsBase):
    """Constant-memory accumulator of scores in [0, 1] rounded up onto a ``1 / n_bins`` lattice.

    Bin ``b = ceil(score * n_bins)`` (0 for a score of 0) stands for the score
    ``b / n_bins``, so ``score > t`` for a threshold ``t = j / 100`` is exactly
    ``b > j * n_bins / 100``: FPR95, F1 and PPV equal the exact ones; AP, AUROC and
    specificity are those of the rounded scores.

    Args:
        n_bins: Score resolution; a positive multiple of 100.

    Raises:
        ConfigError: When ``n_bins`` is not a positive multiple of 100.
    """

    def __init__(self, n_bins: int) -> None:
        if n_bins <= 0 or n_bins % 100:
            msg = f'BinnedScoreCounts: n_bins must be a positive multiple of 100, got {n_bins}'
            raise ConfigError(msg)
        self.n_bins = n_bins
        self.pos = np.zeros(n_bins + 1, dtype=np.int64)
        self.neg = np.zeros(n_bins + 1, dtype=np.int64)

    def add(self, scores: np.ndarray, labels: np.ndarray) -> None:
        """Accumulate scores (clipped to [0, 1]) with their binary labels.

        Raises:
            ConfigError: On mismatched sizes or non-finite scores.
        """
        s, y = _check_inputs(scores, labels)
        scaled = np.clip(s.astype(np.float64), 0.0, 1.0) * self.n_bins
        # Snap products within float error of a bin edge onto it, so a score equal to a
        # threshold (0.55 * 200 = 110.00000000000001) stays "not above" it, as in the exact path.
        nearest = np.round(scaled)
        scaled = np.where(np.abs(scaled - nearest) < 1e-6, nearest, scaled)
        bins = np.ceil(scaled).astype(np.int64)
        self.pos += np.bincount(bins[y], minlength=self.n_bins + 1)
        self.neg += np.bincount(bins[~y], minlength=self.n_bins + 1)

    def merge(self, other: BinnedScoreCounts) -> None:
        """Add another accumulator's counts (e.g. from another worker).

        Raises:
            ConfigError: When ``other`` is not a :class:`BinnedScoreCounts` with the same bins.
        """
        if not isinstance(other, BinnedScoreCounts) or other.n_bins != self.n_bins:
            got = f'{other.n_bins} bins' if isinstance(other, BinnedScoreCounts) else type(other).__name__
            msg = f'BinnedScoreCounts.merge: {got} vs {self.n_bins} bins'
            raise ConfigError(msg)
        self.pos += other.pos
        self.neg += other.neg

    def _table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        keep = np.flatnonzero((self.pos + self.neg) > 0)
        # b / n_bins and the threshold j / 100 are correctly rounded quotients: equal rationals
        # give equal floats, so comparisons with the thresholds are those of the bin indices.
        return keep / self.n_bins, self.pos[keep], self.neg[keep]


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
    counts = ScoreCounts()
    counts.add(scores, labels)
    return counts.metrics()
