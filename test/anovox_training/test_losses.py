"""Losses: each term reacts to its own target, imbalance weights and the focal factor."""

from __future__ import annotations

import math

import pytest
import torch

from anovox_training.data.targets import EMPTY
from anovox_training.model.config import NORMAL_CLASSES
from anovox_training.model.head import HeadLogits
from anovox_training.train.losses import DetectorLoss, LossWeights

CLASSES = tuple(NORMAL_CLASSES)
K = len(CLASSES)


def _labels() -> torch.Tensor:
    """(B=1, nx=4, ny=4, nz=2): road on z=0 everywhere, a car cell and an anomaly cell on z=1."""
    labels = torch.full((1, 4, 4, 2), EMPTY, dtype=torch.uint8)
    labels[..., 0] = 1
    labels[0, 1, 1, 1] = 14
    labels[0, 2, 2, 1] = 31
    return labels


def _perfect(labels: torch.Tensor, margin: float = 20.0) -> HeadLogits:
    lab = labels.permute(0, 3, 1, 2).long()  # (B, nz, nx, ny)
    occupancy = torch.where(lab != EMPTY, margin, -margin)
    anomaly = torch.where(lab == 31, margin, -margin)
    semantic = torch.zeros(1, K, *lab.shape[1:])
    semantic[:, CLASSES.index('road')] = torch.where(lab == 1, margin, 0.0)
    semantic[:, CLASSES.index('vehicle')] = torch.where(lab == 14, margin, 0.0)
    return HeadLogits(occupancy.float(), anomaly.float(), semantic)


def test_perfect_predictions_cost_almost_nothing_and_every_term_is_reported():
    loss = DetectorLoss(CLASSES, LossWeights())
    total, terms = loss(_perfect(_labels()), _labels())
    assert set(terms) == {'occupancy', 'semantic', 'anomaly', 'outlier_exposure'}
    assert total < 1e-6
    for name in ('occupancy', 'semantic', 'anomaly'):
        assert terms[name] < 1e-6, name
    assert terms['outlier_exposure'] == pytest.approx(0.0, abs=1e-6)  # anomaly cell: uniform semantics


def test_each_term_grows_when_its_own_target_is_missed():
    loss = DetectorLoss(CLASSES, LossWeights())
    labels = _labels()
    base = _perfect(labels)
    _, ok = loss(base, labels)
    wrong_occupancy = base._replace(occupancy=-base.occupancy)
    wrong_anomaly = base._replace(anomaly=-base.anomaly)
    confident_outlier = base.semantic.clone()
    confident_outlier[0, 0, 1, 2, 2] = 20.0  # the anomaly cell now looks confidently like road
    assert loss(wrong_occupancy, labels)[1]['occupancy'] > 1.0
    assert loss(wrong_anomaly, labels)[1]['anomaly'] > 1.0
    assert loss(base._replace(semantic=confident_outlier), labels)[1]['outlier_exposure'] > 1.0
    assert ok['semantic'] < 1e-6 < loss(base._replace(semantic=-base.semantic), labels)[1]['semantic']


def test_outlier_exposure_is_zero_without_anomalies_and_uniform_semantics_cost_log_k():
    labels = _labels()
    labels[labels == 31] = 1
    loss = DetectorLoss(CLASSES, LossWeights())
    logits = _perfect(labels)
    _, terms = loss(logits._replace(semantic=torch.zeros_like(logits.semantic)), labels)
    assert terms['outlier_exposure'] == 0.0
    assert terms['semantic'] == pytest.approx(math.log(K), rel=1e-5)


def test_the_focal_factor_shrinks_the_loss_of_easy_voxels_more_than_of_hard_ones():
    labels = _labels()
    logits = _perfect(labels, margin=2.0)
    plain = DetectorLoss(CLASSES, LossWeights(anomaly_focal_gamma=0.0))(logits, labels)[1]['anomaly']
    focal = DetectorLoss(CLASSES, LossWeights(anomaly_focal_gamma=2.0))(logits, labels)[1]['anomaly']
    assert focal < 0.05 * plain  # p_t = 0.88: factor (0.12)^2
    hard = logits._replace(anomaly=torch.zeros_like(logits.anomaly))  # p_t = 0.5 everywhere
    plain_hard = DetectorLoss(CLASSES, LossWeights(anomaly_focal_gamma=0.0))(hard, labels)[1]['anomaly']
    focal_hard = DetectorLoss(CLASSES, LossWeights(anomaly_focal_gamma=2.0))(hard, labels)[1]['anomaly']
    assert focal_hard == pytest.approx(0.25 * plain_hard)


def test_a_missed_rare_class_voxel_costs_more_than_a_missed_common_one():
    labels = _labels()  # 16 road cells, one car cell
    loss = DetectorLoss(CLASSES, LossWeights())
    base = _perfect(labels)
    road, vehicle = CLASSES.index('road'), CLASSES.index('vehicle')
    miss_road = base.semantic.clone()
    miss_road[0, road, 0, 0, 0] = 0.0
    miss_road[0, vehicle, 0, 0, 0] = 20.0  # one road cell called a vehicle
    miss_car = base.semantic.clone()
    miss_car[0, vehicle, 1, 1, 1] = 0.0
    miss_car[0, road, 1, 1, 1] = 20.0  # the car cell called road
    cost_road = loss(base._replace(semantic=miss_road), labels)[1]['semantic']
    cost_car = loss(base._replace(semantic=miss_car), labels)[1]['semantic']
    assert cost_car > 2 * cost_road


def test_class_balance_makes_a_rare_normal_voxel_scored_anomalous_cost_more_than_a_common_one():
    labels = _labels()  # 16 road cells, one car cell, one anomaly cell
    base = _perfect(labels)
    car_alarm, road_alarm = base.anomaly.clone(), base.anomaly.clone()
    car_alarm[0, 1, 1, 1] = 20.0  # the car cell called an anomaly
    road_alarm[0, 0, 0, 0] = 20.0  # one road cell called an anomaly
    plain = DetectorLoss(CLASSES, LossWeights(anomaly_focal_gamma=0.0))
    balanced = DetectorLoss(CLASSES, LossWeights(anomaly_focal_gamma=0.0, anomaly_class_balance=1.0))

    def cost(loss: DetectorLoss, anomaly: torch.Tensor) -> float:
        return float(loss(base._replace(anomaly=anomaly), labels)[1]['anomaly'])

    assert cost(plain, car_alarm) == pytest.approx(cost(plain, road_alarm), rel=1e-6)  # off: a voxel is a voxel
    assert cost(balanced, car_alarm) > 3 * cost(balanced, road_alarm)
    assert cost(balanced, base.anomaly) < 1e-6  # still ~0 when every voxel is right
