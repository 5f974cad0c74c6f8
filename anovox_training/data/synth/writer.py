"""Writing frames in AnoVox Layout B, with the conventions of AnoVox's own generator (docs/LAYOUT_B.md).

One folder per sensor, named as AnoVox names them (``RGB-CAM(0, 0, 1.8)(0, 0, 0)_<hash>``,
with each sensor's own mount), files ``<folder>_<frame>.<ext>``, plus VOXEL_GRID,
ACTION and ANOMALY folders and ``sensor_setup.json``. What AnoVox's generator
writes is written the same way:

- point clouds: (N, 4) [x, -y_carla, z, value], i.e. already in the REP-103 LiDAR
  frame; float32 for the LiDAR, float64 for the semantic LiDAR (AnoVox concatenates
  the float32 points with uint32 tags);
- semantic camera: a single-channel PNG of label ids; instance camera: CARLA's RGB
  encoding (R = label, G + 256 B = instance id); depth: CARLA's linear RGB encoding;
- sensor_setup.json: AnoVox's sensor types (``RGB-CAM``, ``DEPTH_CAM``, ...),
  file endings with the dot, numeric args (``image_width``, ``image_height``,
  ``camera_fov``, LiDAR args), ``save_data``, mount rotations as rotations about
  (x, y, z); a varied rig (variation.py) is recorded there too: each sensor's own
  mount, AnoVox's keys with their drawn values (``dropoff_rate``, ``noise_stddev``,
  ``points_per_second``) and extra args (camera exposure, noise and shadows;
  LiDAR beam elevations and intensity model);
- ACTION csv: ``key ; value`` lines of Python reprs with AnoVox's keys
  (``frame_id``, ``scenario_id``, ``speed`` in km/h, the four ``carla.Transform``
  matrices, world from camera / LiDAR and their inverses, CARLA axes), then this generator's
  extra keys (``timestamp``, ego pose and velocity in CARLA's world convention);
- ANOMALY csv: AnoVox's keys (``anomaly_id`` = the actor's instance id,
  ``anomaly_type_id``, ``semantic_tags``, ``location`` in CARLA world coordinates)
  plus extra keys (``category``, ``label``, ``name``, ``size``, ``yaw`` as a CARLA
  world yaw, ``instance_id``), one block per anomaly within the LiDAR range, keys
  suffixed ``_<k>`` when a frame holds several; ``category ; none`` when it holds none.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from anovox_perception.core.geometry import invert_transform
from anovox_training.data.synth.lidar_returns import LidarResponse
from anovox_training.data.synth.pipeline import FrameData, SensorRig
from anovox_training.data.synth.scene import AnomalyBox
from anovox_training.data.synth.sensors import CameraRig, LidarRig, Mount

__all__ = ['LayoutBWriter', 'encode_depth', 'sensor_folders']

_FLIP_Y = np.diag([1.0, -1.0, 1.0, 1.0])
# Depth PNGs store up to 1000 m in 24 bits (CARLA's linear depth encoding).
_DEPTH_SCALE = (256**3 - 1) / 1000.0
_KMH_PER_MPS = 3.6


@dataclass(frozen=True)
class _Sensor:
    key: str
    sensor_type: str
    ending: str


# AnoVox's sensor types (EgoVehicleSetup.py); the type is also the folder name's prefix.
_SENSORS = (
    _Sensor('rgb', 'RGB-CAM', '.png'),
    _Sensor('depth', 'DEPTH_CAM', '.png'),
    _Sensor('semantic', 'SEMANTIC-CAM', '.png'),
    _Sensor('instance', 'INSTANCE-CAM', '.png'),
    _Sensor('points', 'LIDAR', '.npy'),
    _Sensor('semantic_points', 'SEMANTIC-LIDAR', '.npy'),
)


def _number(value: float) -> int | float:
    """A mount value as AnoVox prints it: integers without a decimal point."""
    value = float(value) + 0.0  # no '-0.0'
    return int(value) if value.is_integer() else value


def _mount_lists(mount: Mount) -> tuple[list[int | float], list[int | float]]:
    return [_number(v) for v in mount.location], [_number(v) for v in mount.rotation]


def _mount_text(mount: Mount) -> str:
    """``(x, y, z)(rx, ry, rz)`` as in AnoVox's folder names."""
    location, rotation = _mount_lists(mount)
    return f'{tuple(location)}{tuple(rotation)}'


def _mount_of(sensor: _Sensor, rig: SensorRig) -> Mount:
    return rig.camera_mount if sensor.ending == '.png' else rig.lidar_mount


def _sensor_args(sensor: _Sensor, rig: SensorRig) -> dict[str, object]:
    """The sensor's ``args``: AnoVox's keys (EgoVehiculeSensorDefaults.py), numeric, then a varied rig's extras.

    AnoVox's MONO rig writes exactly AnoVox's keys; a camera or LiDAR that differs
    from it in more than AnoVox's keys can say also records that (see `_camera_extras`
    and `_lidar_extras`).
    """
    if sensor.ending == '.png':
        cam = rig.camera.camera
        fov = math.degrees(2 * math.atan(cam.width / (2 * cam.fx)))
        args: dict[str, object] = {'image_height': cam.height, 'image_width': cam.width, 'camera_fov': round(fov, 6)}
        return args | _camera_extras(rig.camera)
    lidar = rig.lidar
    args = {
        'range': float(lidar.range_m),
        'upper_fov': float(lidar.upper_fov_deg),
        'lower_fov': float(lidar.lower_fov_deg),
        'channels': lidar.channels,
        # One revolution per 10 Hz frame.
        'rotation_frequency': 10.0,
        'points_per_second': lidar.channels * lidar.azimuth_steps * 10,
    }
    # The semantic LiDAR is noise-free and returns every hit.
    semantic = sensor.key == 'semantic_points'
    if not semantic:
        args['noise_stddev'] = float(lidar.noise_stddev_m)
    dropout = 0.0 if semantic else float(lidar.response.dropout_rate)
    args.update({'dropoff_rate': dropout, 'dropoff_intensity_limit': 0.0, 'dropoff_zero_intensity': 0.0})
    return args | _lidar_extras(lidar, semantic)


def _camera_extras(camera: CameraRig) -> dict[str, object]:
    """Not in AnoVox's files: the camera's image formation, when it is not the MONO rig's."""
    default = CameraRig(camera.camera)
    if (camera.exposure, camera.noise_stddev, camera.shadows) == (default.exposure, default.noise_stddev, False):
        return {}
    return {'exposure': float(camera.exposure), 'noise_stddev': float(camera.noise_stddev), 'shadows': camera.shadows}


def _lidar_extras(lidar: LidarRig, semantic: bool) -> dict[str, object]:
    """Not in AnoVox's files: uneven beam layouts and the LiDAR's response (lidar_returns.py), when present."""
    extras: dict[str, object] = {}
    if lidar.beam_elevations_deg:
        extras['beam_elevations'] = [float(e) for e in lidar.beam_elevations_deg]
    if lidar.azimuth_fov_deg < 360.0:
        extras['horizontal_fov'] = float(lidar.azimuth_fov_deg)
    response = lidar.response
    if not semantic and response != LidarResponse():
        extras.update(
            {
                'detection_range': float(response.detection_range_m),
                'albedo_weight': float(response.albedo_weight),
                'intensity_mode': response.intensity_mode,
                'intensity_scale': float(response.intensity_scale),
                'intensity_gamma': float(response.intensity_gamma),
                'intensity_noise': float(response.intensity_noise),
                'intensity_constant': float(response.intensity_constant),
            }
        )
    return extras


def sensor_folders(rig: SensorRig) -> dict[str, str]:
    """Folder name of each sensor stream ('rgb', 'depth', ..., 'semantic_points').

    AnoVox appends ``abs(hash(json.dumps(args)))``; Python's string hash changes
    between runs, so a decimal number from SHA-1 takes its place (deterministic).
    """
    names = {}
    for sensor in _SENSORS:
        mount = _mount_text(_mount_of(sensor, rig))
        text = f'{sensor.sensor_type}{mount}{json.dumps(_sensor_args(sensor, rig), sort_keys=True)}'
        number = int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], 'big') >> 1
        names[sensor.key] = f'{sensor.sensor_type}{mount}_{number}'
    return names


def encode_depth(depth_m: np.ndarray) -> np.ndarray:
    """CARLA depth PNG pixels (H, W, 3) uint8 of planar depths in metres (clipped to 0..1000 m)."""
    value = np.rint(np.clip(depth_m, 0.0, 1000.0).astype(np.float64) * _DEPTH_SCALE).astype(np.int64)
    return np.stack([value & 255, (value >> 8) & 255, (value >> 16) & 255], axis=-1).astype(np.uint8)


def _fmt(value: object) -> str:
    """Python-repr text of scalars and (nested) lists / tuples of numbers, as AnoVox's csv files hold."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list):
        return '[' + ', '.join(_fmt(v) for v in value) + ']'
    if isinstance(value, tuple):
        return '(' + ', '.join(_fmt(v) for v in value) + ')'
    if isinstance(value, (float, np.floating)):
        return repr(float(value) + 0.0)  # + 0.0: no '-0.0'
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)


def _csv(rows: dict[str, object]) -> str:
    return ''.join(f'{key} ; {_fmt(value)}\n' for key, value in rows.items())


def _carla_pose(world_from_sensor: np.ndarray) -> tuple[list[float], list[float], np.ndarray]:
    """CARLA location, [pitch, yaw, roll] (deg) and ``get_matrix()`` of a REP-103 world-from-sensor pose."""
    m = _FLIP_Y @ world_from_sensor @ _FLIP_Y
    r = world_from_sensor[:3, :3]
    yaw = math.atan2(r[1, 0], r[0, 0])
    pitch = math.asin(max(-1.0, min(1.0, -r[2, 0])))
    roll = math.atan2(r[2, 1], r[2, 2])
    # CARLA from REP-103 (as carla_ros_bridge): pitch and yaw change sign, roll keeps it.
    rotation = [-math.degrees(pitch), -math.degrees(yaw), math.degrees(roll)]
    return m[:3, 3].tolist(), rotation, m


def _anomaly_fields(box: AnomalyBox, world_from_lidar: np.ndarray) -> dict[str, object]:
    """One anomaly's csv fields: AnoVox's keys (CARLA world), then this generator's extras."""
    world = world_from_lidar[:3, :3] @ box.center_m + world_from_lidar[:3, 3]
    yaw = math.radians(box.yaw_deg)
    heading = world_from_lidar[:3, :3] @ np.array([math.cos(yaw), math.sin(yaw), 0.0])
    anomaly = box.anomaly
    return {
        # AnoVox's anomaly_id is the CARLA actor id, which the instance camera encodes.
        'anomaly_id': box.instance_id,
        'anomaly_type_id': 'static.prop.' + anomaly.name.replace('/', '_'),
        'anomaly_is_alive': True,
        'semantic_tags': [anomaly.label],
        'location': (float(world[0]), -float(world[1]), float(world[2])),
        'category': anomaly.category,
        'label': anomaly.label,
        'name': anomaly.name,
        'size': [float(v) for v in box.size_m],
        # CARLA world yaw (y right): positive turns right.
        'yaw': -math.degrees(math.atan2(heading[1], heading[0])),
        'instance_id': box.instance_id,
    }


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
        self.scenario_id = scenario_id
        self.rig = rig
        self.folders = sensor_folders(rig)
        self.png_compression = png_compression

    def write_setup(self) -> None:
        """Create the folders and sensor_setup.json (compact JSON, keys in AnoVox's order)."""
        setup = {}
        for sensor in _SENSORS:
            name = self.folders[sensor.key]
            (self.dir / name).mkdir(parents=True, exist_ok=True)
            location, rotation = _mount_lists(_mount_of(sensor, self.rig))
            setup[name] = {
                'sensor_type': sensor.sensor_type,
                'file_ending': sensor.ending,
                'location': location,
                'rotation': rotation,
                'args': _sensor_args(sensor, self.rig),
                'save_data': True,
            }
        for extra in ('VOXEL_GRID', 'ACTION', 'ANOMALY'):
            (self.dir / extra).mkdir(parents=True, exist_ok=True)
        (self.dir / 'sensor_setup.json').write_text(json.dumps(setup))

    def _path(self, folder: str, frame_id: int, ending: str) -> Path:
        return self.dir / folder / f'{folder}_{frame_id}{ending}'

    def _png(self, key: str, frame_id: int, pixels: np.ndarray) -> None:
        Image.fromarray(pixels).save(
            self._path(self.folders[key], frame_id, '.png'), compress_level=self.png_compression
        )

    def write_frame(self, frame: FrameData) -> None:
        """Write every file of one frame."""
        f = frame.frame_id
        self._png('rgb', f, frame.rgb)
        self._png('depth', f, encode_depth(frame.depth_m))
        self._png('semantic', f, np.ascontiguousarray(frame.semantic, dtype=np.uint8))
        instance = np.stack([frame.semantic, frame.instance & 255, (frame.instance >> 8) & 255], axis=-1).astype(
            np.uint8
        )
        self._png('instance', f, instance)
        # Clouds are in the REP-103 LiDAR frame already, which is how AnoVox stores them.
        np.save(self._path(self.folders['points'], f, '.npy'), frame.points.astype(np.float32, copy=False))
        np.save(self._path(self.folders['semantic_points'], f, '.npy'), frame.semantic_points.astype(np.float64))
        np.save(self._path('VOXEL_GRID', f, '.npy'), frame.voxels.astype(np.uint16, copy=False))
        self._write_action(frame)
        self._write_anomaly(frame)

    def _write_action(self, frame: FrameData) -> None:
        _, _, lidar_matrix = _carla_pose(frame.world_from_lidar)
        _, _, camera_matrix = _carla_pose(frame.world_from_camera)
        ego_location, ego_rotation, _ = _carla_pose(frame.world_from_ego)
        velocity = np.asarray(frame.ego_velocity, np.float64) * np.array([1.0, -1.0, 1.0])
        rows = {
            'frame_id': frame.frame_id,
            'scenario_id': self.scenario_id,
            'speed': _KMH_PER_MPS * float(np.linalg.norm(velocity)),
            'camera transformation matrix': camera_matrix,
            'camera inverse transformation matrix': invert_transform(camera_matrix),
            'lidar transformation matrix': lidar_matrix,
            'lidar inverse transformation matrix': invert_transform(lidar_matrix),
            # Not in AnoVox's files: simulation time and the ego's pose and velocity (CARLA world).
            'timestamp': round(frame.timestamp_s, 4),
            'ego_location': ego_location,
            'ego_rotation': ego_rotation,
            'ego_velocity': velocity,
        }
        self._path('ACTION', frame.frame_id, '.csv').write_text(_csv(rows))

    def _write_anomaly(self, frame: FrameData) -> None:
        rows: dict[str, object] = {'frame_id': frame.frame_id, 'scenario_id': self.scenario_id}
        boxes = frame.anomalies
        if not boxes:
            rows['category'] = 'none'
        for k, box in enumerate(boxes):
            suffix = f'_{k}' if len(boxes) > 1 else ''
            for key, value in _anomaly_fields(box, frame.world_from_lidar).items():
                rows[f'{key}{suffix}'] = value
        self._path('ANOMALY', frame.frame_id, '.csv').write_text(_csv(rows))
