"""Score-rule tuning: weight by AP, temperature by FPR95 then F1."""

from __future__ import annotations

import numpy as np
import pytest

from anovox_training.score_tuning import ValidationVoxels, choose, score


def _voxels() -> ValidationVoxels:
    rng = np.random.default_rng(0)
    positive = np.zeros(4000, dtype=bool)
    positive[:200] = True
    # Over-confident logits: negatives far below zero, positives spread from -12 to +12.
    logit = np.where(positive, rng.uniform(-12, 12, 4000), rng.normal(-14, 3, 4000))
    # The semantic cue is pure noise here, so weighting it in can only hurt the ranking.
    msp = rng.uniform(0.2, 1.0, 4000)
    return ValidationVoxels(anomaly_logit=logit, max_softmax=msp, positive=positive)


def test_score_matches_the_exported_rule():
    v = ValidationVoxels(np.array([0.0, 2.0]), np.array([0.5, 1.0]), np.array([True, False]))
    np.testing.assert_allclose(score(v, 1.0, 1.0), [0.75, 1 / (1 + np.exp(-2))])
    np.testing.assert_allclose(score(v, 0.0, 2.0), [0.5, 1 / (1 + np.exp(-1))])


def test_choice_prefers_the_uninformative_cue_off_and_a_temperature_that_spreads_the_scores():
    weight, temperature, tried = choose(_voxels(), [0.0, 1.0], [1.0, 4.0], current=(1.0, 1.0))
    assert weight == 0.0
    assert tried['w=0,T=1']['AP'] >= tried['w=1,T=1']['AP']
    # T = 1 leaves the hardest positives below 0.01 (FPR95 1.0); T = 4 brings them onto the grid.
    assert tried['w=0,T=1']['FPR95'] == 1.0 and tried['w=0,T=4']['FPR95'] < 1.0
    assert temperature == 4.0
    assert tried['w=0,T=4']['AP'] == pytest.approx(tried['w=0,T=1']['AP'])  # same ranking


def test_empty_candidate_lists_keep_the_current_rule():
    assert choose(_voxels(), [], [], current=(0.5, 3.0))[:2] == (0.5, 3.0)
