"""Rendering one frame of a scenario: every sensor cast from the same primitives.

Per frame: the scenario's world-frame primitives; camera rays cast from the
camera's mount, resolved and shaded with sun shadows (RGB, depth, semantic,
instance); LiDAR rays cast from the LiDAR's mount and resolved (points with
range noise, dropout and intensity as the sensor's response says, see
lidar_returns.py, and noise-free semantic points of every hit); and the voxel
ground truth.

Voxel ground truth comes from observed surfaces only: the union of the
semantic-LiDAR points and the depth camera's pixels unprojected (both
noise-free, within the LiDAR range), in the LiDAR frame of the frame, labelled
by voxelize.voxelize_labels (AnoVox's rule). A model that sees the camera and
the LiDAR can therefore cover every ground-truth voxel.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from anovox_perception.core.geometry import CameraModel, invert_transform
from anovox_training.data.labels import LABEL_IDS
from anovox_training.data.synth.lidar_returns import lidar_returns
from anovox_training.data.synth.primitives import PrimitiveBatch
from anovox_training.data.synth.raycast import Surface, cast, resolve
from anovox_training.data.synth.scene import AnomalyBox, Scenario
from anovox_training.data.synth.sensors import CameraRig, LidarRig, Mount
from anovox_training.data.synth.shading import shade_camera
from anovox_training.data.synth.shadows import sun_visibility
from anovox_training.data.voxelize import voxelize_labels

__all__ = ['FrameData', 'FrameRenderer', 'SensorRig']

# Surfaces farther from the camera than this are lit without a shadow test (their shadows are a few pixels).
_SHADOW_RANGE_M = 80.0


@dataclass(frozen=True)
class SensorRig:
    """The ego's camera and LiDAR and their mounts (default: both at AnoVox's MONO mount)."""

    camera: CameraRig
    lidar: LidarRig
    camera_mount: Mount = Mount()
    lidar_mount: Mount = Mount()

    @classmethod
    def default(
        cls, width: int = 768, height: int = 512, fov_deg: float = 90.0, azimuth_steps: int = 1024
    ) -> SensorRig:
        """AnoVox's MONO rig at the given image size and LiDAR azimuth resolution."""
        return cls(CameraRig(CameraModel.from_fov(width, height, fov_deg)), LidarRig(azimuth_steps=azimuth_steps))

    @property
    def lidar_from_camera(self) -> np.ndarray:
        """4x4 transform from the camera's body frame (x forward, y left, z up) to the LiDAR frame."""
        return invert_transform(self.lidar_mount.ego_from_sensor()) @ self.camera_mount.ego_from_sensor()


@dataclass
class FrameData:
    """Everything written for one frame (arrays in the REP-103 LiDAR / optical frames).

    Attributes:
        frame_id: CARLA-style frame id.
        timestamp_s: Simulation time.
        rgb: (H, W, 3) uint8.
        depth_m: (H, W) float32 planar depth (sky: the camera's far plane).
        semantic: (H, W) uint8 label ids.
        instance: (H, W) int32 instance ids.
        points: (N, 4) float32 x, y, z, intensity (returns only, with range noise).
        semantic_points: (N, 4) float32 x, y, z, label (every hit within range, noise-free).
        voxels: (M, 4) uint16 [ix, iy, iz, label].
        world_from_lidar: (4, 4) pose of the LiDAR (REP-103 world).
        world_from_camera: (4, 4) pose of the camera's body frame.
        world_from_ego: (4, 4) pose of the ego (its ground reference point).
        ego_velocity: (3,) m/s, world frame.
        anomalies: Anomaly boxes in the LiDAR frame.
        timings_s: Seconds spent per stage.
    """

    frame_id: int
    timestamp_s: float
    rgb: np.ndarray
    depth_m: np.ndarray
    semantic: np.ndarray
    instance: np.ndarray
    points: np.ndarray
    semantic_points: np.ndarray
    voxels: np.ndarray
    world_from_lidar: np.ndarray
    world_from_camera: np.ndarray
    world_from_ego: np.ndarray
    ego_velocity: np.ndarray
    anomalies: list[AnomalyBox]
    timings_s: dict[str, float] = field(default_factory=dict)


class FrameRenderer:
    """Renders frames of one scenario with one sensor rig.

    Args:
        scenario: The scenario.
        rig: Camera and LiDAR.
    """

    def __init__(self, scenario: Scenario, rig: SensorRig) -> None:
        self.scenario = scenario
        self.rig = rig
        self._camera_dirs = rig.camera.body_dirs()
        self._lidar_dirs = rig.lidar.body_dirs()
        # Row-major (rays, 3) copies for gathering hit rays.
        self._camera_rays = np.ascontiguousarray(self._camera_dirs.reshape(3, -1).T)
        self._lidar_rays = np.ascontiguousarray(self._lidar_dirs.reshape(3, -1).T)
        self._lidar_in_view = rig.lidar.in_view(self._lidar_rays)
        self._ego_from_lidar = rig.lidar_mount.ego_from_sensor()
        self._ego_from_camera = rig.camera_mount.ego_from_sensor()
        self._lidar_from_camera = rig.lidar_from_camera

    def _rng(self, k: int) -> np.random.Generator:
        s = self.scenario
        return np.random.default_rng(np.random.SeedSequence([s.seed, zlib.crc32(s.split.encode()), s.index, 1, k]))

    def _cast(
        self,
        dirs_body: np.ndarray,
        rects_of: Callable[[PrimitiveBatch, np.ndarray, np.ndarray], np.ndarray],
        prims: PrimitiveBatch,
        pose: np.ndarray,
    ) -> tuple[np.ndarray, Surface]:
        """Cast a sensor's rays (body frame) from ``pose``; returns world directions and resolved hits."""
        origin, rot = pose[:3, 3], pose[:3, :3]
        dirs = np.einsum('ij,jhw->ihw', rot, dirs_body)
        rects = rects_of(prims, origin, rot)
        t, pid, kerb = cast(origin, dirs, prims, rects, self.scenario.road)
        return dirs, resolve(origin, dirs, t, pid, kerb, prims, self.scenario.road)

    def render(self, k: int) -> FrameData:
        """Render frame index ``k`` (0-based)."""
        s, rig = self.scenario, self.rig
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[name] = now - clock
            clock = now

        rng = self._rng(k)
        prims = s.primitives_at(k)
        world_from_ego = s.world_from_ego(k)
        pose = world_from_ego @ self._ego_from_lidar
        cam_pose = world_from_ego @ self._ego_from_camera
        lap('scene')

        cam_dirs, cam = self._cast(self._camera_dirs, rig.camera.rects, prims, cam_pose)
        lap('camera_cast')
        visibility = self._sun_visibility(cam, cam_dirs, prims) if rig.camera.shadows else None
        lap('shadows')
        rgb = shade_camera(cam, cam_dirs, s.lighting, rng, visibility, rig.camera.exposure, rig.camera.noise_stddev)
        depth = cam.grid(cam.t, rig.camera.depth_far_m, np.float32)
        semantic = cam.grid(cam.label, LABEL_IDS['sky'], np.uint8)
        instance = cam.grid(cam.instance, 0, np.int32)
        lap('camera_shade')

        _, lid = self._cast(self._lidar_dirs, rig.lidar.rects, prims, pose)
        lap('lidar_cast')
        # Channel-major order, as CARLA returns points; only hits within range and the horizontal view.
        keep = np.flatnonzero((lid.t <= rig.lidar.range_m) & self._lidar_in_view[lid.ray])
        keep = keep[np.argsort(lid.ray.take(keep), kind='stable')]
        rng_t = lid.t.take(keep)
        dirs = np.take(self._lidar_rays, lid.ray.take(keep), axis=0)
        xyz = dirs * rng_t[:, None]
        noisy = dirs * (rng_t + rng.normal(0.0, rig.lidar.noise_stddev_m, rng_t.shape))[:, None]
        world_dirs = dirs @ pose[:3, :3].T
        cos_inc = np.abs(np.einsum('ij,ij->i', world_dirs, np.take(lid.normal, keep, axis=0)))
        returned, intensity = lidar_returns(
            rig.lidar.response,
            rng,
            rng_t,
            lid.material.take(keep),
            np.take(lid.albedo, keep, axis=0),
            cos_inc,
        )
        labels = lid.label.take(keep)
        points = np.column_stack([noisy[returned], intensity[returned]]).astype(np.float32)
        semantic_points = np.column_stack([xyz, labels]).astype(np.float32)
        lap('lidar_points')

        voxels = self._voxels(cam, xyz, labels)
        anomalies = s.anomaly_boxes(k, rig.lidar.range_m, self._ego_from_lidar)
        lap('voxels')
        return FrameData(
            frame_id=s.frame_id(k),
            timestamp_s=s.timestamp_s(k),
            rgb=rgb,
            depth_m=depth,
            semantic=semantic,
            instance=instance,
            points=points,
            semantic_points=semantic_points,
            voxels=voxels,
            world_from_lidar=pose,
            world_from_camera=cam_pose,
            world_from_ego=world_from_ego,
            ego_velocity=s.ego.velocity[k],
            anomalies=anomalies,
            timings_s=timings,
        )

    def _sun_visibility(self, cam: Surface, cam_dirs: np.ndarray, prims: PrimitiveBatch) -> np.ndarray | None:
        """Sunlight reaching each camera hit (None when the sun is down); hits beyond the shadow range are lit."""
        sun = self.scenario.lighting.sun_dir
        if sun[2] <= 0.0:
            return None
        visibility = np.ones(len(cam.t), np.float32)
        # Distance along each ray: t is planar depth, the direction's length the ratio to distance.
        length = np.linalg.norm(cam_dirs.reshape(3, -1).take(cam.ray, axis=1), axis=0)
        facing = (cam.normal @ sun > 0.0) & (cam.t * length < _SHADOW_RANGE_M)
        test = np.flatnonzero(facing)
        max_texels = max(4096, cam.shape[0] * cam.shape[1] // 2)
        visibility[test] = sun_visibility(
            np.take(cam.point, test, axis=0), np.take(cam.normal, test, axis=0), prims, sun, max_texels=max_texels
        )
        return visibility

    def _voxels(self, cam: Surface, lidar_xyz: np.ndarray, lidar_labels: np.ndarray) -> np.ndarray:
        """Voxel ground truth from semantic-LiDAR points plus unprojected camera depth (LiDAR frame)."""
        body = np.take(self._camera_rays, cam.ray, axis=0) * cam.t[:, None]
        t = self._lidar_from_camera
        if not np.array_equal(t, np.eye(4)):
            body = body @ t[:3, :3].T + t[:3, 3]
        near = np.flatnonzero(np.einsum('ij,ij->i', body, body) <= self.rig.lidar.range_m**2)
        points = np.concatenate([lidar_xyz, np.take(body, near, axis=0)])
        labels = np.concatenate([lidar_labels, cam.label.take(near)])
        return voxelize_labels(points, labels)
