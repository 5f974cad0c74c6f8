"""Camera image formation: procedural texture, sun and sky light, shadows, haze, sky and sensor noise.

Texture is a hashed cell noise of surface coordinates (object-local, so it moves
with the object), at two scales per material. Light is ambient sky light that
grows towards upward normals, a Lambertian sun and a small specular lobe for
paint, glass and metal; the sun's share is scaled by its visibility (cast
shadows, shadows.py) when the caller gives it. Distance haze blends surfaces
into the horizon colour. The camera's gain and noise level come from its rig.
"""

from __future__ import annotations

import functools

import numpy as np

from anovox_training.data.synth import materials as M
from anovox_training.data.synth.raycast import Surface
from anovox_training.data.synth.scene import Lighting

__all__ = ['cell_noise', 'shade_camera']


def cell_noise(coord: np.ndarray, cell_m: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Value noise in [-1, 1]: one hashed value per cubic cell of side ``cell_m``.

    Args:
        coord: (3, N) coordinates, m (one row per axis).
        cell_m: (N,) cell sizes.
        seed: (N,) uint32 per-surface seeds.

    Returns:
        (N,) float32.
    """
    h = seed.copy()
    with np.errstate(over='ignore'):
        for axis, prime in enumerate((73856093, 19349663, 83492791)):
            q = np.floor(coord[axis] / cell_m).astype(np.int64).astype(np.uint32)
            h ^= q * np.uint32(prime)
        h ^= h >> np.uint32(13)
        h *= np.uint32(0x5BD1E995)
        h ^= h >> np.uint32(15)
    return ((h & np.uint32(0xFFFF)).astype(np.float32) / np.float32(32767.5)) - np.float32(1.0)


def _sky(d: np.ndarray, lighting: Lighting) -> np.ndarray:
    """Sky colours (3, N) float32 of unit directions (3, N)."""
    elevation = np.clip(d[2], 0.0, 1.0).astype(np.float32)
    mix = np.sqrt(elevation)[None]
    colour = lighting.sky_horizon_rgb[:, None] * (1 - mix) + lighting.sky_zenith_rgb[:, None] * mix
    sun = lighting.sun_dir
    cos_sun = (d[0] * sun[0] + d[1] * sun[1] + d[2] * sun[2]).astype(np.float32)
    # The sun's glow is negligible more than 60 deg away from it.
    near = np.flatnonzero(cos_sun > 0.5)
    if len(near):
        log_c = np.log(cos_sun.take(near))
        glow = 0.6 * np.exp(400 * log_c) + 0.15 * np.exp(12 * log_c)
        colour[:, near] += lighting.sun_rgb[:, None] * glow[None]
    return colour


@functools.lru_cache(maxsize=4)
def _vignette(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    r2 = ((xx + 0.5 - w / 2) / (w / 2)) ** 2 + ((yy + 0.5 - h / 2) / (h / 2)) ** 2
    return (1.0 - 0.12 * r2).astype(np.float32).reshape(1, -1)


# Display transfer: linear [0, 1] in 4096 steps -> gamma-encoded uint8.
_GAMMA_LUT = (np.linspace(0.0, 1.0, 4096) ** (1 / 1.15) * 255.0 + 0.5).astype(np.uint8)


def shade_camera(
    surface: Surface,
    dirs: np.ndarray,
    lighting: Lighting,
    rng: np.random.Generator,
    sun_visibility: np.ndarray | None = None,
    gain: float = 1.0,
    noise_stddev: float = 0.012,
) -> np.ndarray:
    """The RGB image (H, W, 3) uint8 of a camera cast.

    Colours are computed as (3, N) planes: long inner loops are much faster in
    numpy than rows of three.

    Args:
        surface: Resolved hits of the camera's rays.
        dirs: (3, H, W) world ray directions of the cast.
        lighting: Scenario light.
        rng: Generator for the sensor noise of this frame.
        sun_visibility: (M,) share of sunlight reaching each hit (None: all lit).
        gain: Camera exposure on top of the scene's.
        noise_stddev: Sensor noise (1 sigma), linear units.

    Returns:
        The image.
    """
    h, w = surface.shape
    planes = dirs.reshape(3, -1)
    image = np.empty((3, h * w), np.float32)
    sky = surface.sky_rays()
    d_sky = planes.take(sky, axis=1)
    image[:, sky] = _sky(d_sky / np.sqrt((d_sky * d_sky).sum(axis=0)), lighting)

    mat = surface.material
    n = np.ascontiguousarray(surface.normal.T, np.float32)
    cell = M.TEXTURE_CELL_M[mat]
    coord, seed = np.ascontiguousarray(surface.tex_coord.T), surface.tex_seed
    grain = 0.65 * cell_noise(coord, cell, seed) + 0.35 * cell_noise(coord, cell * 6.0, seed ^ np.uint32(0x9E3779B9))
    albedo = np.ascontiguousarray(surface.albedo.T) * (1.0 + M.TEXTURE_AMPLITUDE[mat] * grain)[None]

    sun = lighting.sun_dir.astype(np.float32)
    lambert = np.clip(n[0] * sun[0] + n[1] * sun[1] + n[2] * sun[2], 0.0, None)
    if sun_visibility is not None:
        lambert *= sun_visibility
    sky_light = 0.7 + 0.3 * n[2]
    colour = albedo * (lighting.sun_rgb[:, None] * lambert[None] + lighting.ambient_rgb[:, None] * sky_light[None])
    d_hit = planes.take(surface.ray, axis=1)
    length = np.sqrt((d_hit * d_hit).sum(axis=0))
    # Paint, glass and metal: a sun highlight and some mirrored sky.
    shiny = np.flatnonzero(M.SPECULAR[mat] > 0)
    if len(shiny):
        view = (d_hit.take(shiny, axis=1) / length.take(shiny)[None]).astype(np.float32)
        ns = n.take(shiny, axis=1)
        reflect = view - 2.0 * (view * ns).sum(axis=0)[None] * ns
        spec = M.SPECULAR[mat.take(shiny)]
        cos_r = np.clip(reflect[0] * sun[0] + reflect[1] * sun[1] + reflect[2] * sun[2], 1e-6, 1.0)
        highlight = spec * np.exp(24 * np.log(cos_r))
        if sun_visibility is not None:
            highlight *= sun_visibility.take(shiny)
        extra = lighting.sun_rgb[:, None] * highlight[None]
        extra += (spec * 0.25)[None] * _sky(reflect, lighting)
        colour[:, shiny] += extra

    distance = (surface.t * length).astype(np.float32)
    haze = np.exp(-distance / np.float32(lighting.fog_distance_m))[None]
    image[:, surface.ray] = colour * haze + lighting.sky_horizon_rgb[:, None] * (1.0 - haze)

    image *= _vignette(h, w) * np.float32(lighting.exposure * gain)
    image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(noise_stddev)
    levels = np.clip(image * 4095.0 + 0.5, 0.0, 4095.0).astype(np.int16)
    return np.ascontiguousarray(_GAMMA_LUT[levels].T).reshape(h, w, 3)
