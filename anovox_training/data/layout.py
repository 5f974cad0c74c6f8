"""On-disk conventions of AnoVox scenarios: folder names, file names, mounts, scenario discovery.

Layout B (AnoVox's generator, and this project's synthetic generator)::

    Scenario_<id>/sensor_setup.json
    Scenario_<id>/RGB-CAM(0, 0, 1.8)(0, 0, 0)_<hash>/RGB-CAM(0, 0, 1.8)(0, 0, 0)_<hash>_<frame>.png
    ... DEPTH_CAM / DEPTH-CAM, SEMANTIC-CAM, INSTANCE-CAM, LIDAR, SEMANTIC-LIDAR (.npy)
    Scenario_<id>/VOXEL_GRID/VOXEL_GRID_<frame>.npy, ACTION/ACTION_<frame>.csv, ANOMALY/ANOMALY_<frame>.csv

Layout A (the benchmark's)::

    Scenario_<id>/{RGB_IMG,DEPTH_IMG,SEMANTIC_IMG,INSTANCE_IMG,PCD,SEMANTIC_PCD,VOXEL_GRID,ACTION,ANOMALY}/<FOLDER>_<frame>.<ext>

Sensor folders are recognised by prefix; frames by the integer after the last
``_`` of a file name. Mount rotations in AnoVox's own sensor_setup.json entries
and folder names are rotations about (x, y, z), i.e. [roll, pitch, yaw], as this
project's generator writes them too; entries typed with CARLA blueprint ids
(``sensor.*``, the generator's legacy output) give [pitch, yaw, roll].
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anovox_perception.core.errors import DataError, DecodeError

__all__ = [
    'CAMERA_KINDS',
    'DEFAULT_FOV_DEG',
    'DEFAULT_MOUNT',
    'EXTENSIONS',
    'FRAME_SUFFIX',
    'FrameDataError',
    'LAYOUT_A_FOLDERS',
    'LAYOUT_B_FIXED',
    'LAYOUT_B_PREFIXES',
    'LIDAR_KINDS',
    'LIDAR_MATRIX_KEYS',
    'Problem',
    'SENSOR_SETUP_FILE',
    'SENSOR_TYPES',
    'anovox_rotation_to_pyr',
    'find_scenarios',
    'is_scenario_dir',
    'layout_b_kind',
    'mount_from_name',
    'mount_text',
    'parse_numbers',
    'summarise_ids',
]

SENSOR_SETUP_FILE = 'sensor_setup.json'
# AnoVox's MONO rig: camera and LiDAR at (0, 0, 1.8) m, no rotation.
DEFAULT_MOUNT: tuple[tuple[float, float, float], tuple[float, float, float]] = ((0.0, 0.0, 1.8), (0.0, 0.0, 0.0))
DEFAULT_FOV_DEG = 90.0

LAYOUT_A_FOLDERS: dict[str, str] = {
    'rgb': 'RGB_IMG',
    'depth': 'DEPTH_IMG',
    'semantic': 'SEMANTIC_IMG',
    'instance': 'INSTANCE_IMG',
    'points': 'PCD',
    'semantic_points': 'SEMANTIC_PCD',
    'voxels': 'VOXEL_GRID',
    'action': 'ACTION',
    'anomaly': 'ANOMALY',
}
LAYOUT_B_PREFIXES: dict[str, tuple[str, ...]] = {
    'rgb': ('RGB-CAM',),
    'depth': ('DEPTH_CAM', 'DEPTH-CAM'),
    'semantic': ('SEMANTIC-CAM',),
    'instance': ('INSTANCE-CAM',),
    'points': ('LIDAR',),
    'semantic_points': ('SEMANTIC-LIDAR',),
}
LAYOUT_B_FIXED = {'voxels': 'VOXEL_GRID', 'action': 'ACTION', 'anomaly': 'ANOMALY'}
EXTENSIONS: dict[str, tuple[str, ...]] = {
    'rgb': ('.png',),
    'depth': ('.png',),
    'semantic': ('.png',),
    'instance': ('.png',),
    'points': ('.npy', '.pcd'),
    'semantic_points': ('.npy', '.pcd'),
    'voxels': ('.npy',),
    'action': ('.csv',),
    'anomaly': ('.csv',),
}
# sensor_setup.json "sensor_type": AnoVox's names and CARLA blueprint ids (the generator's legacy output).
SENSOR_TYPES: dict[str, tuple[str, ...]] = {
    'rgb': ('RGB-CAM', 'sensor.camera.rgb'),
    'depth': ('DEPTH_CAM', 'DEPTH-CAM', 'sensor.camera.depth'),
    'semantic': ('SEMANTIC-CAM', 'sensor.camera.semantic_segmentation'),
    'instance': ('INSTANCE-CAM', 'sensor.camera.instance_segmentation'),
    'points': ('LIDAR', 'sensor.lidar.ray_cast'),
    'semantic_points': ('SEMANTIC-LIDAR', 'sensor.lidar.ray_cast_semantic'),
}
CAMERA_KINDS = ('rgb', 'depth', 'semantic', 'instance')
LIDAR_KINDS = ('points', 'semantic_points')
FRAME_SUFFIX = re.compile(r'_(\d+)$')
_MOUNT_IN_NAME = re.compile(r'\(([^()]*)\)\(([^()]*)\)')
# ACTION csv keys of the 4x4 world-from-LiDAR matrix (legacy generator output's and AnoVox's spelling).
LIDAR_MATRIX_KEYS = ('lidar_transformation', 'lidar transformation matrix')
_SKIP_DIRS = {'Scenario_Configuration_Files'}


@dataclass(frozen=True)
class Problem:
    """One problem found in a dataset: where (scenario, frame, file) and what."""

    scenario: str
    frame: int | None
    file: str | None
    message: str

    def __str__(self) -> str:
        where = [self.scenario]
        if self.frame is not None:
            where.append(f'frame {self.frame}')
        if self.file:
            where.append(self.file)
        return f'{" ".join(where)}: {self.message}'


class FrameDataError(DataError):
    """A `DataError` that also carries where it happened, as a `Problem`, for collecting checks."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def is_sensor_folder(name: str, prefix: str) -> bool:
    """``name`` is ``prefix`` followed by nothing, a mount '(' or a '_' separator."""
    return name == prefix or (name.startswith(prefix) and name[len(prefix)] in '(_ ')


def layout_b_kind(name: str) -> str | None:
    # Longest prefixes first, so SEMANTIC-LIDAR never counts as LIDAR (it does not start with it,
    # but this keeps the rule independent of the table order).
    candidates = [(p, kind) for kind, prefixes in LAYOUT_B_PREFIXES.items() for p in prefixes]
    for prefix, kind in sorted(candidates, key=lambda c: -len(c[0])):
        if is_sensor_folder(name, prefix):
            return kind
    return None


def is_scenario_dir(path: Path) -> bool:
    """True when ``path`` holds AnoVox sensor folders (either layout) or a sensor_setup.json."""
    if not path.is_dir():
        return False
    if (path / SENSOR_SETUP_FILE).is_file():
        return True
    try:
        names = [entry.name for entry in os.scandir(path) if entry.is_dir()]
    except OSError:
        return False
    return any(n in LAYOUT_A_FOLDERS.values() or layout_b_kind(n) for n in names)


def find_scenarios(root: str | os.PathLike[str]) -> list[Path]:
    """Scenario folders under ``root`` (or ``root`` itself when it is one), sorted by path.

    Folders named ``Scenario_*`` holding sensor data are collected; the search does
    not descend into a scenario, nor into hidden folders or AnoVox's
    ``Scenario_Configuration_Files``.

    Raises:
        DataError: ``root`` does not exist or holds no scenario.
    """
    base = Path(root)
    if not base.is_dir():
        msg = f'dataset root {base} is not a directory'
        raise DataError(msg)
    if is_scenario_dir(base):
        return [base]
    found: list[Path] = []
    for dirpath, dirnames, _ in os.walk(base):
        current = Path(dirpath)
        keep = []
        for name in sorted(dirnames):
            if name.startswith('.') or name in _SKIP_DIRS:
                continue
            child = current / name
            if name.startswith('Scenario_') and is_scenario_dir(child):
                found.append(child)
            else:
                keep.append(name)
        dirnames[:] = keep
    if not found:
        msg = f'no AnoVox scenario (Scenario_* folder with sensor data) under {base}'
        raise DataError(msg)
    return sorted(found, key=lambda p: p.as_posix())


def summarise_ids(ids: Iterable[int]) -> str:
    values = sorted(ids)
    if not values:
        return 'no frames'
    return f'{len(values)} frames, {values[0]}..{values[-1]}'


def parse_numbers(values: Any, count: int, what: str) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError) as err:
        msg = f'{what}: expected {count} numbers, got {values!r}'
        raise DecodeError(msg) from err
    if len(out) != count:
        msg = f'{what}: expected {count} numbers, got {len(out)}'
        raise DecodeError(msg)
    return out


def mount_text(folder_name: str) -> str | None:
    m = _MOUNT_IN_NAME.search(folder_name)
    return m.group(0) if m else None


def mount_from_name(folder_name: str) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """(location, rotation) from an AnoVox sensor folder name like ``LIDAR(0, 0, 1.8)(0, 0, 0)_<hash>``."""
    m = _MOUNT_IN_NAME.search(folder_name)
    if m is None:
        return None
    try:
        return parse_numbers(m.group(1).split(','), 3, 'location'), parse_numbers(m.group(2).split(','), 3, 'rotation')
    except DecodeError:
        return None


def anovox_rotation_to_pyr(rotation_xyz: tuple[float, ...]) -> tuple[float, float, float]:
    """AnoVox's (x, y, z) rotation = (roll, pitch, yaw) to CARLA's (pitch, yaw, roll)."""
    roll, pitch, yaw = rotation_xyz
    return pitch, yaw, roll
