"""Read the frames of an AnoVox scenario (Layout A or B, see layout.py) as typed numpy frames.

Locating files (this module) and decoding them (decode.py, pcd.py) are separate
steps. Every bad input raises `DataError` naming scenario, frame and file, and
what was expected.

Conventions that differ between writers (see docs/LAYOUT_B.md):
- Point y: AnoVox stores (x, -y_carla, z), which is already the REP-103 LiDAR
  frame, and so does this project's generator. Legacy scenarios of the generator
  (written before it followed AnoVox's conventions; recognised by sensor_setup.json
  entries typed with CARLA blueprint ids ``sensor.*``) store y negated, and the
  reader flips it back. ``points_y_negated`` overrides the choice.
- Mount rotation order: see layout.py.
- Camera args: AnoVox's ``image_width/image_height/camera_fov`` or the legacy ``image_size_x/image_size_y/fov``.
- ANOMALY csv: AnoVox's keys (world locations) or the legacy keys (LiDAR-frame
  locations); see decode.anomalies_from_csv.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from anovox_perception.core.errors import ConfigError, DataError, DecodeError, GeometryError
from anovox_perception.core.geometry import CameraModel, camera_from_lidar, invert_transform
from anovox_training.data import decode
from anovox_training.data.carla_mount import carla_mount_to_body
from anovox_training.data.frame import SENSORS, AnomalyInfo, AnoVoxFrame
from anovox_training.data.layout import (
    CAMERA_KINDS,
    DEFAULT_FOV_DEG,
    DEFAULT_MOUNT,
    EXTENSIONS,
    FRAME_SUFFIX,
    LAYOUT_A_FOLDERS,
    LAYOUT_B_FIXED,
    LAYOUT_B_PREFIXES,
    LIDAR_KINDS,
    LIDAR_MATRIX_KEYS,
    SENSOR_SETUP_FILE,
    SENSOR_TYPES,
    FrameDataError,
    Problem,
    anovox_rotation_to_pyr,
    find_scenarios,
    is_scenario_dir,
    layout_b_kind,
    mount_from_name,
    mount_text,
    parse_numbers,
    summarise_ids,
)

# find_scenarios, Problem and FrameDataError are part of the reader's interface.
__all__ = ['FrameDataError', 'Problem', 'ScenarioReader', 'SensorSource', 'find_scenarios', 'is_scenario_dir']

_IMAGE_KINDS = CAMERA_KINDS


@dataclass
class SensorSource:
    """Where one sensor's files of a scenario live."""

    kind: str
    folder: Path
    files: dict[int, Path] = field(default_factory=dict)
    setup: dict[str, Any] | None = None


class ScenarioReader:
    """Index and read the frames of one AnoVox scenario folder.

    Construction only lists folders (cheap); files are opened by `read`.

    Args:
        path: The ``Scenario_<id>`` folder.
        points_y_negated: Whether stored point clouds hold y negated with respect to
            REP-103 (None: decide from the layout and sensor_setup.json, see module doc).

    Raises:
        DataError: ``path`` is not a scenario folder, or its sensor_setup.json is malformed.
    """

    def __init__(self, path: str | os.PathLike[str], points_y_negated: bool | None = None) -> None:
        self.path = Path(path)
        self.name = self.path.name
        if not is_scenario_dir(self.path):
            msg = (
                f'{self.path} is not an AnoVox scenario: expected sensor folders '
                f'({", ".join(LAYOUT_A_FOLDERS.values())} or RGB-CAM..., LIDAR...) or {SENSOR_SETUP_FILE}'
            )
            raise DataError(msg)
        #: Problems found while indexing (stray files, duplicate frames, ambiguous folders).
        self.issues: list[Problem] = []
        self.sensor_setup = self._load_setup()
        # VOXEL_GRID, ACTION and ANOMALY exist in both layouts; the sensor folders tell them apart.
        layout_a_only = [f for f in LAYOUT_A_FOLDERS.values() if f not in LAYOUT_B_FIXED.values()]
        self.layout = 'A' if any((self.path / f).is_dir() for f in layout_a_only) else 'B'
        self.sources: dict[str, SensorSource] = self._index()
        self._frame_ids = sorted({f for source in self.sources.values() for f in source.files})
        if points_y_negated is None:
            # Only legacy generator output (CARLA blueprint ids in sensor_setup.json) stores y negated.
            types = [str(e.get('sensor_type', '')) for e in self.sensor_setup.values()]
            points_y_negated = self.layout == 'B' and any(t.startswith('sensor.') for t in types)
        self.points_y_negated = bool(points_y_negated)
        self._camera: CameraModel | None = None
        self._t_cam_lidar: np.ndarray | None = None
        #: LiDAR .pcd clouds read so far that had no intensity field (read with intensity 0).
        self.clouds_without_intensity = 0

    def __repr__(self) -> str:
        return f'ScenarioReader({str(self.path)!r}, layout={self.layout!r}, sensors={sorted(self.sources)})'

    # --- indexing -----------------------------------------------------------------------------

    def _error(self, message: str, frame: int | None = None, file: Path | str | None = None) -> FrameDataError:
        return FrameDataError(Problem(self.name, frame, self._rel(file) if file else None, message))

    def _rel(self, file: Path | str) -> str:
        p = Path(file)
        try:
            return p.relative_to(self.path).as_posix()
        except ValueError:
            return str(p)

    def _load_setup(self) -> dict[str, dict[str, Any]]:
        setup_path = self.path / SENSOR_SETUP_FILE
        if not setup_path.is_file():
            return {}
        try:
            data = decode.decode_json(setup_path.read_bytes())
        except (OSError, DecodeError) as err:
            raise self._error(f'{err}; expected a JSON object of sensor entries', file=setup_path) from err
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise self._error(
                'expected a JSON object mapping sensor folder names to objects with sensor_type, '
                'location, rotation and args',
                file=setup_path,
            )
        for key, entry in data.items():
            try:
                for item in ('location', 'rotation'):
                    if item in entry:
                        parse_numbers(entry[item], 3, f'{key}.{item}')
                if 'args' in entry and not isinstance(entry['args'], dict):
                    msg = f'{key}.args: expected an object, got {type(entry["args"]).__name__}'
                    raise DecodeError(msg)
            except DecodeError as err:
                raise self._error(str(err), file=setup_path) from err
        return data

    def _setup_entry(self, kind: str, folder_name: str) -> dict[str, Any] | None:
        if folder_name in self.sensor_setup:
            return self.sensor_setup[folder_name]
        matches = [e for e in self.sensor_setup.values() if e.get('sensor_type') in SENSOR_TYPES.get(kind, ())]
        return matches[0] if len(matches) == 1 else None

    def _candidate_folders(self) -> dict[str, list[Path]]:
        found: dict[str, list[Path]] = {}
        for entry in sorted(os.scandir(self.path), key=lambda e: e.name):
            if not entry.is_dir() or entry.name.startswith('.'):
                continue
            name = entry.name
            kinds = [k for k, f in LAYOUT_A_FOLDERS.items() if f == name] if self.layout == 'A' else []
            if self.layout == 'B':
                kind = layout_b_kind(name) or next((k for k, f in LAYOUT_B_FIXED.items() if f == name), None)
                kinds = [kind] if kind else []
            for kind in kinds:
                found.setdefault(kind, []).append(Path(entry.path))
        return found

    def _index(self) -> dict[str, SensorSource]:
        candidates = self._candidate_folders()
        # Several rigs (stereo, surround): keep the sensors on the first LiDAR's mount.
        lidar_folders = candidates.get('points') or candidates.get('semantic_points') or []
        rig = mount_text(lidar_folders[0].name) if lidar_folders else None
        sources: dict[str, SensorSource] = {}
        for kind, folders in candidates.items():
            chosen = folders
            if len(folders) > 1 and rig is not None:
                chosen = [f for f in folders if mount_text(f.name) == rig] or folders
            if len(chosen) > 1:
                names = [f.name for f in chosen]
                self.issues.append(Problem(self.name, None, None, f'several {kind} folders {names}; using {names[0]}'))
            folder = chosen[0]
            source = SensorSource(kind, folder, setup=self._setup_entry(kind, folder.name))
            source.files = self._index_files(kind, folder)
            sources[kind] = source
        return sources

    def _index_files(self, kind: str, folder: Path) -> dict[int, Path]:
        files: dict[int, Path] = {}
        extensions = EXTENSIONS[kind]
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.name.startswith('.'):
                continue
            path = Path(entry.path)
            match = FRAME_SUFFIX.search(path.stem)
            if not entry.is_file() or path.suffix.lower() not in extensions or match is None:
                self.issues.append(
                    Problem(
                        self.name,
                        None,
                        self._rel(path),
                        f'unexpected entry in the {kind} folder; expected files <folder>_<frame>{"|".join(extensions)}',
                    )
                )
                continue
            frame = int(match.group(1))
            if frame in files:
                message = f'second {kind} file for this frame (first: {files[frame].name}); ignored'
                self.issues.append(Problem(self.name, frame, self._rel(path), message))
                # Prefer the first listed extension (.npy over .pcd) whatever the name order.
                if extensions.index(path.suffix.lower()) >= extensions.index(files[frame].suffix.lower()):
                    continue
            files[frame] = path
        return files

    # --- index queries ------------------------------------------------------------------------

    @property
    def sensors(self) -> tuple[str, ...]:
        """The sensor kinds this scenario has folders for, in `SENSORS` order."""
        return tuple(k for k in SENSORS if k in self.sources)

    @property
    def frame_ids(self) -> list[int]:
        """Every frame id any sensor has a file for, ascending."""
        return list(self._frame_ids)

    def missing_sensors(self, frame_id: int) -> list[str]:
        """Sensor kinds with a folder in this scenario but no file for ``frame_id``."""
        return [k for k in self.sensors if frame_id not in self.sources[k].files]

    def incomplete_frames(self) -> dict[int, list[str]]:
        """Frame id -> sensors lacking a file, for every frame some sensor lacks."""
        return {f: m for f in self.frame_ids if (m := self.missing_sensors(f))}

    def file(self, kind: str, frame_id: int) -> Path:
        """The file holding ``kind`` for ``frame_id``.

        Raises:
            DataError: The scenario has no such sensor, or that sensor has no file for the frame.
        """
        source = self.sources.get(kind)
        if source is None:
            expected = (
                LAYOUT_A_FOLDERS[kind]
                if self.layout == 'A'
                else (LAYOUT_B_FIXED.get(kind) or '|'.join(p + '...' for p in LAYOUT_B_PREFIXES[kind]))
            )
            raise self._error(f'no {kind} data: expected a folder {expected}', frame_id)
        path = source.files.get(frame_id)
        if path is None:
            expected = source.folder / f'{source.folder.name}_{frame_id}{EXTENSIONS[kind][0]}'
            raise self._error(
                f'no {kind} file for this frame (the folder has {summarise_ids(source.files)})', frame_id, expected
            )
        return path

    # --- calibration --------------------------------------------------------------------------

    def _mount(self, kinds: tuple[str, ...]) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Body-frame mount (location, rotation as [pitch, yaw, roll]) of the first present kind."""
        for kind in kinds:
            source = self.sources.get(kind)
            if source is None:
                continue
            entry = source.setup
            if entry is not None and 'location' in entry:
                location = parse_numbers(entry['location'], 3, 'location')
                rotation = parse_numbers(entry.get('rotation', (0, 0, 0)), 3, 'rotation')
                if str(entry.get('sensor_type', '')).startswith('sensor.'):
                    return location, rotation
                return location, anovox_rotation_to_pyr(rotation)
            parsed = mount_from_name(source.folder.name)
            if parsed is not None:
                return parsed[0], anovox_rotation_to_pyr(parsed[1])
        return DEFAULT_MOUNT

    @property
    def camera(self) -> CameraModel | None:
        """Pinhole model of the scenario's camera (None without camera folders).

        From sensor_setup.json args (image size, horizontal FOV) when present, else
        the first image's size with AnoVox's 90 degree FOV.

        Raises:
            DataError: The args are malformed or no image can be opened to get the size.
        """
        if self._camera is None:
            self._camera = self._make_camera()
        return self._camera

    def _make_camera(self) -> CameraModel | None:
        kinds = [k for k in CAMERA_KINDS if k in self.sources]
        if not kinds:
            return None
        args: Mapping[str, Any] = {}
        for kind in kinds:
            entry = self.sources[kind].setup
            if entry is not None and isinstance(entry.get('args'), dict):
                args = entry['args']
                break
        width = args.get('image_size_x', args.get('image_width'))
        height = args.get('image_size_y', args.get('image_height'))
        fov = args.get('fov', args.get('camera_fov', DEFAULT_FOV_DEG))
        try:
            if width is None or height is None:
                width, height = self._first_image_size(kinds)
            return CameraModel.from_fov(int(float(width)), int(float(height)), float(fov))
        except (TypeError, ValueError, GeometryError) as err:
            raise self._error(
                f'camera args {dict(args)} do not give a camera: {err}; expected image_size_x/image_size_y/fov '
                f'(or image_width/image_height/camera_fov)',
                file=self.path / SENSOR_SETUP_FILE,
            ) from err

    def _first_image_size(self, kinds: list[str]) -> tuple[int, int]:
        for kind in kinds:
            files = self.sources[kind].files
            if files:
                path = files[min(files)]
                try:
                    with Image.open(path) as img:
                        return img.size
                except OSError as err:
                    raise self._error(f'cannot open image to get the camera size: {err}', min(files), path) from err
        raise self._error('no camera image to take the image size from, and no sensor_setup.json args')

    @property
    def T_cam_lidar(self) -> np.ndarray:
        """(4, 4) LiDAR -> camera optical frame, from the mounts (AnoVox MONO rig when absent)."""
        if self._t_cam_lidar is None:
            try:
                cam_loc, cam_rot = self._mount(CAMERA_KINDS)
                lidar_loc, lidar_rot = self._mount(LIDAR_KINDS)
            except DecodeError as err:
                raise self._error(str(err), file=self.path / SENSOR_SETUP_FILE) from err
            self._t_cam_lidar = camera_from_lidar(
                carla_mount_to_body(cam_loc, cam_rot), carla_mount_to_body(lidar_loc, lidar_rot)
            )
        return self._t_cam_lidar.copy()

    # --- reading ------------------------------------------------------------------------------

    def _bytes(self, kind: str, frame_id: int) -> tuple[Path, bytes]:
        path = self.file(kind, frame_id)
        try:
            return path, path.read_bytes()
        except OSError as err:
            raise self._error(f'cannot read {kind} file: {err.strerror or err}', frame_id, path) from err

    def _decoded(self, kind: str, frame_id: int) -> Any:
        path, data = self._bytes(kind, frame_id)
        try:
            return self._decode(kind, path, data)
        except DecodeError as err:
            raise self._error(str(err), frame_id, path) from err

    def _decode(self, kind: str, path: Path, data: bytes) -> Any:
        if kind in _IMAGE_KINDS:
            image = decode.decode_image(data)
            if kind == 'rgb':
                return decode.rgb_from_image(image)
            if kind == 'depth':
                return decode.carla_depth_m(image)
            if kind == 'semantic':
                return decode.semantic_from_colors(image) if self.layout == 'A' else decode.semantic_from_raw(image)
            return decode.instance_from_raw(image)
        if kind in LIDAR_KINDS:
            labels = kind == 'semantic_points'
            if path.suffix.lower() == '.pcd':
                read = decode.read_pcd_points(data, negate_y=self.points_y_negated, labels=labels)
                if read.value_field is None:
                    self.clouds_without_intensity += 1
                    if self.clouds_without_intensity == 1:  # once per scenario; the counter has the rest
                        text = f'{self.name}: {path.name}: {read.missing_intensity_message}'
                        warnings.warn(text, decode.MissingIntensityWarning, stacklevel=2)
                return read.points
            return decode.points_from_array(decode.decode_npy(data), negate_y=self.points_y_negated, labels=labels)
        if kind == 'voxels':
            return decode.voxels_from_array(decode.decode_npy(data))
        try:
            text = data.decode('utf-8')
        except UnicodeDecodeError as err:
            msg = f'not UTF-8 text: {err}'
            raise DecodeError(msg) from err
        return decode.parse_kv_csv(text)

    def read(self, frame_id: int, sensors: Iterable[str] | None = None) -> AnoVoxFrame:
        """Read one frame.

        Args:
            frame_id: A value of `frame_ids`.
            sensors: Subset of `SENSORS` to load (None: every sensor the scenario has).
                'anomaly' on a scenario without an ANOMALY folder gives no anomalies
                (AnoVox writes none in normality scenarios).

        Returns:
            The frame, arrays in the REP-103 LiDAR frame, with camera and T_cam_lidar.

        Raises:
            ConfigError: ``sensors`` names something that is not in `SENSORS`.
            DataError: A file is missing, unreadable or malformed, or image sizes disagree.
        """
        wanted = self.sensors if sensors is None else tuple(dict.fromkeys(sensors))
        unknown = [s for s in wanted if s not in SENSORS]
        if unknown:
            msg = f'unknown sensors {unknown}; expected a subset of {list(SENSORS)}'
            raise ConfigError(msg)
        frame_id = int(frame_id)
        if not any(frame_id in source.files for source in self.sources.values()):
            raise self._error(f'no such frame; the scenario has {summarise_ids(self.frame_ids)}', frame_id)
        frame = AnoVoxFrame(scenario=self.name, frame_id=frame_id)
        camera = self.camera
        frame.camera = camera
        frame.T_cam_lidar = self.T_cam_lidar
        for kind in ('rgb', 'depth', 'semantic', 'instance', 'points', 'semantic_points', 'voxels'):
            if kind in wanted:
                setattr(frame, {'depth': 'depth_m'}.get(kind, kind), self._decoded(kind, frame_id))
        self._check_image_sizes(frame, camera)
        action: dict[str, Any] | None = None
        if 'action' in wanted or ('anomaly' in wanted and 'anomaly' in self.sources and 'action' in self.sources):
            action = self._decoded('action', frame_id)
            if 'action' in wanted:
                frame.action = action
                frame.timestamp_s = self._timestamp(action, frame_id)
        if 'anomaly' in wanted and 'anomaly' in self.sources:
            frame.anomalies = self._anomalies(frame_id, action)
        return frame

    def _timestamp(self, action: dict[str, Any], frame_id: int) -> float | None:
        value = action.get('timestamp')
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            message = f'timestamp: expected seconds as a number, got {value!r}'
            raise self._error(message, frame_id, self.sources['action'].files[frame_id])
        return float(value)

    def _anomalies(self, frame_id: int, action: dict[str, Any] | None) -> list[AnomalyInfo]:
        path, values = self.file('anomaly', frame_id), self._decoded('anomaly', frame_id)
        lidar_from_world = None
        if action is not None:
            key = next((k for k in LIDAR_MATRIX_KEYS if k in action), None)
            if key is not None:
                try:
                    lidar_from_world = invert_transform(decode.as_matrix4(action[key], key))
                except DecodeError as err:
                    raise self._error(str(err), frame_id, self.sources['action'].files[frame_id]) from err
        try:
            return decode.anomalies_from_csv(values, lidar_from_world)
        except DecodeError as err:
            raise self._error(str(err), frame_id, path) from err

    def _check_image_sizes(self, frame: AnoVoxFrame, camera: CameraModel | None) -> None:
        for kind, attr in (('rgb', 'rgb'), ('depth', 'depth_m'), ('semantic', 'semantic'), ('instance', 'instance')):
            image = getattr(frame, attr)
            if image is None or camera is None:
                continue
            if image.shape[:2] != (camera.height, camera.width):
                size, expected = f'{image.shape[1]}x{image.shape[0]}', f'{camera.width}x{camera.height}'
                message = f'image is {size}, expected the camera size {expected}'
                raise self._error(message, frame.frame_id, self.sources[kind].files[frame.frame_id])
