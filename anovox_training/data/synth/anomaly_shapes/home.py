"""Home (29): furniture and household goods left on the road, built mostly from boxes and boards."""

from __future__ import annotations

import math

import numpy as np

from anovox_training.data.labels import CATEGORY_TO_LABEL
from anovox_training.data.synth import materials as M
from anovox_training.data.synth.anomaly_shapes.colour import anomaly_colour
from anovox_training.data.synth.parts import Parts

__all__ = ['CATEGORY', 'KINDS', 'base_parts']

CATEGORY = 'home'
_DARK = (0.1, 0.1, 0.1)


def base_parts(rng: np.random.Generator) -> Parts:
    """Parts labelled home, of wood, cloth, plastic or metal in a building colour."""
    material = int(rng.choice([M.WOOD, M.CLOTH, M.PLASTIC, M.METAL]))
    return Parts(CATEGORY_TO_LABEL[CATEGORY], material, anomaly_colour(rng, 'building'))


def _legs(p: Parts, half_x: float, half_y: float, height: float, thickness: float) -> None:
    """Four square legs under the corners of a top of half size (half_x, half_y)."""
    for sx in (-1, 1):
        for sy in (-1, 1):
            p.box((sx * half_x, sy * half_y, height / 2), (thickness, thickness, height))


def _table(rng: np.random.Generator, p: Parts) -> None:
    l, w, h = rng.uniform(0.8, 2.2), rng.uniform(0.6, 1.1), rng.uniform(0.45, 0.8)
    p.box((0, 0, h - 0.025), (l, w, 0.05))
    if rng.random() < 0.3:
        p.cylinder((0, 0, h / 2), 0.05, h)
        p.cylinder((0, 0, 0.02), 0.3, 0.04)
    else:
        _legs(p, l / 2 - 0.06, w / 2 - 0.06, h, 0.06)


def _desk(rng: np.random.Generator, p: Parts) -> None:
    l, w, h = rng.uniform(1.1, 1.8), rng.uniform(0.6, 0.8), rng.uniform(0.72, 0.78)
    p.box((0, 0, h - 0.02), (l, w, 0.04))
    pedestal = rng.uniform(0.35, 0.5)
    p.box((l / 2 - pedestal / 2, 0, (h - 0.04) / 2), (pedestal, w * 0.95, h - 0.04))
    for z in np.linspace(h * 0.2, h * 0.8, 3):
        p.box((l / 2 - pedestal / 2, -w * 0.48, z), (pedestal * 0.85, 0.02, h * 0.2), color=_DARK)
    for sy in (-1, 1):
        p.box((-l / 2 + 0.04, sy * (w / 2 - 0.04), h / 2), (0.05, 0.05, h))


def _chair(rng: np.random.Generator, p: Parts) -> None:
    s, seat = rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.5)
    p.box((0, 0, seat), (s, s, 0.05))
    p.box((-s / 2 + 0.025, 0, seat + 0.25), (0.05, s, 0.5), rpy=(0, -0.1, 0))
    _legs(p, s / 2 - 0.03, s / 2 - 0.03, seat, 0.04)


def _office_chair(rng: np.random.Generator, p: Parts) -> None:
    seat = rng.uniform(0.45, 0.55)
    spoke = rng.uniform(0.28, 0.35)
    for a in np.arange(5) * 2 * math.pi / 5:
        p.box((math.cos(a) * spoke / 2, math.sin(a) * spoke / 2, 0.06), (spoke, 0.05, 0.04), rpy=(0, 0, a))
    p.cylinder((0, 0, seat / 2), 0.03, seat, color=_DARK, material=M.METAL)
    p.box((0, 0, seat + 0.04), (0.48, 0.48, 0.08), material=M.CLOTH)
    p.box((-0.24, 0, seat + 0.38), (0.06, 0.44, 0.55), rpy=(0, -0.12, 0), material=M.CLOTH)


def _stool(rng: np.random.Generator, p: Parts) -> None:
    h, r = rng.uniform(0.45, 0.8), rng.uniform(0.15, 0.2)
    p.cylinder((0, 0, h - 0.02), r, 0.04)
    for a in np.arange(4) * math.pi / 2 + rng.uniform(0, 1):
        p.segment(
            (math.cos(a) * r * 1.4, math.sin(a) * r * 1.4, 0.0),
            (math.cos(a) * r * 0.6, math.sin(a) * r * 0.6, h),
            0.018,
        )


def _sofa(rng: np.random.Generator, p: Parts) -> None:
    l, d = rng.uniform(1.2, 2.4), rng.uniform(0.8, 1.0)
    p.box((0, 0, 0.22), (l, d, 0.44))
    p.box((0, d / 2 - 0.12, 0.62), (l, 0.24, 0.5))
    for sx in (-1, 1):
        p.box((sx * (l / 2 - 0.1), 0, 0.5), (0.2, d, 0.3))


def _armchair(rng: np.random.Generator, p: Parts) -> None:
    w, d = rng.uniform(0.7, 0.95), rng.uniform(0.75, 0.95)
    p.box((0, 0, 0.2), (d, w, 0.4))
    p.box((0.04, 0, 0.45), (d * 0.8, w * 0.7, 0.12), color=anomaly_colour(rng, 'cloth'))
    p.box((-d / 2 + 0.1, 0, 0.65), (0.2, w, 0.9), rpy=(0, -0.15, 0))
    for sy in (-1, 1):
        p.box((0, sy * (w / 2 - 0.08), 0.5), (d, 0.16, 0.25))


def _bed(rng: np.random.Generator, p: Parts) -> None:
    l, w = rng.uniform(1.9, 2.2), rng.uniform(0.9, 1.8)
    p.box((0, 0, 0.25), (l, w, 0.25))
    p.box((0, 0, 0.06), (l * 0.95, w * 0.95, 0.12), color=(0.25, 0.2, 0.15), material=M.WOOD)
    p.box((-l / 2, 0, 0.5), (0.08, w, 0.8), color=(0.4, 0.28, 0.18), material=M.WOOD)


def _cabinet(rng: np.random.Generator, p: Parts) -> None:
    l, w, h = rng.uniform(0.8, 1.6), rng.uniform(0.45, 0.65), rng.uniform(1.2, 2.1)
    p.box((0, 0, h / 2), (w, l, h))
    p.box((w / 2, 0, h / 2), (0.02, 0.01, h * 0.9), color=_DARK)


def _dresser(rng: np.random.Generator, p: Parts) -> None:
    l, w, h = rng.uniform(0.9, 1.6), rng.uniform(0.4, 0.55), rng.uniform(0.7, 1.1)
    p.box((0, 0, 0.05 + h / 2), (w, l, h))
    drawers = int(rng.integers(3, 6))
    for z in (np.arange(drawers) + 0.5) / drawers * h + 0.05:
        p.box((w / 2 + 0.01, 0, z), (0.02, l * 0.92, h / drawers * 0.85))
        p.box((w / 2 + 0.03, 0, z), (0.02, 0.12, 0.02), color=_DARK, material=M.METAL)
    _legs(p, w / 2 - 0.04, l / 2 - 0.04, 0.06, 0.05)


def _appliance(rng: np.random.Generator, p: Parts) -> None:
    w, h = rng.uniform(0.55, 0.8), rng.uniform(0.8, 1.9)
    p.box((0, 0, h / 2), (w, w, h), material=M.METAL)
    if h < 1.1:
        p.cylinder((w / 2, 0, h * 0.45), w * 0.3, 0.03, axis='x', color=(0.15, 0.15, 0.18), material=M.GLASS)
    else:
        p.box((w / 2 + 0.02, w * 0.35, h * 0.6), (0.03, 0.03, h * 0.3), color=_DARK, material=M.METAL)


def _tv(rng: np.random.Generator, p: Parts) -> None:
    w = rng.uniform(0.8, 1.6)
    h = w * rng.uniform(0.56, 0.6)
    p.box((0, 0, 0.02), (0.25, w * 0.35, 0.04), color=_DARK, material=M.PLASTIC)
    p.box((0, 0, 0.1), (0.04, 0.08, 0.16), color=_DARK, material=M.PLASTIC)
    p.box((0, 0, 0.18 + h / 2), (0.05, w, h), color=_DARK, material=M.PLASTIC)
    p.box((0.026, 0, 0.18 + h / 2), (0.002, w * 0.96, h * 0.92), color=(0.05, 0.06, 0.08), material=M.GLASS)


def _lamp(rng: np.random.Generator, p: Parts) -> None:
    h = rng.uniform(1.2, 1.8)
    p.cylinder((0, 0, 0.02), 0.18, 0.04)
    p.cylinder((0, 0, h / 2), 0.02, h)
    p.cylinder((0, 0, h), 0.25, 0.35, taper=0.5, color=anomaly_colour(rng, 'cloth'), material=M.CLOTH)


def _shelf(rng: np.random.Generator, p: Parts) -> None:
    l, d, h = rng.uniform(0.8, 1.6), rng.uniform(0.3, 0.4), rng.uniform(1.0, 2.0)
    for side in (-1, 1):
        p.box((0, side * (l / 2 - 0.02), h / 2), (d, 0.04, h))
    for z in np.linspace(0.02, h - 0.02, int(rng.integers(3, 6))):
        p.box((0, 0, z), (d, l, 0.03))


def _toilet(rng: np.random.Generator, p: Parts) -> None:
    white = np.array([0.9, 0.9, 0.88], np.float32) * rng.uniform(0.85, 1.0)
    p.cylinder((0.05, 0, 0.18), (0.14, 0.11), 0.36, taper=1.4, color=white, material=M.PLASTIC)
    p.ellipsoid((0.1, 0, 0.36), (0.28, 0.2, 0.08), color=white, material=M.PLASTIC)
    p.box((-0.2, 0, 0.6), (0.18, 0.42, 0.38), color=white, material=M.PLASTIC)


def _bathtub(rng: np.random.Generator, p: Parts) -> None:
    l, w, h = rng.uniform(1.5, 1.8), rng.uniform(0.7, 0.8), rng.uniform(0.5, 0.6)
    white = np.array([0.9, 0.9, 0.88], np.float32) * rng.uniform(0.8, 1.0)
    wall = 0.06
    p.box((0, 0, wall / 2), (l, w, wall), color=white, material=M.PLASTIC)
    for sy in (-1, 1):
        p.box((0, sy * (w - wall) / 2, h / 2), (l, wall, h), color=white, material=M.PLASTIC)
    for sx in (-1, 1):
        p.box((sx * (l - wall) / 2, 0, h / 2), (wall, w, h), color=white, material=M.PLASTIC)


def _piano(rng: np.random.Generator, p: Parts) -> None:
    l, h = rng.uniform(1.4, 1.6), rng.uniform(1.1, 1.3)
    p.box((-0.15, 0, h / 2), (0.35, l, h), color=anomaly_colour(rng, 'paint'), material=M.WOOD)
    p.box((0.1, 0, 0.72), (0.25, l * 0.95, 0.06), color=(0.9, 0.9, 0.88), material=M.PLASTIC)
    for sy in (-1, 1):
        p.box((0.15, sy * l * 0.45, 0.35), (0.06, 0.06, 0.7), material=M.WOOD)


KINDS = {
    'table': _table,
    'desk': _desk,
    'chair': _chair,
    'office_chair': _office_chair,
    'stool': _stool,
    'sofa': _sofa,
    'armchair': _armchair,
    'bed': _bed,
    'cabinet': _cabinet,
    'dresser': _dresser,
    'appliance': _appliance,
    'tv': _tv,
    'lamp': _lamp,
    'shelf': _shelf,
    'toilet': _toilet,
    'bathtub': _bathtub,
    'piano': _piano,
}
