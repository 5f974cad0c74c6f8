"""Writing frames in AnoVox Layout B (docs/LAYOUT_B.md).

One folder per sensor, named like AnoVox's generator names them
(``RGB-CAM(0, 0, 1.8)(0, 0, 0)_<hash>``), files ``<folder>_<frame>.<ext>``,
plus VOXEL_GRID, ACTION and ANOMALY folders and ``sensor_setup.json``.

Conventions at the file boundary (as real AnoVox data):
- point clouds are stored as (x, -y, z, value) float32 (CARLA's left-handed y);
- ACTION's ego location / rotation / velocity and the 4x4 transforms are in
  CARLA's world convention: ``camera_transformation`` and
  ``lidar_transformation`` are ``carla.Transform.get_matrix()`` matrices
  (world from sensor, Unreal axes: x forward, y right, z up, left-handed world),
  i.e. ``S @ T @ S`` with ``S = diag(1, -1, 1, 1)`` of the REP-103 pose ``T``;
  rotations are [pitch, yaw, roll] in degrees;
- ANOMALY locations are in the REP-103 LiDAR frame of the frame.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from anovox_training.data.synth.pipeline import FrameData, SensorRig

__all__ = ['LayoutBWriter', 'encode_depth', 'sensor_folders']

_MOUNT = '(0, 0, 1.8)(0, 0, 0)'
_FLIP_Y = np.diag([1.0, -1.0, 1.0, 1.0])
# Depth PNGs store up to 1000 m in 24 bits (CARLA's linear depth encoding).
_DEPTH_SCALE = (256**3 - 1) / 1000.0


@dataclass(frozen=True)
class _Sensor:
    key: str
    prefix: str
    carla_type: str
    ending: str


_SENSORS = (
    _Sensor('rgb', 'RGB-CAM', 'sensor.camera.rgb', 'png'),
    _Sensor('depth', 'DEPTH_CAM', 'sensor.camera.depth', 'png'),
    _Sensor('semantic', 'SEMANTIC-CAM', 'sensor.camera.semantic_segmentation', 'png'),
    _Sensor('instance', 'INSTANCE-CAM', 'sensor.camera.instance_segmentation', 'png'),
    _Sensor('points', 'LIDAR', 'sensor.lidar.ray_cast', 'npy'),
    _Sensor('semantic_points', 'SEMANTIC-LIDAR', 'sensor.lidar.ray_cast_semantic', 'npy'),
)


def _sensor_args(sensor: _Sensor, rig: SensorRig) -> dict[str, str]:
    if sensor.ending == 'png':
        cam = rig.camera.camera
        fov = math.degrees(2 * math.atan(cam.width / (2 * cam.fx)))
        return {'image_size_x': str(cam.width), 'image_size_y': str(cam.height), 'fov': f'{fov:g}'}
    lidar = rig.lidar
    args = {
        'channels': str(lidar.channels),
        'range': f'{lidar.range_m:g}',
        'upper_fov': f'{lidar.upper_fov_deg:g}',
        'lower_fov': f'{lidar.lower_fov_deg:g}',
        'rotation_frequency': '10',
        'points_per_second': str(lidar.channels * lidar.azimuth_steps * 10),
    }
    if sensor.key == 'points':
        args['noise_stddev'] = f'{lidar.noise_stddev_m:g}'
    return args


def sensor_folders(rig: SensorRig) -> dict[str, str]:
    """Folder name of each sensor stream ('rgb', 'depth', ..., 'semantic_points')."""
    names = {}
    for sensor in _SENSORS:
        digest = hashlib.sha1(
            f'{sensor.prefix}{_MOUNT}{json.dumps(_sensor_args(sensor, rig), sort_keys=True)}'.encode()
        )
        names[sensor.key] = f'{sensor.prefix}{_MOUNT}_{digest.hexdigest()[:8]}'
    return names


def encode_depth(depth_m: np.ndarray) -> np.ndarray:
    """CARLA depth PNG pixels (H, W, 3) uint8 of planar depths in metres (clipped to 0..1000 m)."""
    value = np.rint(np.clip(depth_m, 0.0, 1000.0).astype(np.float64) * _DEPTH_SCALE).astype(np.int64)
    return np.stack([value & 255, (value >> 8) & 255, (value >> 16) & 255], axis=-1).astype(np.uint8)


def _fmt(value: object) -> str:
    """Deterministic text of scalars and (nested) sequences of numbers."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return '[' + ', '.join(_fmt(v) for v in value) + ']'
    if isinstance(value, (float, np.floating)):
        return repr(round(float(value), 6) + 0.0)
    return str(value)


def _carla_pose(world_from_sensor: np.ndarray) -> tuple[list[float], list[float], np.ndarray]:
    """CARLA location, [pitch, yaw, roll] (deg) and matrix of a REP-103 world-from-sensor pose."""
    m = _FLIP_Y @ world_from_sensor @ _FLIP_Y
    r = world_from_sensor[:3, :3]
    yaw = math.atan2(r[1, 0], r[0, 0])
    pitch = math.asin(max(-1.0, min(1.0, -r[2, 0])))
    roll = math.atan2(r[2, 1], r[2, 2])
    # CARLA from REP-103 (as carla_ros_bridge): pitch and yaw change sign, roll keeps it.
    rotation = [-math.degrees(pitch), -math.degrees(yaw), math.degrees(roll)]
    return m[:3, 3].tolist(), rotation, m


class LayoutBWriter:
    """Writes one scenario folder.

    Args:
        root: Dataset folder; the scenario goes to ``root/Scenario_<scenario_id>``.
        scenario_id: Scenario uuid.
        rig: The sensor rig (sets folder names and sensor_setup.json).
        png_compression: zlib level for PNGs (1 is fast; the output is deterministic for any level).
    """

    def __init__(self, root: Path, scenario_id: str, rig: SensorRig, png_compression: int = 1) -> None:
        self.dir = Path(root) / f'Scenario_{scenario_id}'
        self.rig = rig
        self.folders = sensor_folders(rig)
        self.png_compression = png_compression

    def write_setup(self) -> None:
        """Create the folders and sensor_setup.json."""
        setup = {}
        for sensor in _SENSORS:
            name = self.folders[sensor.key]
            (self.dir / name).mkdir(parents=True, exist_ok=True)
            setup[name] = {
                'sensor_type': sensor.carla_type,
                'file_ending': sensor.ending,
                'location': [0, 0, 1.8],
                'rotation': [0, 0, 0],
                'args': _sensor_args(sensor, self.rig),
            }
        for extra in ('VOXEL_GRID', 'ACTION', 'ANOMALY'):
            (self.dir / extra).mkdir(parents=True, exist_ok=True)
        (self.dir / 'sensor_setup.json').write_text(json.dumps(setup, indent=2, sort_keys=True) + '\n')

    def _path(self, folder: str, frame_id: int, ending: str) -> Path:
        return self.dir / folder / f'{folder}_{frame_id}.{ending}'

    def _png(self, key: str, frame_id: int, pixels: np.ndarray) -> None:
        Image.fromarray(pixels).save(
            self._path(self.folders[key], frame_id, 'png'), compress_level=self.png_compression
        )

    def write_frame(self, frame: FrameData) -> None:
        """Write every file of one frame."""
        f = frame.frame_id
        self._png('rgb', f, frame.rgb)
        self._png('depth', f, encode_depth(frame.depth_m))
        semantic = np.zeros(frame.semantic.shape + (3,), np.uint8)
        semantic[..., 0] = frame.semantic
        self._png('semantic', f, semantic)
        instance = np.stack([frame.semantic, frame.instance & 255, (frame.instance >> 8) & 255], axis=-1).astype(
            np.uint8
        )
        self._png('instance', f, instance)
        for key, cloud in (('points', frame.points), ('semantic_points', frame.semantic_points)):
            stored = cloud.copy()
            stored[:, 1] *= -1.0
            np.save(self._path(self.folders[key], f, 'npy'), stored.astype(np.float32))
        np.save(self._path('VOXEL_GRID', f, 'npy'), frame.voxels.astype(np.uint16))
        self._write_action(frame)
        self._write_anomaly(frame)

    def _write_action(self, frame: FrameData) -> None:
        location, rotation, lidar_matrix = _carla_pose(frame.world_from_lidar)
        ground = frame.world_from_lidar.copy()
        ground[2, 3] -= 1.8
        ego_location, ego_rotation, _ = _carla_pose(ground)
        velocity = np.asarray(frame.ego_velocity, np.float64) * np.array([1.0, -1.0, 1.0])
        rows = {
            'frame': frame.frame_id,
            'timestamp': round(frame.timestamp_s, 4),
            'ego_location': ego_location,
            'ego_rotation': ego_rotation,
            'ego_velocity': velocity,
            'ego_speed': float(np.linalg.norm(velocity)),
            # Camera and LiDAR share the mount, so their transforms coincide.
            'camera_transformation': lidar_matrix,
            'lidar_transformation': lidar_matrix,
        }
        text = ''.join(f'{k} ; {_fmt(v)}\n' for k, v in rows.items())
        self._path('ACTION', frame.frame_id, 'csv').write_text(text)

    def _write_anomaly(self, frame: FrameData) -> None:
        boxes = frame.anomalies
        if not boxes:
            text = 'category ; none\n'
        else:
            lines = []
            for k, box in enumerate(boxes):
                suffix = f'_{k}' if len(boxes) > 1 else ''
                fields = {
                    'anomaly_id': box.anomaly.anomaly_id,
                    'category': box.anomaly.category,
                    'label': box.anomaly.label,
                    'name': box.anomaly.name,
                    'location': box.center_m,
                    'size': box.size_m,
                    'yaw_deg': box.yaw_deg,
                    'instance_id': box.instance_id,
                }
                lines += [f'{key}{suffix} ; {_fmt(value)}\n' for key, value in fields.items()]
            text = ''.join(lines)
        self._path('ANOMALY', frame.frame_id, 'csv').write_text(text)
