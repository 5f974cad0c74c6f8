"""Falling (34): loose cargo that drops off a load and tumbles (ladders, plank bundles, sacks, tarps, ...).

None of these shapes is a box, ball, drum or tyre of another category thrown
into the air: the scene gives them their motion (world.py), this module only
their shape, centred so that they tumble about their middle.
"""

from __future__ import annotations

import math

import numpy as np

from anovox_training.data.labels import CATEGORY_TO_LABEL
from anovox_training.data.synth import materials as M
from anovox_training.data.synth.anomaly_shapes.colour import anomaly_colour
from anovox_training.data.synth.parts import Parts

__all__ = ['CATEGORY', 'KINDS', 'base_parts']

CATEGORY = 'falling'


def base_parts(rng: np.random.Generator) -> Parts:
    """Parts labelled falling, of wood in a building colour."""
    return Parts(CATEGORY_TO_LABEL[CATEGORY], M.WOOD, anomaly_colour(rng, 'building'))


def _ladder(rng: np.random.Generator, p: Parts) -> None:
    # Lying flat: two long rails along x joined by round rungs every ~0.3 m.
    length, width = rng.uniform(2.0, 4.5), rng.uniform(0.35, 0.5)
    material = int(rng.choice([M.METAL, M.WOOD]))
    for sy in (-1, 1):
        p.box((0, sy * width / 2, 0.04), (length, 0.04, 0.08), material=material)
    for x in np.arange(-length / 2 + 0.15, length / 2 - 0.1, rng.uniform(0.26, 0.32)):
        p.cylinder((x, 0, 0.04), 0.015, width, axis='y', material=material)


def _plank_bundle(rng: np.random.Generator, p: Parts) -> None:
    # Loose boards slid apart, each long, narrow and thin.
    length = rng.uniform(1.5, 4.0)
    z = 0.0
    for _ in range(int(rng.integers(2, 7))):
        width, thick = rng.uniform(0.08, 0.25), rng.uniform(0.02, 0.05)
        p.box(
            (rng.normal(0, 0.25), rng.normal(0, 0.2), z + thick / 2),
            (length * rng.uniform(0.85, 1.0), width, thick),
            rpy=(0, 0, rng.normal(0, 0.12)),
        )
        z += thick


def _sack(rng: np.random.Generator, p: Parts) -> None:
    # A filled sack slumped on its side: a squat body, a narrower top and a tied neck.
    l, w, h = rng.uniform(0.35, 0.55), rng.uniform(0.22, 0.32), rng.uniform(0.14, 0.22)
    colour = anomaly_colour(rng, 'cloth')
    p.ellipsoid((0, 0, h), (l, w, h), color=colour, material=M.CLOTH)
    p.ellipsoid((l * 0.8, 0, h * 0.9), (l * 0.45, w * 0.7, h * 0.75), color=colour, material=M.CLOTH)
    p.cylinder((l * 1.3, 0, h * 0.9), (w * 0.25, w * 0.2), l * 0.3, axis='x', taper=1.6, color=colour, material=M.CLOTH)


def _tarp(rng: np.random.Generator, p: Parts) -> None:
    # A crumpled sheet: thin panels at small, changing angles, like folds.
    l, w = rng.uniform(1.5, 3.0), rng.uniform(1.2, 2.2)
    colour = anomaly_colour(rng, 'paint')
    folds = int(rng.integers(3, 6))
    for i in range(folds):
        x = (i + 0.5) / folds * l - l / 2
        pitch = rng.uniform(0.15, 0.45) * (1 if i % 2 else -1)
        p.box(
            (x, rng.normal(0, 0.05), 0.1),
            (l / folds * 1.15, w * rng.uniform(0.85, 1.0), 0.01),
            rpy=(0, pitch, 0),
            color=colour,
            material=M.PLASTIC,
        )


def _pipe_bundle(rng: np.random.Generator, p: Parts) -> None:
    # Thin pipes side by side, held by two straps.
    length, r = rng.uniform(2.0, 5.0), rng.uniform(0.025, 0.07)
    count = int(rng.integers(3, 9))
    material = int(rng.choice([M.METAL, M.PLASTIC]))
    per_row = int(math.ceil(count / 2))
    for k in range(count):
        row, col = divmod(k, per_row)
        p.cylinder(
            ((rng.normal(0, 0.05)), (col - (per_row - 1) / 2) * 2.1 * r, r + row * 1.8 * r),
            r,
            length,
            axis='x',
            material=material,
        )
    for x in (-length * 0.3, length * 0.3):
        p.box((x, 0, r * 1.9), (0.05, per_row * 2.1 * r + 0.02, r * 4.2), color=(0.1, 0.1, 0.1), material=M.PLASTIC)


def _carpet_roll(rng: np.random.Generator, p: Parts) -> None:
    # A rolled carpet sagging in the middle, with its loose end half unrolled.
    length, r = rng.uniform(1.8, 3.5), rng.uniform(0.1, 0.2)
    colour = anomaly_colour(rng, 'cloth')
    sag = rng.uniform(0.05, 0.25)
    kink = np.array([0.0, rng.normal(0, 0.15), r + sag])
    p.segment((-length / 2, 0, r), kink, r, color=colour, material=M.CLOTH)
    p.segment(kink, (length / 2, rng.normal(0, 0.15), r), r, color=colour, material=M.CLOTH)
    flap = rng.uniform(0.4, 1.0)
    p.box((0, r + flap / 2, 0.01), (length * 0.9, flap, 0.02), color=colour, material=M.CLOTH)


def _coil(rng: np.random.Generator, p: Parts) -> None:
    # A coiled rope or hose lying flat: short segments round one or two rings.
    radius, r = rng.uniform(0.3, 0.6), rng.uniform(0.02, 0.05)
    colour = anomaly_colour(rng, 'paint')
    material = int(rng.choice([M.RUBBER, M.PLASTIC]))
    for ring in range(int(rng.integers(1, 3))):
        ring_r = radius * (1.0 - 0.25 * ring)
        steps = 12
        angles = np.arange(steps + 1) * 2 * math.pi / steps
        points = np.stack([np.cos(angles) * ring_r, np.sin(angles) * ring_r, np.full(steps + 1, r + ring * r)], 1)
        for a, b in zip(points[:-1], points[1:], strict=True):
            p.segment(a, b, r, color=colour, material=material)


KINDS = {
    'ladder': _ladder,
    'plank_bundle': _plank_bundle,
    'sack': _sack,
    'tarp': _tarp,
    'pipe_bundle': _pipe_bundle,
    'carpet_roll': _carpet_roll,
    'coil': _coil,
}
