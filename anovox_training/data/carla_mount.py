"""CARLA sensor mounts (AnoVox's sensor_setup.json) -> REP-103 body-frame transforms.

CARLA / Unreal mount frame: x forward, y right, z up (left-handed); rotations are
(pitch, yaw, roll) in degrees. A dataset convention: the reader and the generator
use it, the runtime never does (it takes ``T_cam_lidar`` as a parameter).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from anovox_perception.core.geometry import make_transform, rotation_from_rpy

__all__ = ['carla_mount_to_body']


def carla_mount_to_body(location_xyz: Any, rotation_pyr_deg: Any) -> np.ndarray:
    """Body-from-sensor transform (REP-103) of a CARLA sensor mount.

    CARLA is left-handed (y right) and gives rotations as (pitch, yaw, roll) in
    degrees, positive pitch = nose up, positive yaw = turn right. The conversion
    follows carla_ros_bridge: y -> -y, roll -> roll, pitch -> -pitch, yaw -> -yaw.
    The returned transform maps points in the sensor's own body-convention frame
    (x forward along the sensor axis, y left, z up) into the vehicle body frame.
    """
    x, y, z = (float(v) for v in location_xyz)
    pitch, yaw, roll = (math.radians(float(v)) for v in rotation_pyr_deg)
    return make_transform(rotation_from_rpy(roll, -pitch, -yaw), [x, -y, z])
