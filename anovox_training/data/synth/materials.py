"""Surface materials and colour palettes shared by normal objects and anomalies.

A material sets how a surface looks to each sensor: LiDAR reflectivity,
texture (amplitude and cell size of a procedural grain, optional patterns)
and specular strength. Palettes are shared on purpose: anomalies draw their
colours from the same pools as cars, clothes, buildings and vegetation, so
colour alone never tells them apart.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    'ASPHALT',
    'BARK',
    'CAR_PAINT',
    'CLOTH',
    'CONCRETE',
    'FACADE',
    'FOLIAGE',
    'FUR',
    'GLASS',
    'GRASS',
    'GRAVEL',
    'METAL',
    'NUM_MATERIALS',
    'PAINT',
    'PLASTIC',
    'REFLECTIVITY',
    'RETRO',
    'RUBBER',
    'SKIN',
    'SPECULAR',
    'STONE',
    'TEXTURE_AMPLITUDE',
    'TEXTURE_CELL_M',
    'WOOD',
    'sample_color',
    'jitter_color',
]

ASPHALT = 0
PAINT = 1
CONCRETE = 2
GRASS = 3
FOLIAGE = 4
BARK = 5
FACADE = 6
CAR_PAINT = 7
GLASS = 8
RUBBER = 9
METAL = 10
RETRO = 11
CLOTH = 12
SKIN = 13
PLASTIC = 14
STONE = 15
FUR = 16
WOOD = 17
GRAVEL = 18
NUM_MATERIALS = 19

# name: (LiDAR reflectivity in [0, 1], texture amplitude, texture cell size m, specular)
_TABLE = {
    ASPHALT: (0.18, 0.10, 0.05, 0.0),
    PAINT: (0.70, 0.05, 0.05, 0.0),
    CONCRETE: (0.35, 0.08, 0.08, 0.0),
    GRASS: (0.30, 0.25, 0.06, 0.0),
    FOLIAGE: (0.40, 0.35, 0.12, 0.0),
    BARK: (0.25, 0.25, 0.05, 0.0),
    FACADE: (0.30, 0.10, 0.25, 0.05),
    CAR_PAINT: (0.45, 0.03, 0.20, 0.35),
    GLASS: (0.08, 0.02, 0.30, 0.6),
    RUBBER: (0.05, 0.05, 0.05, 0.0),
    METAL: (0.55, 0.05, 0.10, 0.4),
    RETRO: (0.95, 0.02, 0.10, 0.1),
    CLOTH: (0.30, 0.12, 0.04, 0.0),
    SKIN: (0.35, 0.05, 0.04, 0.05),
    PLASTIC: (0.40, 0.04, 0.10, 0.25),
    STONE: (0.30, 0.30, 0.07, 0.0),
    FUR: (0.28, 0.30, 0.03, 0.0),
    WOOD: (0.32, 0.22, 0.04, 0.0),
    GRAVEL: (0.26, 0.35, 0.03, 0.0),
}
REFLECTIVITY = np.array([_TABLE[i][0] for i in range(NUM_MATERIALS)], np.float32)
TEXTURE_AMPLITUDE = np.array([_TABLE[i][1] for i in range(NUM_MATERIALS)], np.float32)
TEXTURE_CELL_M = np.array([_TABLE[i][2] for i in range(NUM_MATERIALS)], np.float64)
SPECULAR = np.array([_TABLE[i][3] for i in range(NUM_MATERIALS)], np.float32)

# Colour families (RGB in [0, 1]); every object samples from these.
_FAMILIES: dict[str, np.ndarray] = {
    'paint': np.array(
        [
            (0.92, 0.92, 0.92),
            (0.08, 0.08, 0.09),
            (0.62, 0.63, 0.65),
            (0.35, 0.36, 0.38),
            (0.65, 0.08, 0.07),
            (0.10, 0.20, 0.55),
            (0.05, 0.10, 0.28),
            (0.12, 0.35, 0.18),
            (0.85, 0.72, 0.10),
            (0.40, 0.26, 0.15),
            (0.80, 0.74, 0.60),
            (0.90, 0.42, 0.08),
        ]
    ),
    'cloth': np.array(
        [
            (0.12, 0.12, 0.15),
            (0.20, 0.25, 0.45),
            (0.55, 0.10, 0.12),
            (0.80, 0.78, 0.72),
            (0.35, 0.40, 0.25),
            (0.50, 0.35, 0.25),
            (0.25, 0.45, 0.60),
            (0.75, 0.55, 0.20),
            (0.45, 0.45, 0.48),
        ]
    ),
    'building': np.array(
        [
            (0.70, 0.66, 0.58),
            (0.55, 0.35, 0.28),
            (0.78, 0.76, 0.72),
            (0.45, 0.45, 0.47),
            (0.82, 0.70, 0.52),
            (0.60, 0.55, 0.50),
            (0.35, 0.30, 0.28),
        ]
    ),
    'nature': np.array(
        [
            (0.30, 0.22, 0.14),
            (0.45, 0.33, 0.20),
            (0.55, 0.52, 0.47),
            (0.38, 0.38, 0.36),
            (0.25, 0.35, 0.15),
            (0.60, 0.50, 0.35),
            (0.20, 0.18, 0.16),
            (0.70, 0.65, 0.55),
        ]
    ),
    'skin': np.array([(0.85, 0.68, 0.55), (0.65, 0.47, 0.35), (0.42, 0.28, 0.20), (0.92, 0.78, 0.66)]),
    'signal': np.array([(0.95, 0.45, 0.05), (0.95, 0.85, 0.10), (0.90, 0.90, 0.90), (0.80, 0.10, 0.08)]),
}


def sample_color(rng: np.random.Generator, family: str | None = None, jitter: float = 0.06) -> np.ndarray:
    """A colour (3,) float32 from one family, or from all families pooled when ``family`` is None.

    Args:
        rng: Random generator.
        family: 'paint', 'cloth', 'building', 'nature', 'skin', 'signal' or None.
        jitter: Standard deviation of the per-channel perturbation.

    Returns:
        RGB in [0, 1].

    Raises:
        KeyError: For an unknown family.
    """
    if family is None:
        family = str(rng.choice(sorted(_FAMILIES)))
    if family not in _FAMILIES:
        msg = f'sample_color: unknown colour family {family!r}; expected one of {sorted(_FAMILIES)}'
        raise KeyError(msg)
    pool = _FAMILIES[family]
    return jitter_color(rng, pool[rng.integers(len(pool))], jitter)


def jitter_color(rng: np.random.Generator, rgb: np.ndarray, sigma: float = 0.05) -> np.ndarray:
    """``rgb`` with a brightness and per-channel perturbation, clipped to [0, 1]."""
    scale = rng.uniform(0.85, 1.15)
    out = np.asarray(rgb, np.float64) * scale + rng.normal(0.0, sigma, 3)
    return np.clip(out, 0.0, 1.0).astype(np.float32)
