"""What a LiDAR makes of its ray hits: which rays return, with what range noise and intensity.

CARLA's ray-cast LiDAR (and AnoVox's data) returns every hit within range with an
intensity set by distance alone. Real sensors lose returns: some at random
(sunlight, multipath), more on dark, distant and grazing surfaces (the far road,
black cars, glass), and their intensity is calibrated differently per sensor or
carries nothing useful at all. `LidarResponse` describes one sensor's behaviour;
`lidar_returns` applies it to the hits of one scan.

The signal of a hit is ``reflectivity * exp(-0.004 r) * (0.4 + 0.6 cos(incidence))``
(CARLA's atmospheric attenuation, a Lambertian-like angle term), where the
reflectivity is the material's (materials.REFLECTIVITY), darkened by the
surface's colour when ``albedo_weight`` > 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anovox_training.data.synth import materials as M

__all__ = ['INTENSITY_MODES', 'LidarResponse', 'lidar_returns']

INTENSITY_MODES = ('reflectance', 'constant', 'random')
_ATTENUATION_PER_M = 0.004  # CARLA's LiDAR atmosphere attenuation rate
_REFERENCE_REFLECTIVITY = 0.2
# Mean luminance of the colour palettes: colour factor 1.
_MEAN_LUMINANCE = 0.4


@dataclass(frozen=True)
class LidarResponse:
    """How one LiDAR turns hits into returns (the default is CARLA's: every hit returns, intensity by material).

    Attributes:
        dropout_rate: Share of rays lost at random, whatever they hit.
        detection_range_m: Range at which a surface of reflectivity 0.2 seen head-on returns with 50 %
            probability; the probability falls as ``1 / (1 + (r / r50)^4)`` with ``r50`` scaled by the square
            root of the surface's signal, so darker and more grazing surfaces fade sooner. 0: no such loss.
        albedo_weight: How much a surface's colour scales its reflectivity (0: material only; 1: a black
            surface reflects a fifth of a mid-grey one).
        intensity_mode: 'reflectance' (the signal, calibrated below), 'constant' (``intensity_constant``
            everywhere) or 'random' (uniform in [0, 1]): the last two carry no information, like sensors whose
            intensity does not transfer.
        intensity_scale, intensity_gamma: Reflectance mode: ``(scale * signal) ** gamma``, clipped to [0, 1].
        intensity_noise: Reflectance mode: Gaussian noise (1 sigma) added to the intensity.
        intensity_constant: Constant mode's value.

    Raises:
        ValueError: For an unknown intensity mode or a value outside its range.
    """

    dropout_rate: float = 0.0
    detection_range_m: float = 0.0
    albedo_weight: float = 0.0
    intensity_mode: str = 'reflectance'
    intensity_scale: float = 1.0
    intensity_gamma: float = 1.0
    intensity_noise: float = 0.0
    intensity_constant: float = 0.0

    def __post_init__(self) -> None:
        problems = []
        if self.intensity_mode not in INTENSITY_MODES:
            problems.append(f'intensity_mode {self.intensity_mode!r} is not one of {INTENSITY_MODES}')
        if not 0.0 <= self.dropout_rate < 1.0:
            problems.append(f'dropout_rate must be in [0, 1), got {self.dropout_rate}')
        if self.detection_range_m < 0.0:
            problems.append(f'detection_range_m must be >= 0, got {self.detection_range_m}')
        if not 0.0 <= self.albedo_weight <= 1.0:
            problems.append(f'albedo_weight must be in [0, 1], got {self.albedo_weight}')
        if self.intensity_scale <= 0.0 or self.intensity_gamma <= 0.0 or self.intensity_noise < 0.0:
            problems.append(
                f'intensity_scale and intensity_gamma must be > 0 and intensity_noise >= 0, got '
                f'{self.intensity_scale}, {self.intensity_gamma}, {self.intensity_noise}'
            )
        if problems:
            raise ValueError('LidarResponse: ' + '; '.join(problems))


def _reflectivity(response: LidarResponse, material: np.ndarray, albedo: np.ndarray) -> np.ndarray:
    refl = M.REFLECTIVITY[material]
    if response.albedo_weight > 0:
        luminance = albedo @ np.array([0.3, 0.59, 0.11])
        colour = np.clip(luminance / _MEAN_LUMINANCE, 0.2, 1.6)
        refl = refl * ((1.0 - response.albedo_weight) + response.albedo_weight * colour)
    return refl


def lidar_returns(
    response: LidarResponse,
    rng: np.random.Generator,
    range_m: np.ndarray,
    material: np.ndarray,
    albedo: np.ndarray,
    cos_incidence: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Which hits return and their intensities.

    Random numbers are drawn only for what the response needs, so CARLA's
    response draws none.

    Args:
        response: The sensor's behaviour.
        rng: Generator of this frame.
        range_m: (N,) hit distances.
        material: (N,) material ids.
        albedo: (N, 3) surface colours.
        cos_incidence: (N,) cosine between ray and surface normal.

    Returns:
        ``(keep, intensity)``: (N,) bool returns, and (N,) float32 intensities in [0, 1].
    """
    n = len(range_m)
    refl = _reflectivity(response, material, albedo)
    angle = 0.4 + 0.6 * cos_incidence
    signal = refl * np.exp(-_ATTENUATION_PER_M * range_m) * angle
    keep = np.ones(n, bool)
    if response.detection_range_m > 0:
        r50 = response.detection_range_m * np.sqrt(refl * angle / _REFERENCE_REFLECTIVITY)
        p_return = 1.0 / (1.0 + (range_m / np.maximum(r50, 1e-3)) ** 4)
        keep &= rng.random(n) < p_return
    if response.dropout_rate > 0:
        keep &= rng.random(n) >= response.dropout_rate
    if response.intensity_mode == 'constant':
        intensity = np.full(n, response.intensity_constant)
    elif response.intensity_mode == 'random':
        intensity = rng.random(n)
    else:
        intensity = signal
        if response.intensity_scale != 1.0 or response.intensity_gamma != 1.0:
            intensity = np.clip(response.intensity_scale * signal, 0.0, 1.0) ** response.intensity_gamma
        if response.intensity_noise > 0:
            intensity = intensity + rng.normal(0.0, response.intensity_noise, n)
    return keep, np.clip(intensity, 0.0, 1.0).astype(np.float32)
