"""The detection pipeline without a middleware: synced pair -> model inputs -> scores -> outputs.

`Detector` is what the ROS node wraps (and what offline tools call directly): it
loads the model card and an inference backend once, then `process` turns one
`SyncedPair` into a `FrameResult` holding the score grid, the voxel-score cloud,
the anomaly components and marker specs, and per-stage timings. Everything the
model needs to interpret its inputs (grid, image size, camera, extrinsics)
comes from the model card unless the configuration overrides it, so the node
cannot drift from training. No rclpy here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from anovox_perception.core.calibration import OperatingPoint
from anovox_perception.core.errors import ConfigError, DecodeError, ModelCardError
from anovox_perception.core.geometry import CameraModel, GridSpec
from anovox_perception.core.model_card import ModelCard, load_card
from anovox_perception.core.package_data import model_search_dirs, resolve_model_path
from anovox_perception.core.parameters import spec_by_name, validate_values
from anovox_perception.core.postprocess import Component, find_components, score_grid, voxel_scores
from anovox_perception.core.preprocess import build_inputs
from anovox_perception.core.sync import SyncedPair
from anovox_perception.core.tracker import MarkerSpec, MarkerTracker

if TYPE_CHECKING:  # the backends package is imported when a backend is loaded, not with the core
    from anovox_perception.backends.base import Backend

__all__ = [
    'CameraFrame',
    'CloudFrame',
    'Detector',
    'DetectorConfig',
    'FrameResult',
    'model_search_dirs',
    'resolve_model_path',
]

OUTPUT_NAMES = ('occupancy', 'anomaly')


def _parameter(name: str) -> Any:
    """A `DetectorConfig` field for parameter ``name``: the table's default, the name in its metadata."""
    return field(default=spec_by_name(name).default, metadata={'parameter': name})


@dataclass(frozen=True)
class CloudFrame:
    """A decoded point cloud, as the node hands it to the synchroniser.

    Attributes:
        points: (N, >=3) float32 x, y, z[, intensity] in the cloud's frame.
        frame_id: The cloud's header frame (outputs are published in it).
        received_s: Monotonic time (s) the message arrived, for latency; None if unknown.
    """

    points: np.ndarray
    frame_id: str = ''
    received_s: float | None = None


@dataclass(frozen=True)
class CameraFrame:
    """A decoded camera image.

    Attributes:
        rgb: (H, W, 3) uint8 RGB.
        frame_id: The image's header frame.
    """

    rgb: np.ndarray
    frame_id: str = ''


@dataclass(frozen=True)
class DetectorConfig:
    """Everything `Detector` needs; built from the node's parameters (see parameters.py).

    Fields in `RUNTIME_FIELDS` may change while running (`Detector.reconfigure`);
    the others fix the model and backend and need a new `Detector`.
    """

    model_path: str = _parameter('model_path')
    backend: str = _parameter('backend')
    num_threads: int = _parameter('backend_options.num_threads')
    precision: str = _parameter('backend_options.precision')
    engine_cache_dir: str = _parameter('backend_options.engine_cache_dir')
    occupancy_threshold: float = _parameter('occupancy_threshold')
    anomaly_threshold: float = _parameter('anomaly_threshold')
    min_component_voxels: int = _parameter('markers.min_component_voxels')
    min_component_points: int = _parameter('markers.min_component_points')
    marker_lifetime_s: float = _parameter('markers.lifetime_s')
    marker_match_distance_m: float = _parameter('markers.match_distance_m')
    lidar_intensity: str = _parameter('lidar.intensity')
    intrinsics_source: str = _parameter('camera.intrinsics_source')
    fx: float = _parameter('camera.fx')
    fy: float = _parameter('camera.fy')
    cx: float = _parameter('camera.cx')
    cy: float = _parameter('camera.cy')
    extrinsics_source: str = _parameter('camera.extrinsics_source')
    T_cam_lidar: tuple[float, ...] = _parameter('camera.T_cam_lidar')

    # Dataclass field -> parameter name, and the fields whose parameter is not read-only (set below the class).
    PARAMETER_NAMES: ClassVar[dict[str, str]]
    RUNTIME_FIELDS: ClassVar[frozenset[str]]

    def __post_init__(self) -> None:
        # Same checks as the parameter table, so a config built in code is as safe as one from YAML.
        validate_values({self.PARAMETER_NAMES[f.name]: getattr(self, f.name) for f in fields(self)}, 'DetectorConfig')
        if self.extrinsics_source == 'parameters':
            _check_rigid(self.T_cam_lidar_array, 'camera.T_cam_lidar')

    @classmethod
    def from_parameters(cls, values: Mapping[str, Any]) -> DetectorConfig:
        """Build from parameter values by dotted name; others (sync.*, diagnostics.*) are ignored.

        Raises:
            ConfigError: A value is invalid.
        """
        ours = {p: values[p] for p in cls.PARAMETER_NAMES.values() if p in values}
        checked = validate_values(ours, 'detector parameters')
        return cls(**{f: checked[p] for f, p in cls.PARAMETER_NAMES.items() if p in checked})

    @property
    def T_cam_lidar_array(self) -> np.ndarray:
        """The parameter T_cam_lidar as a (4, 4) float64 array."""
        return np.asarray(self.T_cam_lidar, dtype=np.float64).reshape(4, 4)


DetectorConfig.PARAMETER_NAMES = {f.name: f.metadata['parameter'] for f in fields(DetectorConfig)}
DetectorConfig.RUNTIME_FIELDS = frozenset(
    f for f, p in DetectorConfig.PARAMETER_NAMES.items() if not spec_by_name(p).read_only
)


def _check_rigid(t: np.ndarray, name: str) -> None:
    r = t[:3, :3]
    if not (np.allclose(r @ r.T, np.eye(3), atol=1e-5) and np.linalg.det(r) > 0 and np.allclose(t[3], [0, 0, 0, 1])):
        msg = f'{name}: not a rigid transform (orthonormal rotation with det +1 and last row 0 0 0 1)'
        raise ConfigError(msg)


@dataclass(frozen=True)
class FrameResult:
    """What one processed cloud produced.

    Attributes:
        stamp_ns: The cloud's stamp (outputs carry it).
        frame_id: The cloud's frame (outputs are published in it).
        grid: The detector grid of the arrays below.
        occupancy: (nx, ny, nz) float32 occupancy probabilities.
        anomaly: (nx, ny, nz) float32 anomaly probabilities.
        score_grid: (ny, nx) int8 BEV scores 0..100, -1 unknown (OccupancyGrid data).
        voxel_scores: (K, 4) float32 x, y, z, score of every occupied voxel.
        components: Anomalous components, highest score first.
        markers: Marker specs to publish (deletes first).
        image_stamp_ns: Stamp of the paired image; None when the frame ran LiDAR-only.
        camera: The camera model used for the image; None when LiDAR-only.
        points_in: Points in the cloud.
        points_dropped: Non-finite points removed before inference.
        timings_ms: Per-stage wall times: preprocess, inference, postprocess.
        received_s: When the cloud arrived (monotonic s); None when unknown.
        occupancy_threshold: The threshold that selected ``voxel_scores``.
        operating_point: The anomaly threshold and LiDAR support that made ``components``.
    """

    stamp_ns: int
    frame_id: str
    grid: GridSpec
    occupancy: np.ndarray
    anomaly: np.ndarray
    score_grid: np.ndarray
    voxel_scores: np.ndarray
    components: list[Component]
    markers: list[MarkerSpec]
    image_stamp_ns: int | None = None
    camera: CameraModel | None = None
    points_in: int = 0
    points_dropped: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)
    received_s: float | None = None
    occupancy_threshold: float = 0.5
    operating_point: OperatingPoint = field(default_factory=OperatingPoint)

    @property
    def camera_used(self) -> bool:
        """True when the model saw a camera image for this frame."""
        return self.image_stamp_ns is not None


def _points_array(payload: Any) -> tuple[np.ndarray, str, float | None]:
    """(points, frame_id, received_s) of a cloud payload (CloudFrame or bare array)."""
    if isinstance(payload, CloudFrame):
        return payload.points, payload.frame_id, payload.received_s
    return payload, '', None


def _image_array(payload: Any) -> np.ndarray | None:
    if payload is None:
        return None
    return payload.rgb if isinstance(payload, CameraFrame) else payload


class Detector:
    """Model card + backend + post-processing for one sensor rig.

    Thread safety: `process` calls are serialised; `reconfigure` and
    `set_camera_info` may be called from other threads at any time and apply
    from the next frame.

    Args:
        config: The configuration.
        backend: An already loaded :class:`~anovox_perception.backends.base.Backend` to use instead of
            loading one (tests, offline tools); its card must be the model's.

    Raises:
        ConfigError: Bad configuration or no model.
        ModelCardError: The model has no valid card.
        BackendError: The backend cannot load the model.
    """

    def __init__(self, config: DetectorConfig, backend: Backend | None = None) -> None:
        self._config = config
        if backend is None:
            from anovox_perception.backends import BackendOptions, select_backend

            self.model_path = resolve_model_path(config.model_path)
            options = BackendOptions(
                intra_op_threads=config.num_threads,
                precision=config.precision,
                engine_cache_dir=config.engine_cache_dir or None,
            )
            backend_cls, self.backend_reason = select_backend(config.backend)
            backend = backend_cls.load(self.model_path, options)
        else:
            self.model_path = Path(config.model_path) if config.model_path else None
            self.backend_reason = 'backend given by the caller'
        self.backend: Backend = backend
        card = getattr(backend, 'card', None)
        self.card: ModelCard = card if card is not None else load_card(self.model_path)
        missing = [n for n in OUTPUT_NAMES if n not in self.card.outputs]
        if missing:
            msg = f'model {self.card.name!r} lacks outputs {missing}; the detector needs {list(OUTPUT_NAMES)}'
            raise ModelCardError(msg)
        self.card.check_preprocessing(where=f'model {self.model_path or self.card.name}')
        self.spec = self.card.make_input_spec()
        if config.lidar_intensity == 'ignore':
            # The card's own mode for sensors without usable intensity: preprocessing leaves the channel at 0.
            self.spec = replace(self.spec, lidar_intensity='ignore')
        self._tracker = MarkerTracker(gate_m=config.marker_match_distance_m, lifetime_s=config.marker_lifetime_s)
        self._camera_info: CameraModel | None = None
        self._lock = threading.Lock()

    @property
    def config(self) -> DetectorConfig:
        """The configuration in force."""
        return self._config

    @property
    def grid(self) -> GridSpec:
        """The detector grid the model outputs live on."""
        return self.spec.grid

    @property
    def uses_intensity(self) -> bool:
        """Whether the cloud's intensity reaches the model: the card's model reads it and ``lidar.intensity`` is use."""
        return self.spec.lidar_intensity == 'use'

    @property
    def occupancy_threshold(self) -> float:
        """The occupancy threshold in force: the configured one, or the model card's calibrated one when -1."""
        configured = self._config.occupancy_threshold
        return configured if configured >= 0.0 else self.card.calibration.occupancy_threshold

    @property
    def operating_point(self) -> OperatingPoint:
        """The marker rule in force: each of ``anomaly_threshold`` and ``min_component_points`` configured,
        or the model card's calibrated one when -1."""
        calibrated = self.card.calibration.operating_point
        threshold, points = self._config.anomaly_threshold, self._config.min_component_points
        return OperatingPoint(
            threshold if threshold >= 0.0 else calibrated.anomaly_threshold,
            points if points >= 0 else calibrated.min_component_points,
        )

    @property
    def backend_name(self) -> str:
        """Name and device of the backend in use, e.g. ``onnxruntime (cpu)``."""
        return f'{getattr(self.backend, "name", type(self.backend).__name__)} ({getattr(self.backend, "device", "?")})'

    def reconfigure(self, config: DetectorConfig) -> None:
        """Apply a new configuration that differs only in runtime fields.

        Raises:
            ConfigError: A read-only field (model, backend) differs.
        """
        frozen = [
            self._config.PARAMETER_NAMES[f.name]
            for f in fields(config)
            if f.name not in config.RUNTIME_FIELDS and getattr(config, f.name) != getattr(self._config, f.name)
        ]
        if frozen:
            msg = f'{frozen} cannot change while running; restart the node with the new values'
            raise ConfigError(msg)
        with self._lock:
            self._config = config
            self._tracker.gate_m = config.marker_match_distance_m
            self._tracker.lifetime_s = config.marker_lifetime_s

    def update(self, **changes: Any) -> DetectorConfig:
        """`reconfigure` with ``dataclasses.replace(config, **changes)``; returns the new config."""
        config = replace(self._config, **changes)
        self.reconfigure(config)
        return config

    def set_camera_info(self, camera: CameraModel | None) -> None:
        """Intrinsics from a CameraInfo topic (used when ``intrinsics_source='camera_info'``)."""
        self._camera_info = camera

    def camera_for(self, width: int, height: int) -> CameraModel:
        """The camera model of an image of this size, per ``intrinsics_source``.

        Card intrinsics describe the full-size training camera: a smaller or larger
        image of the same camera scales them. CameraInfo intrinsics are used as
        given (scaled the same way if the image size differs from the info's).
        """
        cfg = self._config
        if cfg.intrinsics_source == 'parameters':
            return CameraModel(width, height, cfg.fx, cfg.fy, cfg.cx, cfg.cy)
        camera = self.card.camera
        if cfg.intrinsics_source == 'camera_info' and self._camera_info is not None:
            camera = self._camera_info
        return camera if (camera.width, camera.height) == (width, height) else camera.scaled(width, height)

    def extrinsics(self) -> np.ndarray:
        """T_cam_lidar (4, 4) per ``extrinsics_source``."""
        cfg = self._config
        return cfg.T_cam_lidar_array if cfg.extrinsics_source == 'parameters' else self.card.T_cam_lidar_array

    def reset(self) -> list[MarkerSpec]:
        """Forget marker tracks (e.g. after a bag loop); returns the deletes to publish."""
        with self._lock:
            return self._tracker.reset()

    def process(self, pair: SyncedPair) -> FrameResult:
        """Run the pipeline on one synced pair.

        Args:
            pair: ``points`` a `CloudFrame` or an (N, >=3) array in the LiDAR frame;
                ``image`` a `CameraFrame`, an (H, W, 3) uint8 RGB array, or None (LiDAR-only).

        Returns:
            The frame's outputs, stamped with the cloud's stamp and frame.

        Raises:
            DecodeError: The cloud is empty, malformed or has no finite point; the image is malformed.
            GeometryError: Inconsistent camera or extrinsics.
            BackendError: Inference failed or returned malformed outputs.
        """
        with self._lock:
            return self._process_locked(pair)

    def _process_locked(self, pair: SyncedPair) -> FrameResult:
        cfg = self._config
        occupancy_threshold = self.occupancy_threshold
        operating_point = self.operating_point
        t0 = time.perf_counter()
        raw, frame_id, received_s = _points_array(pair.points)
        points = np.asarray(raw)
        if points.ndim != 2 or points.shape[1] < 3:
            msg = f'cloud at stamp {pair.points_stamp_ns}: expected (N, >=3) points, got shape {points.shape}'
            raise DecodeError(msg)
        n_in = points.shape[0]
        # Column by column: numpy reduces the 3-wide rows of an (N, 3) array some 20x slower.
        finite = np.isfinite(points[:, 0]) & np.isfinite(points[:, 1]) & np.isfinite(points[:, 2])
        if not finite.all():
            points = points[finite]  # organised clouds mark missing returns with NaN
        if points.shape[0] == 0:
            what = 'empty' if n_in == 0 else f'all {n_in} points non-finite'
            msg = f'cloud at stamp {pair.points_stamp_ns} ({frame_id or "no frame"}): {what}; frame skipped'
            raise DecodeError(msg)
        rgb = _image_array(pair.image)
        camera = None
        if rgb is not None:
            rgb = np.asarray(rgb)
            if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or 0 in rgb.shape:
                msg = f'image at stamp {pair.image_stamp_ns}: expected (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}'
                raise DecodeError(msg)
            camera = self.camera_for(rgb.shape[1], rgb.shape[0])
        # Geometry inputs depend only on the rig, so LiDAR-only frames get them too (camera_valid=0 masks the image).
        card_size = (self.card.camera.width, self.card.camera.height)
        camera_geometry = camera if camera is not None else self.camera_for(*card_size)
        inputs = build_inputs(self.spec, rgb, points, camera_geometry, self.extrinsics())
        t1 = time.perf_counter()
        outputs = self.backend.run(inputs)
        t2 = time.perf_counter()
        occupancy = np.asarray(outputs['occupancy'])[0]
        anomaly = np.asarray(outputs['anomaly'])[0]
        grid = self.grid
        bev = score_grid(occupancy, anomaly, grid, occupancy_threshold)
        voxels = voxel_scores(occupancy, anomaly, grid, occupancy_threshold)
        components = find_components(
            occupancy,
            anomaly,
            grid,
            occupancy_threshold=occupancy_threshold,
            anomaly_threshold=operating_point.anomaly_threshold,
            min_voxels=cfg.min_component_voxels,
            min_points=operating_point.min_component_points,
            lidar_bev=inputs['bev'],
        )
        markers = self._tracker.update(components, pair.points_stamp_ns)
        t3 = time.perf_counter()
        return FrameResult(
            stamp_ns=pair.points_stamp_ns,
            frame_id=frame_id,
            grid=grid,
            occupancy=occupancy,
            anomaly=anomaly,
            score_grid=bev,
            voxel_scores=voxels,
            components=components,
            markers=markers,
            image_stamp_ns=pair.image_stamp_ns if rgb is not None else None,
            camera=camera,
            points_in=n_in,
            points_dropped=int(n_in - points.shape[0]),
            timings_ms={
                'preprocess': (t1 - t0) * 1e3,
                'inference': (t2 - t1) * 1e3,
                'postprocess': (t3 - t2) * 1e3,
            },
            received_s=received_s,
            occupancy_threshold=occupancy_threshold,
            operating_point=operating_point,
        )

    def close(self) -> None:
        """Release the backend."""
        close = getattr(self.backend, 'close', None)
        if close is not None:
            close()
