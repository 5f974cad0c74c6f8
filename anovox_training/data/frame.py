"""Typed AnoVox frames: what the reader returns, in the REP-103 LiDAR frame.

Every array is numpy. Fields a scenario does not provide, or that were not
requested, are ``None`` (arrays) or empty (``action``, ``anomalies``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from anovox_perception.core.geometry import CameraModel

__all__ = ['SENSORS', 'AnoVoxFrame', 'AnomalyInfo']

# Everything ScenarioReader.read() can load, by the name used in its ``sensors`` argument.
SENSORS: tuple[str, ...] = (
    'rgb',
    'depth',
    'semantic',
    'instance',
    'points',
    'semantic_points',
    'voxels',
    'action',
    'anomaly',
)


@dataclass
class AnomalyInfo:
    """One anomaly object as the ANOMALY csv describes it.

    Attributes:
        category: AnoVox category (home, animal, nature, special, airplane, falling), or
            ``'unknown'`` when the file does not say.
        label: Semantic label id of the anomaly (29..34, or 100 for a generic anomaly).
        location_m: (3,) float64 centre in the LiDAR frame (REP-103), metres; NaN when unknown.
        size_m: (3,) float64 length, width, height in metres; NaN when unknown.
        yaw_deg: Heading about the LiDAR z axis in degrees; NaN when unknown.
        instance_id: Instance / actor id of the object (-1 when unknown).
    """

    category: str
    label: int
    location_m: np.ndarray
    size_m: np.ndarray
    yaw_deg: float
    instance_id: int


@dataclass
class AnoVoxFrame:
    """One frame of one scenario.

    Attributes:
        scenario: Scenario folder name (``Scenario_<id>``).
        frame_id: CARLA world frame number shared by all sensors of the frame.
        timestamp_s: Simulation time from the ACTION csv, when it has one.
        rgb: (H, W, 3) uint8.
        depth_m: (H, W) float32 metres along the optical axis.
        semantic: (H, W) uint8 label ids.
        instance: (H, W) int32 instance ids.
        points: (N, 4) float32 x, y, z, intensity in the LiDAR frame.
        semantic_points: (N, 4) float32 x, y, z, label id in the LiDAR frame.
        voxels: (M, 4) uint16 AnoVox voxel indices and label: ix, iy, iz, label.
        camera: Pinhole model of the camera the images come from.
        T_cam_lidar: (4, 4) float64 transform from the LiDAR frame to the camera optical frame.
        action: ACTION csv key -> parsed value (numbers, lists, 4x4 arrays, strings).
        anomalies: The anomaly objects of the frame (empty in normality frames).
    """

    scenario: str
    frame_id: int
    timestamp_s: float | None = None
    rgb: np.ndarray | None = None
    depth_m: np.ndarray | None = None
    semantic: np.ndarray | None = None
    instance: np.ndarray | None = None
    points: np.ndarray | None = None
    semantic_points: np.ndarray | None = None
    voxels: np.ndarray | None = None
    camera: CameraModel | None = None
    T_cam_lidar: np.ndarray | None = None
    action: dict[str, Any] = field(default_factory=dict)
    anomalies: list[AnomalyInfo] = field(default_factory=list)
