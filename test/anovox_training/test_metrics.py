"""Metrics: hand-computed cases, ties, single-class inputs, and streaming equals exact."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anovox_perception.errors import ConfigError
from anovox_training.metrics import F1_THRESHOLDS, FPR_THRESHOLDS, ScoreHistogram, binary_metrics


def test_threshold_grids_follow_the_anovox_protocol():
    assert FPR_THRESHOLDS[0] == 1.0 and FPR_THRESHOLDS[-1] == 0.0 and len(FPR_THRESHOLDS) == 101
    np.testing.assert_array_equal(F1_THRESHOLDS, [0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7])


def test_perfectly_separated_scores_give_perfect_metrics():
    m = binary_metrics([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])
    assert m == {'AUROC': 1.0, 'AP': 1.0, 'FPR95': 0.0, 'F1': 1.0, 'PPV': 1.0, 'voxels': 4}


def test_tied_scores_form_one_step_as_in_scikit_learn():
    # Distinct scores, descending: 0.5 holds 1 positive + 2 negatives, 0.2 holds 1 positive.
    m = binary_metrics([0.5, 0.5, 0.5, 0.2], [1, 0, 0, 1])
    assert m['AP'] == pytest.approx(0.5 * 1 / 3 + 0.5 * 2 / 4)
    assert m['AUROC'] == pytest.approx(0.25)  # tie with both negatives counts one half each
    assert m['FPR95'] == 1.0  # TPR reaches 0.95 first at t = 0.19, where both negatives are above
    # t = 0.25..0.45 predict the three 0.5s (F1 0.4, PPV 1/3); t = 0.50..0.70 predict nothing.
    assert m['F1'] == pytest.approx(0.2)
    assert m['PPV'] == pytest.approx(1 / 6)


def test_scores_equal_to_a_threshold_are_not_above_it():
    m = binary_metrics([0.25, 0.25, 0.1], [1, 1, 0])
    assert m['PPV'] == 0.0 and m['F1'] == 0.0  # 0.25 > 0.25 is false; nothing predicted anywhere
    assert m['FPR95'] == 0.0  # first hit at t = 0.24


def test_only_negatives_give_zero_precision_and_undefined_ranking_metrics():
    m = binary_metrics([0.9, 0.1, 0.4], [0, 0, 0])
    assert m['AP'] == 0.0 and m['F1'] == 0.0 and m['PPV'] == 0.0 and m['voxels'] == 3
    assert math.isnan(m['AUROC']) and math.isnan(m['FPR95'])


def test_only_positives_give_perfect_precision_and_undefined_ranking_metrics():
    m = binary_metrics([0.9, 0.8], [1, 1])
    assert m['AP'] == 1.0 and m['F1'] == 1.0 and m['PPV'] == 1.0
    assert math.isnan(m['AUROC']) and math.isnan(m['FPR95'])


def test_fpr95_is_one_when_no_threshold_reaches_the_true_positive_rate():
    m = binary_metrics([0.0, 0.0, 0.5], [1, 1, 0])
    assert m['FPR95'] == 1.0 and m['AUROC'] == 0.0


def test_empty_input_yields_zero_voxels_and_no_ranking_metrics():
    m = binary_metrics([], [])
    assert m['voxels'] == 0 and m['AP'] == 0.0 and math.isnan(m['AUROC'])


def test_bad_inputs_are_rejected():
    with pytest.raises(ConfigError, match='3 scores but 2 labels'):
        binary_metrics([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(ConfigError, match='NaN or inf'):
        ScoreHistogram().add(np.array([np.nan]), np.array([1]))
    with pytest.raises(ConfigError, match='multiple of 100'):
        ScoreHistogram(n_bins=150)


def _reference(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Brute force over every distinct threshold, straight from the definitions."""
    pos, neg = labels.sum(), (~labels).sum()
    ap, prev_recall = 0.0, 0.0
    roc = [(0.0, 0.0)]
    for t in np.unique(scores)[::-1]:
        pred = scores >= t
        tp, fp = (pred & labels).sum(), (pred & ~labels).sum()
        recall = tp / pos
        ap += (recall - prev_recall) * tp / (tp + fp)
        prev_recall = recall
        roc.append((fp / neg, recall))
    fpr, tpr = np.array(roc).T
    auroc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    fpr95 = 1.0
    for t in FPR_THRESHOLDS:
        if ((scores > t) & labels).sum() / pos >= 0.95:
            fpr95 = ((scores > t) & ~labels).sum() / neg
            break
    f1s, ppvs = [], []
    for t in F1_THRESHOLDS:
        tp, fp = ((scores > t) & labels).sum(), ((scores > t) & ~labels).sum()
        ppvs.append(tp / (tp + fp) if tp + fp else 0.0)
        f1s.append(2 * tp / (2 * tp + fp + (pos - tp)))
    return {'AUROC': auroc, 'AP': ap, 'FPR95': fpr95, 'F1': np.mean(f1s), 'PPV': np.mean(ppvs)}


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(st.tuples(st.integers(0, 40), st.booleans()), min_size=2, max_size=60).filter(
        lambda d: 0 < sum(y for _, y in d) < len(d)
    )
)
def test_exact_and_streaming_metrics_match_a_brute_force_reference(data):
    # Scores on a 1/40 lattice: many ties, and values exactly on the 0.05 thresholds.
    scores = np.array([s / 40 for s, _ in data])
    labels = np.array([y for _, y in data])
    expected = _reference(scores, labels)
    exact = binary_metrics(scores, labels)
    hist = ScoreHistogram(n_bins=200)  # bins hold one lattice value each
    hist.add(scores[: len(scores) // 2], labels[: len(scores) // 2])
    rest = ScoreHistogram(n_bins=200)
    rest.add(scores[len(scores) // 2 :], labels[len(scores) // 2 :])
    hist.merge(rest)
    for key, value in expected.items():
        assert exact[key] == pytest.approx(value, abs=1e-12), key
        assert hist.metrics()[key] == pytest.approx(value, abs=1e-12), key
    assert hist.voxels == exact['voxels'] == len(scores)


def test_histogram_is_within_its_resolution_of_exact_metrics_on_continuous_scores():
    rng = np.random.default_rng(3)
    labels = rng.random(20000) < 0.05
    scores = np.clip(rng.normal(0.3 + 0.3 * labels, 0.15), 0, 1)
    hist = ScoreHistogram()
    hist.add(scores, labels)
    exact, streamed = binary_metrics(scores, labels), hist.metrics()
    for key in ('AUROC', 'AP'):
        assert streamed[key] == pytest.approx(exact[key], abs=1e-3)
    for key in ('FPR95', 'F1', 'PPV', 'voxels'):
        assert streamed[key] == exact[key]
    curves = hist.curves()
    assert curves.fpr[0] == 0 and curves.tpr[-1] == pytest.approx(1.0) and len(curves.fpr) <= 2000


def test_fpr95_threshold_is_where_fpr95_is_read():
    rng = np.random.default_rng(3)
    labels = rng.random(2000) < 0.1
    scores = np.round(np.clip(rng.normal(0.3 + 0.4 * labels, 0.2), 0, 1), 3)
    hist = ScoreHistogram(1000)
    hist.add(scores, labels)
    t = hist.fpr95_threshold()
    assert t is not None
    above = scores > t
    assert above[labels].mean() >= 0.95 and (scores > t + 0.01)[labels].mean() < 0.95
    assert (above & ~labels).sum() / (~labels).sum() == pytest.approx(hist.metrics()['FPR95'])


def test_fpr95_threshold_is_none_without_positives():
    hist = ScoreHistogram(100)
    hist.add(np.array([0.2, 0.9]), np.array([False, False]))
    assert hist.fpr95_threshold() is None
