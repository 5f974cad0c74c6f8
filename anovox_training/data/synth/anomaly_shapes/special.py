"""Special (32): odd props (tyre stacks, carts, drums, tents, sculptures, ...) from every primitive type."""

from __future__ import annotations

import math

import numpy as np

from anovox_training.data.labels import CATEGORY_TO_LABEL
from anovox_training.data.synth import materials as M
from anovox_training.data.synth.anomaly_shapes.colour import anomaly_colour
from anovox_training.data.synth.parts import Parts

__all__ = ['CATEGORY', 'KINDS', 'base_parts']

CATEGORY = 'special'
_RUBBER = (0.06, 0.06, 0.06)


def base_parts(rng: np.random.Generator) -> Parts:
    """Parts labelled special, of plastic in a paint colour."""
    return Parts(CATEGORY_TO_LABEL[CATEGORY], M.PLASTIC, anomaly_colour(rng, 'paint'))


def _tyres(rng: np.random.Generator, p: Parts) -> None:
    r = rng.uniform(0.3, 0.5)
    for i in range(int(rng.integers(1, 5))):
        p.cylinder((*rng.normal(0, 0.05, 2), 0.12 + i * 0.24), r, 0.22, color=_RUBBER, material=M.RUBBER)


def _cart(rng: np.random.Generator, p: Parts) -> None:
    p.box((0, 0, 0.65), (0.9, 0.55, 0.45), material=M.METAL)
    p.box((-0.5, 0, 0.95), (0.04, 0.55, 0.04), material=M.METAL)
    for sx in (-1, 1):
        for sy in (-1, 1):
            p.cylinder((sx * 0.35, sy * 0.22, 0.06), 0.06, 0.03, axis='y', color=_RUBBER, material=M.RUBBER)
            p.box((sx * 0.35, sy * 0.22, 0.25), (0.03, 0.03, 0.4), material=M.METAL)


def _suitcase(rng: np.random.Generator, p: Parts) -> None:
    l, w, h = rng.uniform(0.4, 0.8), rng.uniform(0.2, 0.35), rng.uniform(0.5, 0.9)
    if rng.random() < 0.5:
        p.box((0, 0, w / 2), (l, h, w))
    else:
        p.box((0, 0, 0.06 + h / 2), (l, w, h))
        for sx in (-1, 1):
            p.cylinder((sx * l * 0.4, 0, 0.04), 0.04, 0.03, axis='y', color=_RUBBER, material=M.RUBBER)
        p.box((0, 0, h + 0.12), (l * 0.3, 0.03, 0.03), color=_RUBBER)


def _statue(rng: np.random.Generator, p: Parts) -> None:
    p.box((0, 0, 0.3), (0.8, 0.8, 0.6), color=(0.6, 0.6, 0.58), material=M.STONE)
    h = rng.uniform(1.0, 2.5)
    p.cylinder((0, 0, 0.6 + h / 2), rng.uniform(0.15, 0.35), h, taper=rng.uniform(0.5, 1.5), material=M.STONE)
    p.ellipsoid((0, 0, 0.6 + h + 0.2), rng.uniform(0.15, 0.45, 3), material=M.STONE)


def _ball(rng: np.random.Generator, p: Parts) -> None:
    r = rng.uniform(0.3, 1.2)
    p.ellipsoid((0, 0, r), (r, r, r))


def _pallets(rng: np.random.Generator, p: Parts) -> None:
    for i in range(int(rng.integers(1, 6))):
        p.box((0, 0, 0.07 + i * 0.15), (1.2, 0.8, 0.14), color=(0.6, 0.48, 0.3), material=M.WOOD)


def _drums(rng: np.random.Generator, p: Parts) -> None:
    # Upright oil drums with a rim at each end, standing in a loose group.
    for k in range(int(rng.integers(1, 5))):
        xy = np.array([k % 2, k // 2], np.float64) * 0.65 + rng.normal(0, 0.05, 2)
        p.cylinder((xy[0], xy[1], 0.44), 0.29, 0.88, material=M.METAL)
        for z in (0.05, 0.83):
            p.cylinder((xy[0], xy[1], z), 0.3, 0.04, material=M.METAL)


def _balloon(rng: np.random.Generator, p: Parts) -> None:
    # A tethered balloon: a large body in the air on a thin line.
    r, height = rng.uniform(0.3, 1.0), rng.uniform(1.5, 4.0)
    p.box((0, 0, 0.05), (0.3, 0.3, 0.1), color=(0.3, 0.3, 0.3), material=M.STONE)
    p.segment((0, 0, 0.1), (0, 0, height - r), 0.01, color=(0.8, 0.8, 0.8))
    p.ellipsoid((0, 0, height), (r, r, r * rng.uniform(1.0, 1.3)))


def _rocket(rng: np.random.Generator, p: Parts) -> None:
    h = rng.uniform(1.5, 4.0)
    r = h * 0.08
    p.cylinder((0, 0, h * 0.4), r, h * 0.8, material=M.METAL)
    p.cylinder((0, 0, h * 0.9), r, h * 0.2, taper=0.0, color=anomaly_colour(rng, 'signal'))
    for a in (0, math.pi / 2, math.pi, 3 * math.pi / 2):
        p.box((math.cos(a) * r * 1.5, math.sin(a) * r * 1.5, h * 0.12), (r * 1.2, 0.03, h * 0.2), rpy=(0, 0, a))


def _porta_potty(rng: np.random.Generator, p: Parts) -> None:
    w, h = rng.uniform(1.0, 1.2), rng.uniform(2.1, 2.4)
    p.box((0, 0, h / 2), (w, w, h))
    p.box((0, 0, h + 0.05), (w * 1.05, w * 1.05, 0.1), color=(0.9, 0.9, 0.9))
    p.box((w / 2 + 0.01, 0, h * 0.5), (0.02, w * 0.7, h * 0.85), color=anomaly_colour(rng, 'paint'))


def _umbrella(rng: np.random.Generator, p: Parts) -> None:
    # A patio umbrella on its weighted foot, open or folded.
    h, r = rng.uniform(2.0, 2.6), rng.uniform(1.0, 1.6)
    p.cylinder((0, 0, 0.06), 0.25, 0.12, color=(0.3, 0.3, 0.3), material=M.CONCRETE)
    p.cylinder((0, 0, h / 2), 0.025, h, material=M.METAL)
    canopy = anomaly_colour(rng, 'cloth')
    if rng.random() < 0.7:
        p.cylinder((0, 0, h - 0.25), r, 0.5, taper=0.05, color=canopy, material=M.CLOTH)
    else:
        p.cylinder((0, 0, h - 0.6), 0.12, 1.2, taper=0.3, color=canopy, material=M.CLOTH)


def _tent(rng: np.random.Generator, p: Parts) -> None:
    # An A-frame tent: two roof panels meeting at a ridge along x.
    l, w, h = rng.uniform(1.8, 2.6), rng.uniform(1.2, 2.0), rng.uniform(0.9, 1.4)
    slope = math.atan2(h, w / 2)
    panel = math.hypot(h, w / 2)
    colour = anomaly_colour(rng, 'cloth')
    for sy in (-1, 1):
        p.box((0, sy * w / 4, h / 2), (l, 0.03, panel), rpy=(sy * (math.pi / 2 - slope), 0, 0), color=colour)
    p.box((l / 2, 0, h * 0.3), (0.02, w * 0.4, h * 0.6), color=(0.1, 0.1, 0.1), material=M.CLOTH)


def _trampoline(rng: np.random.Generator, p: Parts) -> None:
    r, h = rng.uniform(1.2, 2.0), rng.uniform(0.6, 0.9)
    p.cylinder((0, 0, h), r, 0.06, color=(0.08, 0.08, 0.08), material=M.CLOTH)
    p.cylinder((0, 0, h - 0.05), r * 1.08, 0.08, taper=1.0, material=M.PLASTIC)
    for a in np.arange(6) * math.pi / 3:
        p.segment((math.cos(a) * r, math.sin(a) * r, 0.0), (math.cos(a) * r, math.sin(a) * r, h - 0.06), 0.025)


def _vending_machine(rng: np.random.Generator, p: Parts) -> None:
    w, d, h = rng.uniform(0.8, 1.1), rng.uniform(0.7, 0.9), rng.uniform(1.7, 1.95)
    p.box((0, 0, h / 2), (d, w, h), material=M.METAL)
    p.box((d / 2 + 0.01, -w * 0.12, h * 0.6), (0.02, w * 0.6, h * 0.55), color=(0.12, 0.15, 0.2), material=M.GLASS)
    p.box((d / 2 + 0.02, w * 0.35, h * 0.55), (0.03, w * 0.15, h * 0.25), color=(0.2, 0.2, 0.22))


def _sculpture(rng: np.random.Generator, p: Parts) -> None:
    # A few primitives stacked on each other: the broadest shape family of the category.
    z = 0.0
    for _ in range(int(rng.integers(2, 6))):
        size = rng.uniform(0.2, 0.9, 3)
        shape = rng.integers(3)
        colour = anomaly_colour(rng, 'paint')
        rpy = rng.uniform(-0.6, 0.6, 3)
        centre = (rng.normal(0, 0.2), rng.normal(0, 0.2), z + size[2] / 2)
        if shape == 0:
            p.box(centre, size, rpy=rpy, color=colour)
        elif shape == 1:
            p.ellipsoid(centre, size / 2, rpy=rpy, color=colour)
        else:
            p.cylinder(centre, size[0] / 2, size[2], taper=rng.uniform(0, 1.5), rpy=rpy, color=colour)
        z += size[2] * 0.85


KINDS = {
    'tyres': _tyres,
    'cart': _cart,
    'suitcase': _suitcase,
    'statue': _statue,
    'ball': _ball,
    'pallets': _pallets,
    'drums': _drums,
    'balloon': _balloon,
    'rocket': _rocket,
    'porta_potty': _porta_potty,
    'umbrella': _umbrella,
    'tent': _tent,
    'trampoline': _trampoline,
    'vending_machine': _vending_machine,
    'sculpture': _sculpture,
}
