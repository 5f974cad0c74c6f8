"""Stage 4: per-voxel occupancy, normal-class semantics and anomaly score on the detector grid.

Per voxel the head predicts an occupancy logit, an anomaly logit and K normal-class
logits. Training uses the training split's anomaly categories as outlier exposure:
the anomaly logit learns "known anomaly vs. normal" and the semantic logits are
pushed towards uniform on anomaly voxels. The exported score combines both as a
noisy-OR of two cues,

    score = 1 - (1 - sigmoid(anomaly_logit / T)) * max_softmax(semantic_logits) ** w,

so a voxel scores high when it resembles a known anomaly *or* fits none of the
normal classes. The second cue is what lets categories never seen in training
still score high: the anomaly logit alone tends to fire only on look-alikes of
the training outliers, while the normal classes are learned from every frame.
``w`` (``ScoreRule.semantic_weight``) trades the two; 0 disables the second cue.
``T`` (``ScoreRule.anomaly_temperature``) only spreads the scores: AnoVox's
FPR95, F1 and PPV read them on a fixed 0.01 threshold grid, and an over-confident
logit would crowd all normal voxels and the hardest anomalies below 0.01. Both are
chosen on validation after training (``anovox_training.calibrate.score_tuning``) and travel in
the model's calibration (:mod:`anovox_perception.core.calibration`).

The last layer sees one feature vector per BEV column and gives each z cell its own
linear read-out of it, so it cannot tell "the ground under (or in front of) an
object" from "the object" beyond what a linear map of column features allows: the
voxels that share a column or a camera ray with an anomaly inherit its score.
An optional :class:`VoxelRefiner` (``ModelConfig.voxel_refine`` > 0) adds a small
per-voxel network over each voxel's own evidence (its height slice and its
neighbours above and below, its height relative to the column's lowest and highest
LiDAR point, the coarse logits) joined with the column features, and adds its
output to the coarse occupancy and anomaly logits.

The exported score is then averaged over a small window at each height, weighted by
the square root of the occupancy probability (:func:`smooth_scores`,
``ScoreRule.score_smoothing``): an object is one consensus across its cross-section,
so the voxels of an unseen object that score low on their own borrow from the rest of
it, and the road voxels next to an object, which share its column features, are
outvoted by the road around them. Free space carries almost no weight, so it does not
dilute the object; the square root keeps the weakly occupied voxels of an object's rim
in the vote (on the 80-scenario validation split it beat the plain probability and its
square in AP, and matched the fourth root's AP at a better F1 and FPR95;
models/README.md).

Last, an optional LiDAR-support gate (:func:`gate_by_lidar`, ``ScoreRule.lidar_support``):
a voxel keeps its score only when a LiDAR return lies in the cube of that side around it,
and scores 0 otherwise. The occupancy head fills in what the rays did not see (the far side
of an object, the road behind it), and on a real street it fills in far more than on the
synthetic frames it was calibrated on; a claim of an anomaly there rests on the camera and
on context alone. The gate reads the BEV input's 0/1 height slices, which say exactly which
voxels hold a return.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from anovox_perception.core.preprocess import BEV_COLUMN_FEATURES
from anovox_training.model.backbones import conv_bn_relu

__all__ = ['HeadLogits', 'VoxelHead', 'VoxelRefiner', 'anomaly_score', 'gate_by_lidar', 'smooth_scores']

# Initial output biases: rare positives start near their prior, which keeps the
# first steps of training stable (the RetinaNet trick).
_OCCUPANCY_PRIOR = 0.02
_ANOMALY_PRIOR = 0.01
# Below this mean window weight (occupancy probability) a voxel keeps its own score.
_MIN_WEIGHT = 1e-6
# Where the refiner finds the column's highest and lowest point among the BEV column features.
_HIGHEST = BEV_COLUMN_FEATURES.index('max_height')
_LOWEST = BEV_COLUMN_FEATURES.index('min_height')


class HeadLogits(NamedTuple):
    """Raw head outputs, each on the (nz, nx, ny) grid (z first, as the convs produce them).

    Attributes:
        occupancy: (B, nz, nx, ny) occupancy logits.
        anomaly: (B, nz, nx, ny) anomaly logits.
        semantic: (B, K, nz, nx, ny) normal-class logits.
    """

    occupancy: Tensor
    anomaly: Tensor
    semantic: Tensor


def anomaly_score(
    anomaly_logit: Tensor, semantic_logits: Tensor, semantic_weight: float, temperature: float = 1.0
) -> Tensor:
    """The noisy-OR anomaly score in [0, 1] (see module docstring).

    Args:
        anomaly_logit: (...) anomaly logits.
        semantic_logits: (B, K, ...) normal-class logits (class dim 1).
        semantic_weight: Exponent ``w`` of the max-softmax term.
        temperature: ``T`` dividing the anomaly logit.

    Returns:
        Scores shaped like ``anomaly_logit``.
    """
    p_anomaly = torch.sigmoid(anomaly_logit if temperature == 1.0 else anomaly_logit * (1.0 / temperature))
    if semantic_weight == 0:
        return p_anomaly
    msp = torch.softmax(semantic_logits, dim=1).amax(dim=1)
    return 1.0 - (1.0 - p_anomaly) * msp.pow(semantic_weight)


def smooth_scores(score: Tensor, occupancy: Tensor, size: int) -> Tensor:
    """Mean of the scores over a ``size`` x ``size`` window at each height, weighted by sqrt(occupancy).

    Args:
        score: (B, nz, nx, ny) anomaly scores in [0, 1].
        occupancy: (B, nz, nx, ny) occupancy probabilities (their square roots are the weights).
        size: Odd window side in cells; 1 returns ``score`` unchanged.

    Returns:
        Scores shaped like ``score``, in [0, 1] (a convex combination of the window's scores;
        a window without weight keeps the voxel's own score).
    """
    if size == 1:
        return score
    # Each z slice is a channel, so 2D pooling never mixes heights; the pooling's 1/size^2
    # cancels in the ratio. The clamp keeps the square root's gradient finite at 0. In free
    # space (every weight ~0) runtimes may disagree on the ratio (ONNX Runtime's logistic is
    # exact in absolute, not relative, terms), but those voxels are never predicted occupied.
    vote = occupancy.clamp_min(1e-20).sqrt()
    weighted = F.avg_pool2d(score * vote, size, stride=1, padding=size // 2)
    weight = F.avg_pool2d(vote, size, stride=1, padding=size // 2)
    smoothed = (weighted / weight.clamp_min(_MIN_WEIGHT)).clamp(0.0, 1.0)
    return torch.where(weight > _MIN_WEIGHT, smoothed, score)


def gate_by_lidar(score: Tensor, bev: Tensor, window: int) -> Tensor:
    """Zero the scores of voxels with no LiDAR return in the ``window``-sided cube around them.

    Args:
        score: (B, nz, nx, ny) anomaly scores.
        bev: (B, nz + 4, nx, ny) the (routed) BEV input; its first nz channels are the 0/1
            height slices of the voxels that hold a return.
        window: Odd cube side in cells (1: the voxel itself); 0 returns ``score`` unchanged.

    Returns:
        Scores shaped like ``score``.
    """
    if window == 0:
        return score
    nz = score.shape[1]
    hit = (bev[:, :nz] > 0).to(score.dtype).unsqueeze(1)
    if window > 1:
        # A cube max is three 1D maxima: 3 * window comparisons per voxel instead of window^3.
        pad = window // 2
        hit = F.max_pool3d(hit, (window, 1, 1), stride=1, padding=(pad, 0, 0))
        hit = F.max_pool3d(hit, (1, window, 1), stride=1, padding=(0, pad, 0))
        hit = F.max_pool3d(hit, (1, 1, window), stride=1, padding=(0, 0, pad))
    return score * hit.squeeze(1)


class VoxelRefiner(nn.Module):
    """Per-voxel correction of the occupancy and anomaly logits from each voxel's vertical evidence.

    Per voxel: the column features (a 1x1 projection, shared by the column's z cells)
    plus a projection of local inputs over the voxel and its neighbours above and below
    (a (3, 1, 1) 3D convolution): the LiDAR height-slice occupancy, the voxel's height
    above the column's lowest and below its highest point, and the coarse occupancy and
    anomaly logits. Two ReLU layers, then a linear map to logit corrections. The last
    layer starts at zero, so an untrained refiner leaves the coarse logits unchanged.
    The semantic logits are left alone: refining all 2 + K channels costs three times
    as much on a CPU and the exported score reads them only through max-softmax.

    Args:
        column_channels: Channels of the column features.
        nz: Grid cells along z.
        width: Hidden channels.
    """

    # Local inputs per voxel: slice occupancy, height above the column's lowest point,
    # height below its highest point, coarse occupancy and anomaly logits.
    N_INPUTS = 5
    N_REFINED = 2

    def __init__(self, column_channels: int, nz: int, width: int) -> None:
        super().__init__()
        self.nz = nz
        self.column = nn.Conv2d(column_channels, width, 1)
        self.local = nn.Conv3d(self.N_INPUTS, width, (3, 1, 1), padding=(1, 0, 0))
        self.mix = nn.Conv3d(width, width, (3, 1, 1), padding=(1, 0, 0))
        self.out = nn.Conv3d(width, self.N_REFINED, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        # z cell centres on the BEV's [0, 1] height scale.
        self.register_buffer('z_centre', ((torch.arange(nz) + 0.5) / nz).view(1, nz, 1, 1), persistent=False)

    def forward(self, coarse: Tensor, column: Tensor, bev: Tensor) -> Tensor:
        """Refined occupancy and anomaly logits.

        Args:
            coarse: (B, 2, nz, nx, ny) coarse occupancy and anomaly logits.
            column: (B, column_channels, nx, ny) column features.
            bev: (B, nz + 4, nx, ny) the BEV input (slices, then the column features of
                ``BEV_COLUMN_FEATURES``, heights on the grid's [0, 1] z scale).

        Returns:
            (B, 2, nz, nx, ny) logits.
        """
        nz = self.nz
        occupancy = bev[:, :nz]
        highest = bev[:, nz + _HIGHEST : nz + _HIGHEST + 1]
        lowest = bev[:, nz + _LOWEST : nz + _LOWEST + 1]
        # In cells / 4: a few cells above the ground is what separates an object from the road.
        scale = nz / 4.0
        above_lowest = (self.z_centre - lowest) * scale
        below_highest = (highest - self.z_centre) * scale
        local = torch.cat([torch.stack([occupancy, above_lowest, below_highest], dim=1), coarse], dim=1)
        hidden = F.relu(self.local(local) + self.column(column).unsqueeze(2))
        hidden = F.relu(self.mix(hidden))
        return coarse + self.out(hidden)


class VoxelHead(nn.Module):
    """U-Net style decoder from the fused coarse features back to full grid resolution.

    Args:
        widths: BEV backbone widths, finest first (the decoder mirrors them).
        nz: Grid cells along z.
        n_classes: Normal semantic classes K.
        semantic_weight: Exponent of the max-softmax cue in :func:`anomaly_score`.
        bev_channels: Channels of the BEV input, joined to the last layer.
        temperature: ``T`` of :func:`anomaly_score`.
        refine_width: Hidden width of the :class:`VoxelRefiner` (0: none).
        score_smoothing: Window side of :func:`smooth_scores` (1: none).
        lidar_support: Cube side of :func:`gate_by_lidar` (0: no gate).
    """

    def __init__(
        self,
        widths: tuple[int, ...],
        nz: int,
        n_classes: int,
        semantic_weight: float,
        bev_channels: int,
        temperature: float = 1.0,
        refine_width: int = 0,
        score_smoothing: int = 1,
        lidar_support: int = 0,
    ) -> None:
        super().__init__()
        self.nz = nz
        self.score_smoothing = score_smoothing
        self.lidar_support = lidar_support
        self.n_classes = n_classes
        self.semantic_weight = semantic_weight
        self.temperature = temperature
        ups = []
        for coarse, fine in zip(widths[:0:-1], widths[-2::-1], strict=True):
            # 1x1 merge of upsampled and skip features, then one 3x3 conv: cheap at fine scales.
            ups.append(nn.Sequential(conv_bn_relu(coarse + fine, fine, kernel=1), conv_bn_relu(fine, fine)))
        self.ups = nn.ModuleList(ups)
        # The raw BEV joins the last layer: its height slices tell each z cell apart
        # (ground under an object vs. the object) at no cost in depth.
        self.out = nn.Conv2d(widths[0] + bev_channels, nz * (2 + n_classes), 1)
        with torch.no_grad():
            bias = self.out.bias.view(2 + n_classes, nz)
            bias.zero_()
            bias[0] = math.log(_OCCUPANCY_PRIOR / (1 - _OCCUPANCY_PRIOR))
            bias[1] = math.log(_ANOMALY_PRIOR / (1 - _ANOMALY_PRIOR))
        self.refiner = VoxelRefiner(widths[0] + bev_channels, nz, refine_width) if refine_width > 0 else None

    def forward(self, fused: Tensor, skips: list[Tensor], bev: Tensor) -> HeadLogits:
        """Decode.

        Args:
            fused: (B, C_last, qx, qy) fused features at the coarsest scale.
            skips: BEV backbone features finest first (the last entry is unused).
            bev: (B, C_bev, nx, ny) the BEV input.

        Returns:
            The per-voxel logits.
        """
        x = fused
        for up, skip in zip(self.ups, skips[-2::-1], strict=True):
            x = F.interpolate(x, scale_factor=2.0, mode='nearest')
            x = up(torch.cat([x, skip], dim=1))
        column = torch.cat([x, bev], dim=1)
        out = self.out(column)
        b, _, nx, ny = out.shape
        out = out.reshape(b, 2 + self.n_classes, self.nz, nx, ny)
        if self.refiner is not None:
            out = torch.cat([self.refiner(out[:, :2], column, bev), out[:, 2:]], dim=1)
        return HeadLogits(occupancy=out[:, 0], anomaly=out[:, 1], semantic=out[:, 2:])

    def probabilities(
        self,
        logits: HeadLogits,
        bev: Tensor | None = None,
        *,
        score_smoothing: int | None = None,
        lidar_support: int | None = None,
    ) -> tuple[Tensor, Tensor]:
        """(occupancy, anomaly) probabilities, each (B, nx, ny, nz).

        Args:
            logits: Head outputs.
            bev: The routed BEV input, which the LiDAR-support gate reads (None: only without a gate).
            score_smoothing: Window side overriding the head's own (validation tries several).
            lidar_support: Gate cube side overriding the head's own (validation tries several).

        Raises:
            ValueError: A gate is asked for without the BEV input.
        """
        occupancy = torch.sigmoid(logits.occupancy)
        score = anomaly_score(logits.anomaly, logits.semantic, self.semantic_weight, self.temperature)
        size = self.score_smoothing if score_smoothing is None else score_smoothing
        score = smooth_scores(score, occupancy, size)
        support = self.lidar_support if lidar_support is None else lidar_support
        if support:
            if bev is None:
                msg = 'VoxelHead.probabilities: the LiDAR-support gate needs the BEV input'
                raise ValueError(msg)
            score = gate_by_lidar(score, bev, support)
        return occupancy.permute(0, 2, 3, 1), score.permute(0, 2, 3, 1)
