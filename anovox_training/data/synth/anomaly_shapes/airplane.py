"""Airplane (33): light aircraft, jets, gliders, toy planes (fuselage, wings, tail) and drones."""

from __future__ import annotations

import functools
import math

import numpy as np

from anovox_training.data.labels import CATEGORY_TO_LABEL
from anovox_training.data.synth import materials as M
from anovox_training.data.synth.anomaly_shapes.colour import anomaly_colour
from anovox_training.data.synth.parts import Parts

__all__ = ['CATEGORY', 'KINDS', 'base_parts']

CATEGORY = 'airplane'

# Overall scale (m) of each fixed-wing kind.
_SCALE_M: dict[str, tuple[float, float]] = {'light': (6, 9), 'jet': (8, 13), 'glider': (6, 9), 'toy': (1.0, 2.5)}


def base_parts(rng: np.random.Generator) -> Parts:
    """Parts labelled airplane, of metal in a paint colour."""
    return Parts(CATEGORY_TO_LABEL[CATEGORY], M.METAL, anomaly_colour(rng, 'paint'))


def _drone(rng: np.random.Generator, p: Parts) -> None:
    arm = rng.uniform(0.8, 1.6) / 2
    p.box((0, 0, 0.35), (arm * 0.5, arm * 0.5, 0.15))
    for a in (math.pi / 4, 3 * math.pi / 4, 5 * math.pi / 4, 7 * math.pi / 4):
        tip = (math.cos(a) * arm, math.sin(a) * arm)
        p.segment((0, 0, 0.35), (tip[0], tip[1], 0.35), 0.025)
        p.cylinder((tip[0], tip[1], 0.42), arm * 0.35, 0.02, color=(0.1, 0.1, 0.1), material=M.PLASTIC)
        p.segment((tip[0], tip[1], 0.0), (tip[0], tip[1], 0.35), 0.015)


def _fixed_wing(rng: np.random.Generator, p: Parts, kind: str) -> None:
    scale = rng.uniform(*_SCALE_M[kind])
    length = scale * (0.8 if kind != 'glider' else 0.7)
    span = scale * (1.1 if kind != 'glider' else 2.0)
    radius = length * (0.07 if kind != 'jet' else 0.06)
    gear = radius * (1.2 if kind in ('light', 'jet') else 0.1)
    zc = radius + gear
    p.ellipsoid((0, 0, zc), (length / 2, radius, radius * 1.1))
    chord = length * 0.16
    wing_z = zc + (radius * 0.6 if kind in ('light', 'glider') else -radius * 0.3)
    p.box((length * 0.05, 0, wing_z), (chord, span, radius * 0.18))
    p.box((-length * 0.42, 0, zc + radius * 0.3), (chord * 0.6, span * 0.35, radius * 0.12))
    fin = anomaly_colour(rng, 'paint')
    p.box((-length * 0.42, 0, zc + radius * 1.4), (chord * 0.7, radius * 0.12, radius * 2.2), color=fin)
    canopy = (length * 0.1, radius * 0.6, radius * 0.5)
    p.ellipsoid((length * 0.18, 0, zc + radius * 0.7), canopy, color=(0.1, 0.13, 0.16), material=M.GLASS)
    if kind == 'light':
        p.cylinder((length / 2 + 0.02, 0, zc), radius * 1.4, 0.05, axis='x', color=(0.15, 0.15, 0.15))
    if kind == 'jet':
        for side in (-1, 1):
            engine = (length * 0.1, side * span * 0.25, wing_z - radius * 0.5)
            p.cylinder(engine, radius * 0.45, length * 0.2, axis='x', color=(0.5, 0.5, 0.52))
    if gear > 0.1:
        for x, y in ((length * 0.25, 0.0), (-0.02 * length, radius * 1.6), (-0.02 * length, -radius * 1.6)):
            p.segment((x, y, gear * 0.4), (x, y * 0.6, zc - radius * 0.8), radius * 0.08)
            wheel = (x, y, gear * 0.35)
            p.cylinder(wheel, gear * 0.35, radius * 0.25, axis='y', color=(0.06, 0.06, 0.06), material=M.RUBBER)


KINDS = {**{kind: functools.partial(_fixed_wing, kind=kind) for kind in _SCALE_M}, 'drone': _drone}
