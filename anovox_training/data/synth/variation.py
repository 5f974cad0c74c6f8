"""Per-scenario variety of the sensor rig and the road's shape, so a detector learns anomalies, not one rig.

`RigVariation` holds the distribution; `draw_rig` and `draw_road_shape` draw one
scenario's rig and road from a generator that generate.py seeds from the
scenario's own stream (seed, split, index), apart from the stream the scene
content is drawn from: the same scenario gets the same rig and road whatever
else changes. Ranges are uniform unless noted. The default distribution:

- LiDAR mount 1.5-2.1 m above the ground (KITTI's HDL-64E: 1.73 m; AnoVox: 1.8 m),
  pitch +-2 deg and roll +-1 deg; beam layouts (`BEAM_LAYOUTS`) AnoVox's 64
  even beams (+15..-25 deg), an HDL-64E (two blocks: 32 beams +2..-8.33 deg at
  1/3 deg, 32 beams -8.83..-24.8 deg at about 1/2 deg), an HDL-32E (32 beams
  +10.67..-30.67 deg) and a 128-beam sensor (+-22.5 deg), drawn 0.3 / 0.3 / 0.2 /
  0.2; azimuth steps chosen so the ray count stays near the configured rig's
  (x 0.75-1.25); range noise 0.01-0.1 m; random dropout 0-10 %; in 80 % of
  scenarios dark, far and grazing surfaces fade (50 % return at 80-220 m for a
  0.2 reflector head-on) and colour darkens reflectivity (weight 0-0.8);
  intensity scale 0.6-2 (log-uniform), gamma 0.6-1.5, noise 0-0.04, and in
  20 % of scenarios an intensity that carries nothing (constant 0-1 or uniform
  noise, half each); in 15 % of scenarios the delivered cloud covers only the
  camera's horizontal view plus 0-10 deg either side (KITTI's reduced clouds).
- Camera: image shapes (`CAMERA_SHAPES`) AnoVox's 3:2 at 80-100 deg, KITTI's
  1242:375 at 75-90 deg, 16:9 at 60-100 deg and 4:3 at 55-90 deg (horizontal
  FOV), drawn 0.3 / 0.3 / 0.25 / 0.15, with about the configured pixel count
  (the model resizes every image to its input size); mounted -0.1..+0.5 m ahead
  of the LiDAR, +-0.3 m sideways, 0.3 m below to 0.15 m above it (KITTI: 0.27 m
  ahead, 0.08 m below), pitch -4..+2 deg, yaw +-1.5 deg; exposure gain 0.7-1.35,
  noise 0.006-0.025.
- Road: grade +-7 % at the middle of the ego's route, vertical curvature up to
  2.5e-4 /m (crests and sags; the grade stays within +-12 % over 400 m), camber
  +-3 %, crown 0-0.12 m, kerbs 0.06-0.25 m or (25 %) none with a gravel
  shoulder at road level, verge slope +-8 %.
- Light: the sun 8-72 deg high (long shadows included; the scene's azimuth
  kept), haze distance 150-1500 m (log-uniform), shadows cast.

`RigVariation.fixed()` turns all of it off: AnoVox's MONO rig and a flat road,
as the generator made before.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from anovox_perception.core.geometry import CameraModel
from anovox_training.data.synth.ground import RoadLayout
from anovox_training.data.synth.lidar_returns import LidarResponse
from anovox_training.data.synth.pipeline import SensorRig
from anovox_training.data.synth.scene import Lighting
from anovox_training.data.synth.sensors import CameraRig, LidarRig, Mount

__all__ = [
    'BEAM_LAYOUTS',
    'CAMERA_SHAPES',
    'RigVariation',
    'beam_elevations_deg',
    'draw_lighting',
    'draw_rig',
    'draw_road_shape',
]


def _hdl64e() -> tuple[float, ...]:
    upper = np.linspace(2.0, -8.33, 32)
    lower = np.linspace(-8.83, -24.8, 32)
    return tuple(round(float(e), 4) for e in np.concatenate([upper, lower]))


def _even(channels: int, upper: float, lower: float) -> tuple[float, ...]:
    return tuple(round(float(e), 4) for e in np.linspace(upper, lower, channels))


# name: beam elevations (deg, top first).
BEAM_LAYOUTS: dict[str, tuple[float, ...]] = {
    'anovox64': _even(64, 15.0, -25.0),
    'hdl64e': _hdl64e(),
    'hdl32e': _even(32, 10.67, -30.67),
    'even128': _even(128, 22.5, -22.5),
}
# name: (width / height, horizontal FOV range in deg).
CAMERA_SHAPES: dict[str, tuple[float, tuple[float, float]]] = {
    'anovox': (1.5, (80.0, 100.0)),
    'kitti': (1242 / 375, (75.0, 90.0)),
    'wide': (16 / 9, (60.0, 100.0)),
    'classic': (4 / 3, (55.0, 90.0)),
}


def beam_elevations_deg(layout: str) -> tuple[float, ...]:
    """The beam elevations of a named layout (see `BEAM_LAYOUTS`).

    Raises:
        KeyError: For an unknown layout.
    """
    if layout not in BEAM_LAYOUTS:
        msg = f'beam layout {layout!r} is unknown; expected one of {sorted(BEAM_LAYOUTS)}'
        raise KeyError(msg)
    return BEAM_LAYOUTS[layout]


@dataclass(frozen=True)
class RigVariation:
    """The distribution of per-scenario rigs and road shapes (module docstring: the defaults and why).

    ``(lo, hi)`` pairs are uniform ranges; ``*_weights`` map names to probabilities.
    """

    enabled: bool = True
    # LiDAR.
    lidar_height_m: tuple[float, float] = (1.5, 2.1)
    lidar_pitch_deg: tuple[float, float] = (-2.0, 2.0)
    lidar_roll_deg: tuple[float, float] = (-1.0, 1.0)
    beam_layout_weights: tuple[tuple[str, float], ...] = (
        ('anovox64', 0.3),
        ('hdl64e', 0.3),
        ('hdl32e', 0.2),
        ('even128', 0.2),
    )
    azimuth_factor: tuple[float, float] = (0.75, 1.25)
    range_noise_m: tuple[float, float] = (0.01, 0.1)
    dropout_rate: tuple[float, float] = (0.0, 0.1)
    fading_share: float = 0.8
    detection_range_m: tuple[float, float] = (80.0, 220.0)
    albedo_weight: tuple[float, float] = (0.0, 0.8)
    intensity_scale: tuple[float, float] = (0.6, 2.0)
    intensity_gamma: tuple[float, float] = (0.6, 1.5)
    intensity_noise: tuple[float, float] = (0.0, 0.04)
    uninformative_intensity_share: float = 0.2
    # Share of scenarios whose cloud covers only the camera's horizontal view plus a margin (KITTI's
    # reduced clouds), so clouds that end at the image's edge are normal input.
    camera_view_cloud_share: float = 0.15
    camera_view_margin_deg: tuple[float, float] = (0.0, 10.0)
    # Camera.
    camera_shape_weights: tuple[tuple[str, float], ...] = (
        ('anovox', 0.3),
        ('kitti', 0.3),
        ('wide', 0.25),
        ('classic', 0.15),
    )
    camera_offset_x_m: tuple[float, float] = (-0.1, 0.5)
    camera_offset_y_m: tuple[float, float] = (-0.3, 0.3)
    camera_offset_z_m: tuple[float, float] = (-0.3, 0.15)
    camera_pitch_deg: tuple[float, float] = (-4.0, 2.0)
    camera_yaw_deg: tuple[float, float] = (-1.5, 1.5)
    exposure: tuple[float, float] = (0.7, 1.35)
    camera_noise: tuple[float, float] = (0.006, 0.025)
    # Road.
    grade: tuple[float, float] = (-0.07, 0.07)
    vertical_curvature_per_m: tuple[float, float] = (-2.5e-4, 2.5e-4)
    max_grade: float = 0.12
    camber: tuple[float, float] = (-0.03, 0.03)
    crown_m: tuple[float, float] = (0.0, 0.12)
    kerb_height_m: tuple[float, float] = (0.06, 0.25)
    kerbless_share: float = 0.25
    verge_slope: tuple[float, float] = (-0.08, 0.08)
    # Light.
    sun_elevation_deg: tuple[float, float] = (8.0, 72.0)
    fog_distance_m: tuple[float, float] = (150.0, 1500.0)

    @classmethod
    def fixed(cls) -> RigVariation:
        """No variety: AnoVox's MONO rig and the flat road."""
        return cls(enabled=False)

    def __post_init__(self) -> None:
        problems = [f'unknown beam layout {name!r}' for name, _ in self.beam_layout_weights if name not in BEAM_LAYOUTS]
        problems += [
            f'unknown camera shape {name!r}' for name, _ in self.camera_shape_weights if name not in CAMERA_SHAPES
        ]
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith('_weights') and (
                not value or any(w < 0 for _, w in value) or sum(w for _, w in value) <= 0
            ):
                problems.append(f'{f.name} needs non-negative weights with a positive sum, got {value}')
            elif (
                isinstance(value, tuple)
                and len(value) == 2
                and all(isinstance(v, float) for v in value)
                and value[0] > value[1]
            ):
                problems.append(f'{f.name} range ({value[0]}, {value[1]}) is reversed')
        if problems:
            raise ValueError('RigVariation: ' + '; '.join(problems))


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _choose(rng: np.random.Generator, weights: tuple[tuple[str, float], ...]) -> str:
    names = [n for n, _ in weights]
    p = np.array([w for _, w in weights], np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _lidar(v: RigVariation, base: LidarRig, rng: np.random.Generator) -> LidarRig:
    elevations = beam_elevations_deg(_choose(rng, v.beam_layout_weights))
    rays = base.channels * base.azimuth_steps * _uniform(rng, v.azimuth_factor)
    azimuth_steps = max(16, int(round(rays / len(elevations) / 16.0)) * 16)
    fading = rng.random() < v.fading_share
    uninformative = rng.random() < v.uninformative_intensity_share
    mode = ('constant' if rng.random() < 0.5 else 'random') if uninformative else 'reflectance'
    lo, hi = v.intensity_scale
    response = LidarResponse(
        dropout_rate=round(_uniform(rng, v.dropout_rate), 4),
        detection_range_m=round(_uniform(rng, v.detection_range_m), 1) if fading else 0.0,
        albedo_weight=round(_uniform(rng, v.albedo_weight), 3) if fading else 0.0,
        intensity_mode=mode,
        intensity_scale=round(float(np.exp(rng.uniform(math.log(lo), math.log(hi)))), 3),
        intensity_gamma=round(_uniform(rng, v.intensity_gamma), 3),
        intensity_noise=round(_uniform(rng, v.intensity_noise), 4),
        intensity_constant=round(float(rng.uniform(0.0, 1.0)), 3),
    )
    return LidarRig.from_elevations(
        elevations,
        azimuth_steps=azimuth_steps,
        range_m=base.range_m,
        noise_stddev_m=round(_uniform(rng, v.range_noise_m), 4),
        response=response,
    )


def _camera(v: RigVariation, base: CameraRig, rng: np.random.Generator) -> CameraRig:
    aspect, fov_range = CAMERA_SHAPES[_choose(rng, v.camera_shape_weights)]
    pixels = base.camera.width * base.camera.height
    width = max(16, int(round(math.sqrt(pixels * aspect) / 2)) * 2)
    height = max(8, int(round(width / aspect)))
    fov = round(_uniform(rng, fov_range), 2)
    return dataclasses.replace(
        base,
        camera=CameraModel.from_fov(width, height, fov),
        exposure=round(_uniform(rng, v.exposure), 3),
        noise_stddev=round(_uniform(rng, v.camera_noise), 4),
        shadows=True,
    )


def draw_rig(variation: RigVariation, base: SensorRig, rng: np.random.Generator) -> SensorRig:
    """One scenario's rig: ``base`` (the configured camera size and LiDAR resolution) when variety is off.

    Mount values are rounded to millimetres and hundredths of a degree, the
    precision sensor_setup.json keeps, so the written calibration is exact.
    """
    if not variation.enabled:
        return base
    v = variation
    lidar = _lidar(v, base.lidar, rng)
    camera = _camera(v, base.camera, rng)
    height = round(_uniform(rng, v.lidar_height_m), 3)
    lidar_mount = Mount(
        location=(0.0, 0.0, height),
        rotation=(round(_uniform(rng, v.lidar_roll_deg), 2), round(_uniform(rng, v.lidar_pitch_deg), 2), 0.0),
    )
    # CARLA axes: y right, so the sideways offset keeps its sign convention of the files.
    offset = (
        _uniform(rng, v.camera_offset_x_m),
        _uniform(rng, v.camera_offset_y_m),
        _uniform(rng, v.camera_offset_z_m),
    )
    camera_mount = Mount(
        location=(round(offset[0], 3), round(offset[1], 3), round(height + offset[2], 3)),
        rotation=(0.0, round(_uniform(rng, v.camera_pitch_deg), 2), round(_uniform(rng, v.camera_yaw_deg), 2)),
    )
    # Drawn last, so the draws above keep their values.
    if rng.random() < v.camera_view_cloud_share:
        cam = camera.camera
        hfov = math.degrees(2 * math.atan(cam.width / (2 * cam.fx)))
        view = min(360.0, round(hfov + 2 * _uniform(rng, v.camera_view_margin_deg), 2))
        lidar = dataclasses.replace(lidar, azimuth_fov_deg=view)
    return SensorRig(camera=camera, lidar=lidar, camera_mount=camera_mount, lidar_mount=lidar_mount)


def draw_road_shape(
    variation: RigVariation, flat: RoadLayout, route_x_m: tuple[float, float], rng: np.random.Generator
) -> RoadLayout:
    """One scenario's road shape on the cross-section ``flat`` (returned unchanged when variety is off).

    Args:
        variation: The distribution.
        flat: The flat road the scenario was built on.
        route_x_m: First and last x of the ego's route; the grade is drawn at its middle.
        rng: Generator of the scenario's rig stream.

    Returns:
        The shaped road (same widths and markings).
    """
    if not variation.enabled:
        return flat
    v = variation
    middle = (route_x_m[0] + route_x_m[1]) / 2
    grade_mid = _uniform(rng, v.grade)
    # Keep the grade within max_grade over 400 m either side of the route's middle.
    curvature_cap = max(0.0, (v.max_grade - abs(grade_mid)) / 400.0)
    curvature = float(np.clip(_uniform(rng, v.vertical_curvature_per_m), -curvature_cap, curvature_cap))
    kerbless = rng.random() < v.kerbless_share
    kerb = 0.0 if kerbless else _uniform(rng, v.kerb_height_m)
    return dataclasses.replace(
        flat,
        grade=grade_mid - curvature * middle,
        vertical_curvature_per_m=curvature,
        camber=_uniform(rng, v.camber),
        crown_m=_uniform(rng, v.crown_m),
        kerb_height_m=kerb,
        verge_slope=_uniform(rng, v.verge_slope),
        shoulder=kerbless,
    )


def draw_lighting(variation: RigVariation, lighting: Lighting, rng: np.random.Generator) -> Lighting:
    """The scene's light with the sun's elevation and the haze redrawn (``lighting`` when variety is off)."""
    if not variation.enabled:
        return lighting
    v = variation
    sun = lighting.sun_dir
    azimuth = math.atan2(sun[1], sun[0])
    elevation = math.radians(_uniform(rng, v.sun_elevation_deg))
    sun_dir = np.array(
        [math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation)]
    )
    lo, hi = v.fog_distance_m
    fog = float(np.exp(rng.uniform(math.log(lo), math.log(hi))))
    return dataclasses.replace(lighting, sun_dir=sun_dir, fog_distance_m=fog)
