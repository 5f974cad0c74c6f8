"""The detector node's parameters: one table, read by the node, the config loader and the tests.

Each `ParamSpec` gives a parameter's dotted name (as ROS 2 flattens nested YAML),
default, description with units, range or choices, and whether changing it needs
a restart. This table is the one place a parameter's default, range and choices are
written: the node turns the specs into `ParameterDescriptor`s, `DetectorConfig`, the
synchronisers and `BackendOptions` take their defaults from it, and
`config/detector.yaml` and `config/detector.schema.json` are generated from it
(``python -m anovox_perception.tools.parameter_files``; a test fails when they are stale).
Plain Python: no rclpy import, so offline tools load the same YAML the node does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from anovox_perception.core.errors import ConfigError
from anovox_perception.core.geometry import OPTICAL_FROM_BODY, make_transform

__all__ = [
    'GROUPS',
    'NODE_NAME',
    'PARAMETERS',
    'ParamSpec',
    'ParamValue',
    'defaults',
    'flatten',
    'load_params_file',
    'nest',
    'params_document',
    'spec_by_name',
    'validate_values',
]

NODE_NAME = 'anovox_detector'

ParamValue = bool | int | float | str | tuple[float, ...]

# AnoVox MONO rig: camera and LiDAR share a mount, so T_cam_lidar is the pure
# body -> optical rotation, row-major.
_DEFAULT_T_CAM_LIDAR = tuple(float(v) for v in make_transform(OPTICAL_FROM_BODY, (0.0, 0.0, 0.0)).ravel())


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter.

    Attributes:
        name: Dotted name (``sync.slop_s``).
        default: Default value; its Python type fixes the ROS parameter type.
        description: What it does, with units.
        read_only: True when a change needs a node restart (model, backend, tensor shapes).
        minimum: Inclusive lower bound for numbers.
        maximum: Inclusive upper bound for numbers.
        choices: Allowed values for strings (empty = any string).
        length: Required length for arrays.
        excluded: Open interval (lo, hi) of numbers refused inside [minimum, maximum], for a
            sentinel below the valid range (``-1`` = "from the model card").
        note: Advice on choosing the value, written as a comment in ``config/detector.yaml`` only.
    """

    name: str
    default: ParamValue
    description: str
    read_only: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    length: int | None = None
    excluded: tuple[float, float] | None = None
    note: str = ''

    @property
    def type_name(self) -> str:
        """One of ``bool``, ``integer``, ``double``, ``string``, ``double_array``."""
        if isinstance(self.default, bool):
            return 'bool'
        if isinstance(self.default, int):
            return 'integer'
        if isinstance(self.default, float):
            return 'double'
        if isinstance(self.default, str):
            return 'string'
        return 'double_array'

    def check(self, value: Any) -> str | None:
        """Why ``value`` is not acceptable, or None when it is."""
        kind = self.type_name
        if kind == 'bool':
            ok = isinstance(value, bool)
        elif kind == 'integer':
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind == 'double':
            # Strict like rclpy: a YAML '1' is an integer and the node would refuse it for a double.
            ok = isinstance(value, float)
        elif kind == 'string':
            ok = isinstance(value, str)
        else:
            ok = isinstance(value, (list, tuple)) and all(isinstance(v, float) for v in value)
        if not ok:
            return f'{self.name}: expected {kind}, got {type(value).__name__} {value!r}'
        if kind in ('integer', 'double'):
            if not math.isfinite(float(value)):
                return f'{self.name}: must be finite, got {value!r}'
            if self.minimum is not None and value < self.minimum:
                return f'{self.name}: {value!r} is below the minimum {self.minimum}'
            if self.maximum is not None and value > self.maximum:
                return f'{self.name}: {value!r} is above the maximum {self.maximum}'
            if self.excluded is not None and self.excluded[0] < value < self.excluded[1]:
                lo, hi = self.excluded
                return f'{self.name}: {value!r} is not allowed: use {lo:g} or a value from {hi:g} to {self.maximum:g}'
        if kind == 'string' and self.choices and value not in self.choices:
            return f'{self.name}: {value!r} is not one of {list(self.choices)}'
        if kind == 'double_array':
            if self.length is not None and len(value) != self.length:
                return f'{self.name}: expected {self.length} values, got {len(value)}'
            if not all(math.isfinite(float(v)) for v in value):
                return f'{self.name}: values must be finite'
        return None

    def coerce(self, value: Any) -> ParamValue:
        """``value`` in this parameter's canonical Python type (call after `check`)."""
        kind = self.type_name
        if kind == 'double':
            return float(value)
        if kind == 'double_array':
            return tuple(float(v) for v in value)
        return value


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec(
        'model_path',
        '',
        'ONNX model file (its model card gives grid, image size, camera). Empty: the one *.onnx shipped in '
        'share/anovox_perception/models. Relative paths resolve against the working directory.',
        read_only=True,
    ),
    ParamSpec(
        'backend',
        'auto',
        'Inference backend. auto = TensorRT when it and a CUDA GPU are present, else ONNX Runtime.',
        read_only=True,
        choices=('auto', 'tensorrt', 'onnxruntime', 'torch'),
    ),
    ParamSpec(
        'backend_options.num_threads',
        0,
        'CPU inference threads (count); 0 = the backend default.',
        read_only=True,
        minimum=0,
        maximum=256,
    ),
    ParamSpec(
        'backend_options.precision',
        'fp32',
        'TensorRT engine precision; ignored by the other backends.',
        read_only=True,
        # 'int8' is the documented extension point of the TensorRT backend (needs a Q/DQ-quantised export).
        choices=('fp32', 'fp16'),
    ),
    ParamSpec(
        'backend_options.engine_cache_dir',
        '',
        'Directory of cached TensorRT engines (path). Empty = the backend default cache directory.',
        read_only=True,
    ),
    ParamSpec(
        'occupancy_threshold',
        -1.0,
        'Occupancy probability (unitless, 0..1) at or above which a voxel is published in voxel_scores '
        'and counts as predicted for evaluation; -1 = the threshold calibrated in training, from the model card '
        '(0.5 when the card has none).',
        minimum=-1.0,
        maximum=1.0,
        excluded=(-1.0, 0.0),
    ),
    ParamSpec(
        'anomaly_threshold',
        -1.0,
        'Anomaly probability (unitless, 0..1) at or above which an occupied voxel joins an anomaly component '
        "(marker); -1 = the operating point calibrated in training, from the model card's calibration.",
        minimum=-1.0,
        maximum=1.0,
        excluded=(-1.0, 0.0),
    ),
    ParamSpec(
        'markers.min_component_voxels',
        3,
        'Smallest anomaly component (voxels) that gets a marker.',
        minimum=1,
        maximum=100000,
    ),
    ParamSpec(
        'markers.min_component_points',
        -1,
        'LiDAR points (count) an anomaly component needs in the columns where its voxels hold a return to get '
        'a marker; 0 = no LiDAR support needed; -1 = the operating point calibrated in training, from the model '
        "card's calibration.",
        minimum=-1,
        maximum=1000000,
    ),
    ParamSpec(
        'markers.lifetime_s',
        0.5,
        'Marker lifetime (s): RViz removes a box not refreshed within this time.',
        minimum=0.05,
        maximum=60.0,
    ),
    ParamSpec(
        'markers.match_distance_m',
        2.0,
        'A component keeps the marker id of the previous frame component whose centroid is within this distance (m).',
        minimum=0.0,
        maximum=50.0,
    ),
    ParamSpec(
        'sync.policy',
        'lidar_driven',
        'Camera/LiDAR pairing: lidar_driven (each cloud takes the nearest image) or approximate '
        "(message_filters' ApproximateTimeSynchronizer semantics).",
        read_only=True,
        choices=('lidar_driven', 'approximate'),
    ),
    ParamSpec(
        'sync.slop_s',
        0.05,
        'Largest camera/LiDAR stamp difference (s) accepted as a pair.',
        minimum=0.0,
        maximum=1.0,
    ),
    ParamSpec(
        'sync.camera_offset_s',
        0.0,
        'Expected camera stamp minus LiDAR stamp (s) for the same scene, e.g. from trigger delays.',
        minimum=-1.0,
        maximum=1.0,
    ),
    ParamSpec(
        'sync.timeout_s',
        0.1,
        'lidar_driven: longest wait (s) for a later image before the cloud is handled per on_missing_camera.',
        minimum=0.0,
        maximum=5.0,
    ),
    ParamSpec(
        'sync.reorder_s',
        0.03,
        'lidar_driven: how far out of stamp order images may arrive (s, delivery jitter); a cloud is decided '
        'once no image still to come can be nearer, else at timeout_s. 0 trusts stamp order.',
        minimum=0.0,
        maximum=1.0,
    ),
    ParamSpec(
        'sync.image_interval_lower_bound_s',
        0.03,
        'lidar_driven: smallest interval (s) between consecutive camera stamps, e.g. 0.9 / the highest camera '
        'rate; a cloud is decided as soon as the next image cannot be nearer than the best one held. '
        '0 = unknown (wait for a later image). A faster camera may lose its nearest pairing '
        '(counted in sync.interval_bound_violations).',
        minimum=0.0,
        maximum=1.0,
        note='0.03 = 0.9 / 30 Hz keeps the nearest pairing for any camera of at most 33 Hz (stamp intervals '
        '>= 30 ms, jitter included) and decides at once when the nearest image is within 15 ms. A faster camera: '
        'set 0.9 / its rate. A 10 Hz camera: 0.09 (decides at once up to 45 ms).',
    ),
    ParamSpec(
        'sync.on_missing_camera',
        'lidar_only',
        'lidar_driven: what a cloud without an image does: lidar_only (run without the camera) or skip.',
        choices=('lidar_only', 'skip'),
    ),
    ParamSpec(
        'sync.queue_size',
        10,
        'approximate: messages kept per topic (count).',
        read_only=True,
        minimum=1,
        maximum=1000,
    ),
    ParamSpec(
        'lidar.intensity',
        'use',
        "LiDAR intensity: use (the cloud's intensity reaches the model when the model card says the model reads "
        'it) or ignore (the model sees every cloud as one without intensity; for a sensor whose intensity scale '
        'the model was not trained on, with a model trained with train.intensity_drop > 0).',
        read_only=True,
        choices=('use', 'ignore'),
    ),
    ParamSpec(
        'camera.intrinsics_source',
        'model_card',
        'Where the pinhole intrinsics come from: model_card, camera_info (the ~/input/camera_info topic; '
        'the model card until one arrives) or parameters (camera.fx, fy, cx, cy).',
        choices=('model_card', 'camera_info', 'parameters'),
    ),
    ParamSpec(
        'camera.fx',
        384.0,
        'Focal length along image x (pixels), used when intrinsics_source=parameters.',
        minimum=1e-3,
        maximum=1e6,
    ),
    ParamSpec(
        'camera.fy',
        384.0,
        'Focal length along image y (pixels), used when intrinsics_source=parameters.',
        minimum=1e-3,
        maximum=1e6,
    ),
    ParamSpec(
        'camera.cx',
        384.0,
        'Principal point x (pixels), used when intrinsics_source=parameters.',
        minimum=-1e6,
        maximum=1e6,
    ),
    ParamSpec(
        'camera.cy',
        256.0,
        'Principal point y (pixels), used when intrinsics_source=parameters.',
        minimum=-1e6,
        maximum=1e6,
    ),
    ParamSpec(
        'camera.extrinsics_source',
        'model_card',
        'Where T_cam_lidar comes from: model_card or parameters (camera.T_cam_lidar).',
        choices=('model_card', 'parameters'),
    ),
    ParamSpec(
        'camera.T_cam_lidar',
        _DEFAULT_T_CAM_LIDAR,
        'Rigid transform (row-major 4x4, metres) taking LiDAR-frame points into the camera optical frame, '
        'used when extrinsics_source=parameters.',
        length=16,
        note='Default: the AnoVox MONO rig (camera and LiDAR on one mount, optical axes only).',
    ),
    ParamSpec(
        'diagnostics.period_s',
        1.0,
        'Interval (s) between /diagnostics messages.',
        read_only=True,
        minimum=0.05,
        maximum=60.0,
    ),
    ParamSpec(
        'diagnostics.expected_rate_hz',
        10.0,
        'Expected LiDAR rate (Hz); an output rate below half of it while clouds arrive is a warning. 0 disables.',
        minimum=0.0,
        maximum=1000.0,
    ),
    ParamSpec(
        'diagnostics.max_latency_ms',
        250.0,
        'Pipeline latency (ms, cloud received -> outputs published, p50 over the period) above which diagnostics warn.',
        minimum=1.0,
        maximum=60000.0,
    ),
    ParamSpec(
        'diagnostics.input_timeout_s',
        2.0,
        'Seconds without a point cloud after which diagnostics report ERROR (LiDAR stopped), '
        'and without a camera image WARN; 0 disables.',
        minimum=0.0,
        maximum=3600.0,
    ),
    ParamSpec(
        'warn_throttle_s',
        5.0,
        'Shortest interval (s) between repeated warnings about bad input of the same kind.',
        minimum=0.0,
        maximum=3600.0,
    ),
)

# What each parameter group (the first part of a dotted name) holds; the schema's object descriptions.
GROUPS: dict[str, str] = {
    'backend_options': 'Inference backend settings.',
    'markers': 'Anomaly markers (MarkerArray).',
    'sync': 'Camera/LiDAR time synchronisation.',
    'camera': 'Camera intrinsics and extrinsics overrides.',
    'lidar': 'LiDAR input settings.',
    'diagnostics': '/diagnostics publishing and thresholds.',
}

_BY_NAME = {spec.name: spec for spec in PARAMETERS}


def spec_by_name(name: str) -> ParamSpec:
    """The spec of a declared parameter.

    Raises:
        ConfigError: ``name`` is not a parameter of the detector node.
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        msg = f'unknown detector parameter {name!r}; known: {sorted(_BY_NAME)}'
        raise ConfigError(msg) from None


def defaults() -> dict[str, ParamValue]:
    """Every parameter's default, by dotted name."""
    return {spec.name: spec.default for spec in PARAMETERS}


def validate_values(values: Mapping[str, Any], where: str = 'parameters') -> dict[str, ParamValue]:
    """Check values against the table and return them in canonical types.

    Args:
        values: Dotted name -> value; a subset of the parameters.
        where: What the values came from, for error messages (a file path, 'set_parameters').

    Returns:
        The values, coerced (doubles as float, arrays as tuples).

    Raises:
        ConfigError: Unknown names or bad values, all listed in one message.
    """
    problems = []
    out: dict[str, ParamValue] = {}
    for name, value in values.items():
        spec = _BY_NAME.get(name)
        if spec is None:
            problems.append(f'unknown parameter {name!r}')
            continue
        reason = spec.check(value)
        if reason:
            problems.append(reason)
        else:
            out[name] = spec.coerce(value)
    if problems:
        msg = f'{where}: ' + '; '.join(problems)
        raise ConfigError(msg)
    return out


def flatten(tree: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
    """Nested mapping -> dotted names, as ROS 2 flattens parameter YAML."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f'{prefix}{key}'
        if isinstance(value, Mapping):
            out.update(flatten(value, prefix=f'{name}.'))
        else:
            out[name] = value
    return out


def nest(values: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted names -> nested mapping, the inverse of `flatten` (first-seen order kept)."""
    nested: dict[str, Any] = {}
    for name, value in values.items():
        *parents, leaf = name.split('.')
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def params_document(values: Mapping[str, Any]) -> dict[str, Any]:
    """A ROS 2 parameter file's mapping (``/**: ros__parameters: {...}``) of dotted-name values."""
    return {'/**': {'ros__parameters': nest(values)}}


def load_params_file(path: str | Path, node_name: str = NODE_NAME) -> dict[str, ParamValue]:
    """Read a ROS 2 parameter file the way the node would, without rclpy.

    Values under ``/**`` apply first, then those under the node's own name
    (``anovox_detector`` or ``/anovox_detector``) override them, as rcl does.

    Args:
        path: A YAML file with ``<node>: ros__parameters: {...}`` sections.
        node_name: The node's name.

    Returns:
        All parameters (defaults filled in) by dotted name.

    Raises:
        ConfigError: The file is missing or malformed, or holds unknown or invalid values.
    """
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding='utf-8'))
    except (OSError, yaml.YAMLError) as err:
        msg = f'cannot read parameter file {path}: {err}'
        raise ConfigError(msg) from err
    if not isinstance(doc, Mapping):
        msg = f'parameter file {path}: expected a mapping of node names to ros__parameters'
        raise ConfigError(msg)
    values: dict[str, Any] = {}
    for section in ('/**', node_name, f'/{node_name}'):
        if section not in doc:
            continue
        body = doc[section]
        if not isinstance(body, Mapping) or not isinstance(body.get('ros__parameters'), Mapping):
            msg = f'parameter file {path}: section {section!r} needs a ros__parameters mapping'
            raise ConfigError(msg)
        values.update(flatten(body['ros__parameters']))
    values.pop('use_sim_time', None)  # declared by every rclpy node, not by the detector
    return {**defaults(), **validate_values(values, where=f'parameter file {path}')}
