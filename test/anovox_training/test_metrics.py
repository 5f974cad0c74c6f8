"""Metrics: hand-computed cases, AnoVox's definitions by brute force, adversarial score sets, merging."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anovox_perception.core.errors import ConfigError
from anovox_training.evaluate import metrics
from anovox_training.evaluate.metrics import (
    F1_THRESHOLDS,
    FPR_THRESHOLDS,
    METRIC_KEYS,
    BinnedScoreCounts,
    ScoreCounts,
    binary_metrics,
)

EXACT = 1e-12  # float rounding only


def test_threshold_grids_follow_the_anovox_protocol():
    assert FPR_THRESHOLDS[0] == 1.0 and FPR_THRESHOLDS[-1] == 0.0 and len(FPR_THRESHOLDS) == 101
    np.testing.assert_array_equal(FPR_THRESHOLDS, [k / 100 for k in range(100, -1, -1)])
    np.testing.assert_array_equal(F1_THRESHOLDS, [0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7])


def test_perfectly_separated_scores_give_perfect_metrics():
    m = binary_metrics([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])
    assert m == {'AUROC': 1.0, 'AP': 1.0, 'FPR95': 0.0, 'F1': 1.0, 'PPV': 1.0, 'specificity': 1.0, 'voxels': 4}


def test_tied_scores_form_one_step_as_in_scikit_learn():
    # Distinct scores, descending: 0.5 holds 1 positive + 2 negatives, 0.2 holds 1 positive.
    m = binary_metrics([0.5, 0.5, 0.5, 0.2], [1, 0, 0, 1])
    assert m['AP'] == pytest.approx(0.5 * 1 / 3 + 0.5 * 2 / 4)
    assert m['AUROC'] == pytest.approx(0.25)  # tie with both negatives counts one half each
    assert m['FPR95'] == 1.0  # TPR reaches 0.95 first at t = 0.19, where both negatives are above
    # t = 0.25..0.45 predict the three 0.5s (F1 0.4, PPV 1/3); t = 0.50..0.70 predict nothing.
    assert m['F1'] == pytest.approx(0.2)
    assert m['PPV'] == pytest.approx(1 / 6)
    # |P - R| is 0.5 at score >= 0.2 and 1/6 at score >= 0.5: t* = 0.5, nothing is above it.
    assert m['specificity'] == 1.0


def test_specificity_is_read_strictly_above_the_lowest_precision_recall_break_even_score():
    # score >= 0.2: P 1/5, R 1 (|P - R| 0.8); >= 0.4 and >= 0.6: P 0, R 0 (0, a tie: the lower wins).
    # t* = 0.4; score > 0.4 leaves the negative at 0.4 out: 1 FP (0.6) of 4 negatives.
    m = binary_metrics([0.2, 0.2, 0.2, 0.4, 0.6], [0, 0, 1, 0, 0])
    assert m['specificity'] == 0.75


def test_scores_equal_to_a_threshold_are_not_above_it():
    m = binary_metrics([0.25, 0.25, 0.1], [1, 1, 0])
    assert m['PPV'] == 0.0 and m['F1'] == 0.0  # 0.25 > 0.25 is false; nothing predicted anywhere
    assert m['FPR95'] == 0.0  # first hit at t = 0.24


def test_only_negatives_give_zero_precision_and_undefined_ranking_metrics():
    m = binary_metrics([0.9, 0.1, 0.4], [0, 0, 0])
    assert m['AP'] == 0.0 and m['F1'] == 0.0 and m['PPV'] == 0.0 and m['voxels'] == 3
    assert math.isnan(m['AUROC']) and math.isnan(m['FPR95'])
    assert m['specificity'] == pytest.approx(1 / 3)  # recall counts as 1: t* is the lowest score


def test_only_positives_give_perfect_precision_and_undefined_ranking_metrics():
    m = binary_metrics([0.9, 0.8], [1, 1])
    assert m['AP'] == 1.0 and m['F1'] == 1.0 and m['PPV'] == 1.0
    assert math.isnan(m['AUROC']) and math.isnan(m['FPR95']) and math.isnan(m['specificity'])


def test_fpr95_is_one_when_no_threshold_reaches_the_true_positive_rate():
    m = binary_metrics([0.0, 0.0, 0.5], [1, 1, 0])
    assert m['FPR95'] == 1.0 and m['AUROC'] == 0.0


def test_empty_input_yields_zero_voxels_and_no_ranking_metrics():
    m = binary_metrics([], [])
    assert m['voxels'] == 0 and m['AP'] == 0.0 and math.isnan(m['AUROC']) and math.isnan(m['specificity'])


def test_bad_inputs_are_rejected():
    with pytest.raises(ConfigError, match='3 scores but 2 labels'):
        binary_metrics([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(ConfigError, match='NaN or inf'):
        ScoreCounts().add(np.array([np.nan]), np.array([1]))
    with pytest.raises(ConfigError, match='NaN or inf'):
        BinnedScoreCounts(100).add(np.array([np.inf]), np.array([1]))
    with pytest.raises(ConfigError, match='multiple of 100'):
        BinnedScoreCounts(n_bins=150)
    with pytest.raises(ConfigError, match='expected ScoreCounts'):
        ScoreCounts().merge(BinnedScoreCounts(100))
    with pytest.raises(ConfigError, match='200 bins vs 100 bins'):
        BinnedScoreCounts(100).merge(BinnedScoreCounts(200))


def _reference(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Brute force over every distinct threshold, straight from AnoVox's definitions."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    pos, neg = labels.sum(), (~labels).sum()
    ap, prev_recall = 0.0, 0.0
    roc = [(0.0, 0.0)]
    for t in np.unique(scores)[::-1]:
        pred = scores >= t
        tp, fp = (pred & labels).sum(), (pred & ~labels).sum()
        recall = tp / pos if pos else 0.0
        ap += (recall - prev_recall) * tp / (tp + fp)
        prev_recall = recall
        roc.append((fp / neg if neg else 0.0, recall))
    fpr, tpr = np.array(roc).T
    auroc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)) if pos and neg else math.nan
    fpr95 = math.nan
    if pos and neg:
        fpr95 = 1.0
        for t in FPR_THRESHOLDS:
            if ((scores > t) & labels).sum() / pos >= 0.95:
                fpr95 = ((scores > t) & ~labels).sum() / neg
                break
    f1s, ppvs = [], []
    for t in F1_THRESHOLDS:
        tp, fp = ((scores > t) & labels).sum(), ((scores > t) & ~labels).sum()
        ppvs.append(tp / (tp + fp) if tp + fp else 0.0)
        f1s.append(2 * tp / (2 * tp + fp + (pos - tp)) if 2 * tp + fp + (pos - tp) else 0.0)
    # specificity: the precision-recall curve in ascending threshold order, first minimum of |P - R|.
    specificity = math.nan
    if neg:
        best, t_star = math.inf, None
        for t in np.unique(scores):
            pred = scores >= t
            tp, fp = (pred & labels).sum(), (pred & ~labels).sum()
            gap = abs(tp / (tp + fp) - (tp / pos if pos else 1.0))
            if gap < best:
                best, t_star = gap, t
        specificity = ((scores <= t_star) & ~labels).sum() / neg
    return {
        'AUROC': auroc,
        'AP': ap,
        'FPR95': fpr95,
        'F1': float(np.mean(f1s)),
        'PPV': float(np.mean(ppvs)),
        'specificity': specificity,
        'voxels': len(scores),
    }


def _assert_matches(actual: dict[str, float], expected: dict[str, float], tolerance: float = EXACT) -> None:
    assert set(actual) == set(METRIC_KEYS)
    for key, value in expected.items():
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(actual[key]), key
        else:
            assert actual[key] == pytest.approx(value, abs=tolerance), key


def _in_chunks(scores: np.ndarray, labels: np.ndarray, cuts: list[int]) -> ScoreCounts:
    """Counts built from several accumulators over consecutive chunks, merged."""
    edges = [0, *sorted(cuts), len(scores)]
    total = ScoreCounts()
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        part = ScoreCounts()
        part.add(scores[lo:hi], labels[lo:hi])
        total.merge(part)
    return total


@settings(max_examples=80, deadline=None)
@given(
    data=st.lists(st.tuples(st.integers(0, 40), st.booleans()), min_size=1, max_size=60),
    cuts=st.lists(st.integers(0, 60), max_size=4),
)
def test_exact_and_binned_metrics_match_a_brute_force_reference_on_a_tied_lattice(data, cuts):
    # Scores on a 1/40 lattice: many ties, and values exactly on the 0.05 thresholds.
    scores = np.array([s / 40 for s, _ in data])
    labels = np.array([y for _, y in data])
    cuts = [min(c, len(scores)) for c in cuts]
    expected = _reference(scores, labels)
    _assert_matches(binary_metrics(scores, labels), expected)
    _assert_matches(_in_chunks(scores, labels, cuts).metrics(), expected)
    binned = BinnedScoreCounts(n_bins=200)  # each bin holds one lattice value
    binned.add(scores, labels)
    _assert_matches(binned.metrics(), expected)


def _adversarial_sets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    n = 3000
    labels = rng.random(n) < 0.2
    on_steps = rng.integers(0, 101, n) / 100  # exactly on every FPR95 and F1 threshold
    return {
        # Everything within 1e-9: positives above the negatives still rank perfectly.
        'one_tiny_interval': (0.4 + 1e-12 * (rng.integers(0, 1000, n) + 1000 * labels), labels),
        'heavy_ties': (rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], n), labels),
        'on_the_thresholds': (on_steps, labels),
        'on_the_thresholds_float32': (on_steps.astype(np.float32), labels),
        'zero_one_scores': (rng.integers(0, 2, n).astype(np.float64), labels),
        'constant_scores': (np.full(n, 0.3), labels),
        'only_positives': (rng.random(n), np.ones(n, dtype=bool)),
        'only_negatives': (rng.random(n), np.zeros(n, dtype=bool)),
        'one_positive': (rng.random(n), np.arange(n) == 17),
        'float32_model_outputs': (rng.random(n).astype(np.float32), labels),
        'negative_zero': (np.where(labels, 0.0, -0.0) * rng.integers(0, 2, n), labels),
    }


@pytest.mark.parametrize('name', list(_adversarial_sets()))
def test_exact_counts_equal_the_brute_force_reference_on_adversarial_scores(name):
    scores, labels = _adversarial_sets()[name]
    expected = _reference(scores, labels)
    _assert_matches(binary_metrics(scores, labels), expected)
    _assert_matches(_in_chunks(scores, labels, [1, 700, 701, 2500]).metrics(), expected)


def test_scores_in_one_tiny_interval_keep_their_ranking():
    # Positives 1e-9 above the negatives: a 1e-5 histogram put them in one bin (AP = positive rate).
    rng = np.random.default_rng(0)
    labels = rng.random(10_000) < 0.1
    scores = np.where(labels, 0.500000002, 0.500000001)
    m = binary_metrics(scores, labels)
    assert m['AP'] == 1.0 and m['AUROC'] == 1.0
    binned = BinnedScoreCounts(100_000)
    binned.add(scores, labels)
    assert binned.metrics()['AP'] == pytest.approx(labels.mean())  # what rounding costs


def _sklearn_style(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """AP and AUROC as scikit-learn computes them (descending sort, curve at distinct scores)."""
    order = np.argsort(-scores, kind='stable')
    s, y = scores[order], labels[order].astype(np.float64)
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps, fps = np.cumsum(y)[last], np.cumsum(1 - y)[last]
    precision, recall = tps / (tps + fps), tps / tps[-1]
    ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    fpr, tpr = np.r_[0.0, fps / fps[-1]], np.r_[0.0, recall]
    return ap, float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def test_huge_input_with_few_positives_matches_a_scikit_learn_style_computation():
    rng = np.random.default_rng(5)
    n = 1_500_000
    labels = np.zeros(n, dtype=bool)
    labels[rng.choice(n, 7, replace=False)] = True
    scores = rng.random(n).astype(np.float32)
    scores[labels] = np.float32(0.9) + rng.random(7).astype(np.float32) * np.float32(0.1)
    m = _in_chunks(scores, labels, [100_000, 900_000]).metrics()
    ap, auroc = _sklearn_style(scores.astype(np.float64), labels)
    assert m['AP'] == pytest.approx(ap, abs=EXACT) and m['AUROC'] == pytest.approx(auroc, abs=EXACT)
    # TPR >= 0.95 needs all 7 positives above t: the largest threshold below the lowest positive.
    t = max(th for th in FPR_THRESHOLDS if th < scores[labels].min())
    assert m['FPR95'] == pytest.approx((scores[~labels] > t).mean(), abs=EXACT)
    assert m['voxels'] == n


def test_merge_order_and_buffering_do_not_change_a_single_bit(monkeypatch):
    monkeypatch.setattr(metrics, '_MIN_PENDING', 5)  # fold the buffer into the table often
    rng = np.random.default_rng(11)
    labels = rng.random(4000) < 0.1
    scores = np.round(rng.random(4000), 3).astype(np.float32)  # float32 with ties
    chunks = np.array_split(np.arange(4000), 9)
    parts = []
    for idx in chunks:
        part = ScoreCounts()
        for piece in np.array_split(idx, 4):  # several adds per part
            part.add(scores[piece], labels[piece])
        parts.append(part)
    forward, backward, tree = ScoreCounts(), ScoreCounts(), ScoreCounts()
    for part in parts:
        forward.merge(part)
    for part in reversed(parts):
        backward.merge(part)
    left, right = ScoreCounts(), ScoreCounts()
    for part in parts[::2]:
        left.merge(part)
    for part in parts[1::2]:
        right.merge(part)
    tree.merge(right)
    tree.merge(left)
    expected = binary_metrics(scores, labels)
    for merged in (forward, backward, tree):
        assert merged.metrics() == expected  # exact equality: same table, same arithmetic
    assert binary_metrics(scores.astype(np.float64), labels) == expected


def test_float64_scores_are_kept_when_float32_would_merge_them():
    scores = np.array([0.3, 0.3 + 1e-12, 0.3 + 2e-12])
    assert np.unique(scores.astype(np.float32)).size == 1
    m = binary_metrics(scores, [0, 1, 1])
    assert m['AP'] == 1.0 and m['AUROC'] == 1.0


def test_counts_above_a_threshold_and_the_totals():
    counts = ScoreCounts()
    counts.add(np.array([0.1, 0.5, 0.5, 0.9]), np.array([0, 1, 0, 1]))
    counts.add(np.array([0.5]), np.array([1]))
    assert counts.count_above(0.5) == (1, 0) and counts.count_above(0.49) == (3, 1)
    assert (counts.positives, counts.negatives, counts.voxels) == (3, 2, 5)


def test_binned_scores_compare_with_the_thresholds_as_their_bin_indices():
    # b / n_bins > t exactly when b > t * n_bins, for every bin and threshold.
    thresholds = np.r_[FPR_THRESHOLDS, F1_THRESHOLDS]
    steps = np.round(thresholds * 100).astype(np.int64)
    for n_bins in (100, 200, 1000, 10_000, 100_000):
        bins = np.arange(n_bins + 1)
        as_scores = bins[:, None] / n_bins > thresholds[None, :]
        as_bins = bins[:, None] * 100 > steps[None, :] * n_bins
        assert np.array_equal(as_scores, as_bins), n_bins


def test_binned_counts_are_within_their_resolution_of_exact_metrics_on_continuous_scores():
    rng = np.random.default_rng(3)
    labels = rng.random(20000) < 0.05
    scores = np.clip(rng.normal(0.3 + 0.3 * labels, 0.15), 0, 1)
    binned = BinnedScoreCounts(100_000)
    binned.add(scores, labels)
    exact, streamed = binary_metrics(scores, labels), binned.metrics()
    for key in ('AUROC', 'AP'):
        assert streamed[key] == pytest.approx(exact[key], abs=1e-3)
    for key in ('FPR95', 'F1', 'PPV', 'voxels'):
        assert streamed[key] == exact[key]
    curves = binned.curves()
    assert curves.fpr[0] == 0 and curves.tpr[-1] == pytest.approx(1.0) and len(curves.fpr) <= 2000


@pytest.mark.parametrize('counts', [ScoreCounts(), BinnedScoreCounts(1000)], ids=['exact', 'binned'])
def test_fpr95_threshold_is_where_fpr95_is_read(counts):
    rng = np.random.default_rng(3)
    labels = rng.random(2000) < 0.1
    scores = np.round(np.clip(rng.normal(0.3 + 0.4 * labels, 0.2), 0, 1), 3)
    counts.add(scores, labels)
    t = counts.fpr95_threshold()
    assert t is not None
    above = scores > t
    assert above[labels].mean() >= 0.95 and (scores > t + 0.01)[labels].mean() < 0.95
    assert (above & ~labels).sum() / (~labels).sum() == pytest.approx(counts.metrics()['FPR95'])


def test_fpr95_threshold_is_none_without_positives():
    counts = ScoreCounts()
    counts.add(np.array([0.2, 0.9]), np.array([False, False]))
    assert counts.fpr95_threshold() is None


def test_counts_beyond_the_int32_range_are_kept_in_int64(monkeypatch):
    monkeypatch.setattr(metrics, '_INT32_MAX', 3)  # as if a single score held more than 2**31 voxels
    scores = np.array([0.2] * 5 + [0.7] * 2 + [0.9] * 6 + [0.4])
    labels = np.array([0] * 5 + [1] * 2 + [1] * 6 + [0])
    counts = _in_chunks(scores, labels, [3, 9])
    _assert_matches(counts.metrics(), _reference(scores, labels))
    assert counts.count_above(0.8) == (6, 0) and counts.count_above(0.1) == (8, 6)


def test_float32_and_float64_batches_pool_into_one_exact_table():
    rng = np.random.default_rng(9)
    labels = rng.random(600) < 0.3
    scores32 = rng.random(400).astype(np.float32)
    scores64 = np.r_[rng.random(100), scores32[:100].astype(np.float64) + 1e-12]  # not float32 values
    counts = ScoreCounts()
    counts.add(scores32, labels[:400])
    counts.add(scores64, labels[400:])
    expected = _reference(np.r_[scores32.astype(np.float64), scores64], labels)
    _assert_matches(counts.metrics(), expected)
