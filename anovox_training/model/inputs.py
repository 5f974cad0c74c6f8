"""Stage 1: model inputs. Names, shapes, example tensors, and the modality switch.

The tensors themselves are built in numpy by ``anovox_perception.core.preprocess`` (the
node runs the same code); this stage only routes them and applies the variant's
modality, so a LiDAR-only or camera-only model sees exactly what it may use.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from anovox_perception.core.geometry import OPTICAL_FROM_BODY, CameraModel, make_transform
from anovox_perception.core.preprocess import INPUT_NAMES, InputSpec, build_inputs

__all__ = ['INPUT_NAMES', 'DetectorInputs', 'InputStage', 'example_inputs']


class DetectorInputs(NamedTuple):
    """The model inputs (see ``anovox_perception.core.preprocess`` for shapes and meaning)."""

    image: Tensor
    bev: Tensor
    camera_valid: Tensor
    cell_uv: Tensor
    cell_valid: Tensor
    cell_rays: Tensor
    token_rays: Tensor


class InputStage(nn.Module):
    """Applies the modality: 'lidar' ignores the camera, 'camera' ignores the LiDAR BEV.

    The image is multiplied by ``camera_valid`` so a missing camera can never leak
    stale pixels into the features.
    """

    def __init__(self, modality: str) -> None:
        super().__init__()
        self.modality = modality

    def forward(self, inputs: DetectorInputs) -> DetectorInputs:
        valid = inputs.camera_valid
        bev = inputs.bev
        if self.modality == 'lidar':
            valid = torch.zeros_like(valid)
        elif self.modality == 'camera':
            bev = torch.zeros_like(bev)
        image = inputs.image * valid[:, :, None, None]
        return inputs._replace(image=image, bev=bev, camera_valid=valid)


def default_rig() -> tuple[CameraModel, np.ndarray]:
    """The AnoVox MONO rig: 768x512, 90 deg camera and LiDAR at the same mount, facing forward."""
    camera = CameraModel.from_fov(768, 512, 90.0)
    return camera, make_transform(OPTICAL_FROM_BODY, np.zeros(3))


def example_inputs(spec: InputSpec, batch: int = 1, seed: int = 0) -> dict[str, Tensor]:
    """Realistic example inputs (random image, a ground plane plus boxes of LiDAR points).

    Built through the real preprocessing so tracing and export see valid geometry.

    Args:
        spec: Input specification.
        batch: Batch size.
        seed: Random seed.

    Returns:
        Dict of float32 tensors keyed by :data:`INPUT_NAMES`, each with ``batch`` rows.
    """
    rng = np.random.default_rng(seed)
    camera, t_cam_lidar = default_rig()
    g = spec.grid
    n = 4000
    xs = rng.uniform(g.x_min_m, g.x_max_m, n)
    ys = rng.uniform(g.y_min_m, g.y_max_m, n)
    zs = np.where(rng.random(n) < 0.7, -1.8, rng.uniform(-1.8, 0.5, n))
    points = np.stack([xs, ys, zs, rng.random(n)], axis=1).astype(np.float32)
    rgb = rng.integers(0, 256, (camera.height, camera.width, 3), dtype=np.uint8)
    arrays = build_inputs(spec, rgb, points, camera, t_cam_lidar)
    return {name: torch.from_numpy(np.repeat(arrays[name], batch, axis=0)) for name in INPUT_NAMES}


__all__ += ['default_rig']
