"""Training-time augmentation: mirroring a whole sample, and jittering or dropping LiDAR intensity.

Mirroring y -> -y gives a new, physically consistent scene (traffic on the other
side, objects on the other shoulder) seen by the mirrored rig. Every input moves
with it: the image flips left-right, the BEV and the labels flip along y, and the
camera geometry inputs flip with their y components negated (a mirrored camera
projects a mirrored cell to the mirrored pixel). That makes it exact for any rig,
symmetric or not; it needs only a grid whose y range is symmetric about 0, so
that flipping the y index is mirroring y.

LiDAR intensity is the least portable input: its scale and response curve differ
between sensors (a real HDL-64E's reflectance is not the synthetic intensity). The
intensity augmentation remaps a sample's mean-intensity BEV channel by a random
gain and gamma, ``clip(gain * x ** gamma, 0, 1)``, or zeroes it (what a cloud
without intensity, or a model with ``lidar_intensity: ignore``, gives), so the
model cannot lean on one sensor's intensity scale.

Every random choice is seeded by ``(seed, step, rank)``, so a resumed run repeats it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from anovox_perception.core.errors import ConfigError
from anovox_perception.core.geometry import GridSpec
from anovox_perception.core.preprocess import BEV_COLUMN_FEATURES

__all__ = [
    'INTENSITY_GAIN_RANGE',
    'INTENSITY_GAMMA_RANGE',
    'check_mirrorable',
    'intensity_channel',
    'jitter_intensity',
    'mirror_mask',
    'mirror_y',
]

# Log-uniform ranges of the intensity gain and gamma: a factor of 2 either way.
INTENSITY_GAIN_RANGE = (0.5, 2.0)
INTENSITY_GAMMA_RANGE = (0.5, 2.0)


def check_mirrorable(grid: GridSpec) -> None:
    """Raise :class:`ConfigError` unless the grid's y range is symmetric about 0."""
    if grid.y_min_m != -grid.y_max_m:
        msg = (
            f'train.mirror needs a grid symmetric in y (y_min_m = -y_max_m), got '
            f'[{grid.y_min_m}, {grid.y_max_m}); set train.mirror to 0 or centre the grid'
        )
        raise ConfigError(msg)


def _flip(x: Tensor, dim: int, negate: tuple[int, ...] = ()) -> Tensor:
    """Flip ``x`` along ``dim`` and negate the listed channels (dim 1)."""
    out = torch.flip(x, dims=(dim,))
    if negate:
        sign = torch.ones(x.shape[1], dtype=x.dtype, device=x.device)
        sign[list(negate)] = -1.0
        out = out * sign.view(1, -1, *([1] * (x.dim() - 2)))
    return out


# Inputs whose last axis is y (BEV and cell grids) or the image column: image (B, 3, H, W),
# bev (B, C, nx, ny), cell_valid (B, L, qx, qy), cell_rays (B, 4 L, qx, qy) and token_rays
# (B, 3, th, tw). The ray inputs hold direction vectors along dim 1, (x, y, z) per token and
# (x, y, z, log distance) per lift height: their y components, every 3rd / 4th channel from
# channel 1, change sign.
_Y_LAST = ('image', 'bev', 'cell_valid', 'cell_rays', 'token_rays')
_Y_COMPONENT_EVERY = {'cell_rays': 4, 'token_rays': 3}


def _mirrored(name: str, x: Tensor) -> Tensor:
    if name in _Y_LAST:
        every = _Y_COMPONENT_EVERY.get(name)
        return _flip(x, -1, negate=tuple(range(1, x.shape[1], every)) if every else ())
    if name == 'labels':  # (B, nx, ny, nz)
        return _flip(x, 2)
    if name == 'cell_uv':  # (B, L, qx, qy, 2): u is the image column
        flipped = torch.flip(x, dims=(3,))
        u = flipped[..., :1]
        # Projections outside the image carry preprocessing's -2 sentinel: keep it, mirror the rest.
        return torch.cat([torch.where(u.abs() <= 1.0, -u, u), flipped[..., 1:]], dim=-1)
    return x  # camera_valid and anything without a y axis


def mirror_y(batch: Mapping[str, Tensor], which: Tensor) -> dict[str, Tensor]:
    """Mirror the samples of ``batch`` where ``which`` is True (see module docstring).

    Args:
        batch: Model inputs by name (batched) and ``labels`` (B, nx, ny, nz).
        which: (B,) bool, the samples to mirror.

    Returns:
        A new dict; unmirrored samples are unchanged.
    """
    if not bool(which.any()):
        return dict(batch)
    out = {}
    for name, x in batch.items():
        flipped = _mirrored(name, x)
        if flipped is x:
            out[name] = x
            continue
        pick = which.to(x.device).view(-1, *([1] * (x.dim() - 1)))
        out[name] = torch.where(pick, flipped, x)
    return out


def mirror_mask(batch_size: int, p: float, seed: int, step: int, rank: int) -> Tensor:
    """Which samples of a step to mirror: seeded by (seed, step, rank), so a resumed run repeats it."""
    if p <= 0:
        return torch.zeros(batch_size, dtype=torch.bool)
    gen = torch.Generator().manual_seed(seed * 1_000_033 + step * 7_919 + rank + 17)
    return torch.rand(batch_size, generator=gen) < p


def intensity_channel(grid: GridSpec) -> int:
    """Index of the mean-intensity channel in the ``bev`` input (after the nz height slices)."""
    return grid.nz + BEV_COLUMN_FEATURES.index('mean_intensity')


def _log_uniform(u: Tensor, bounds: tuple[float, float]) -> Tensor:
    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    return torch.exp(lo + (hi - lo) * u)


def jitter_intensity(
    bev: Tensor, channel: int, p_jitter: float, p_drop: float, seed: int, step: int, rank: int
) -> Tensor:
    """Per sample: drop the intensity channel with ``p_drop``, else remap it by gain and gamma with ``p_jitter``.

    Args:
        bev: (B, C, nx, ny) BEV batch; its ``channel`` holds mean intensity in [0, 1].
        channel: The intensity channel (:func:`intensity_channel`).
        p_jitter: Probability of a random gain and gamma (see the module docstring).
        p_drop: Probability of zeroing the channel.
        seed: Run seed.
        step: Global step.
        rank: Process rank.

    Returns:
        ``bev`` itself when both probabilities are 0, else a new tensor.
    """
    if p_jitter <= 0 and p_drop <= 0:
        return bev
    gen = torch.Generator().manual_seed(seed * 1_000_037 + step * 6_151 + rank + 29)
    u = torch.rand(bev.shape[0], 4, generator=gen)
    drop = u[:, 0] < p_drop
    jitter = (u[:, 1] < p_jitter) & ~drop
    gain = _log_uniform(u[:, 2], INTENSITY_GAIN_RANGE).to(bev.device, bev.dtype).view(-1, 1, 1)
    gamma = _log_uniform(u[:, 3], INTENSITY_GAMMA_RANGE).to(bev.device, bev.dtype).view(-1, 1, 1)
    x = bev[:, channel]
    remapped = (gain * x.clamp(0.0, 1.0) ** gamma).clamp(0.0, 1.0)  # empty columns (0) stay 0
    keep = (~drop).to(bev.device).view(-1, 1, 1)
    out = bev.clone()
    out[:, channel] = torch.where(jitter.to(bev.device).view(-1, 1, 1), remapped, x) * keep
    return out
