"""Training losses of the detector, with the class imbalance handled explicitly.

Free space is ~98 % of the grid and anomalies are well under 1 % of the occupied
voxels, so plain means would let "nothing is there, nothing is anomalous" win.
Each term is therefore explicit about its weighting:

- occupancy: BCE over every cell, occupied cells weighted ``occupancy_pos_weight``,
  normalised by the total weight (missing a real voxel costs more than inventing
  one; evaluation only scores predicted voxels, so recall matters most).
- semantic: cross-entropy over occupied *normal* voxels, normal classes only,
  each class weighted by ``1 / sqrt(its share of the batch's normal voxels)``
  (capped at 10): road and buildings would otherwise drown the pedestrians,
  poles and street furniture whose confident recognition the anomaly score needs.
- anomaly: focal BCE (Lin et al., 2017; ``anomaly_focal_gamma``, 0 = plain BCE)
  over occupied voxels (ignored labels excluded), anomaly voxels weighted
  ``anomaly_pos_weight``, normalised by the total weight. The focal factor
  shifts the loss from the millions of easy ground and building voxels to the
  rare hard negatives (pedestrians, poles, street furniture) that decide the
  precision. ``anomaly_class_balance`` (an exponent, 0 = off) also weights each
  normal voxel by the semantic term's class weight to that power, so the rare
  normal classes that score as anomalies count for more than their voxel share.
  Training-split anomaly categories act as outlier exposure.
- outlier exposure: on anomaly voxels, cross-entropy between the normal-class
  softmax and the uniform distribution (Hendrycks et al., 2019), so an object the
  normal classes do not explain is left without a confident class; zero in
  batches without anomalies.

Every term is reported separately so a term collapsing to zero is visible.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from anovox_training.data.targets import EMPTY, IGNORE_INDEX, anomaly_lut, class_lut
from anovox_training.model.head import HeadLogits

__all__ = ['LOSS_TERMS', 'DetectorLoss', 'LossWeights']

LOSS_TERMS = ('occupancy', 'semantic', 'anomaly', 'outlier_exposure')


@dataclass(frozen=True)
class LossWeights:
    """Term weights and positive-class weights (see module docstring)."""

    occupancy: float = 1.0
    occupancy_pos_weight: float = 4.0
    semantic: float = 0.5
    anomaly: float = 1.0
    anomaly_pos_weight: float = 10.0
    anomaly_focal_gamma: float = 2.0
    anomaly_class_balance: float = 0.0
    outlier_exposure: float = 0.5

    @classmethod
    def from_dict(cls, data: Mapping[str, float]) -> LossWeights:
        return cls(**{k: float(v) for k, v in data.items()})


def _weighted_bce(logits: Tensor, target: Tensor, weight: Tensor, gamma: float = 0.0) -> Tensor:
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction='none')
    if gamma > 0:
        # Focal factor (1 - p_t) ** gamma, p_t = probability of the true class. The normaliser stays
        # the plain weight sum, so the term's scale does not swing with how easy a batch is.
        p = torch.sigmoid(logits)
        p_true = p * target + (1.0 - p) * (1.0 - target)
        loss = loss * (1.0 - p_true).pow(gamma)
    return (loss * weight).sum() / weight.sum().clamp_min(1.0)


class DetectorLoss(torch.nn.Module):
    """Total loss and per-term values from head logits and dense label grids.

    Dense masks and weights instead of boolean gathers: the grid is large and
    gathers copy it several times per step.

    Args:
        classes: Normal class names, in the head's order.
        weights: Term weights.
    """

    def __init__(self, classes: tuple[str, ...], weights: LossWeights) -> None:
        super().__init__()
        self.weights = weights
        self.register_buffer('class_lut', torch.from_numpy(class_lut(classes)), persistent=False)
        self.register_buffer('anomaly_lut', torch.from_numpy(anomaly_lut()), persistent=False)

    def forward(self, logits: HeadLogits, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Compute the loss.

        Args:
            logits: Head outputs, (B, nz, nx, ny) layout.
            labels: (B, nx, ny, nz) uint8 label ids, ``EMPTY`` for free cells.

        Returns:
            ``(total, terms)``: the weighted sum and each unweighted term (detached).
        """
        w = self.weights
        lab = labels.permute(0, 3, 1, 2).long()  # to the head's (B, nz, nx, ny)
        occupied = (lab != EMPTY).float()
        occupancy = _weighted_bce(logits.occupancy, occupied, 1.0 + (w.occupancy_pos_weight - 1.0) * occupied)

        cls = self.class_lut[lab]
        n_classes = logits.semantic.shape[1]
        counts = torch.bincount(cls[cls != IGNORE_INDEX], minlength=n_classes).float()
        share = counts / counts.sum().clamp_min(1.0)
        n_present = (counts > 0).sum().clamp_min(1)
        class_weight = torch.where(counts > 0, (1.0 / (n_present * share.clamp_min(1e-12))).sqrt(), 0.0).clamp(max=10.0)
        per_voxel = F.cross_entropy(
            logits.semantic, cls, weight=class_weight, ignore_index=IGNORE_INDEX, reduction='sum'
        )
        voxel_weight = class_weight[cls.clamp(max=n_classes - 1)] * (cls != IGNORE_INDEX)
        semantic = per_voxel / voxel_weight.sum().clamp_min(1e-6)

        anom = self.anomaly_lut[lab]
        scored = (anom != IGNORE_INDEX).float()
        positive = (anom == 1).float()
        anomaly_weight = scored * (1.0 + (w.anomaly_pos_weight - 1.0) * positive)
        if w.anomaly_class_balance > 0:  # anomaly (and unscored) voxels have no normal class: weight 1
            anomaly_weight = anomaly_weight * torch.where(
                cls != IGNORE_INDEX, voxel_weight.pow(w.anomaly_class_balance), 1.0
            )
        anomaly = _weighted_bce(logits.anomaly, positive, anomaly_weight, w.anomaly_focal_gamma)

        # CE between the normal-class softmax and the uniform distribution (logsumexp - mean logit),
        # minus its minimum log K so that 0 means "uniform"; averaged over anomaly voxels.
        ce_uniform = torch.logsumexp(logits.semantic, dim=1) - logits.semantic.mean(dim=1)
        n_outliers = positive.sum()
        outlier_exposure = (ce_uniform - math.log(logits.semantic.shape[1])).mul(positive).sum() / n_outliers.clamp_min(
            1.0
        )

        terms = {
            'occupancy': occupancy,
            'semantic': semantic,
            'anomaly': anomaly,
            'outlier_exposure': outlier_exposure,
        }
        total = (
            w.occupancy * occupancy
            + w.semantic * semantic
            + w.anomaly * anomaly
            + w.outlier_exposure * outlier_exposure
        )
        return total, {k: v.detach() for k, v in terms.items()}
