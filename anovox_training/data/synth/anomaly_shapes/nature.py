"""Nature (31): rocks, boulders, logs, branches, fallen trees, stumps, hay bales and earth piles."""

from __future__ import annotations

import math

import numpy as np

from anovox_training.data.labels import CATEGORY_TO_LABEL
from anovox_training.data.synth import materials as M
from anovox_training.data.synth.anomaly_shapes.colour import anomaly_colour
from anovox_training.data.synth.parts import Parts

__all__ = ['CATEGORY', 'KINDS', 'base_parts']

CATEGORY = 'nature'


def base_parts(rng: np.random.Generator) -> Parts:
    """Parts labelled nature, of stone in a nature colour."""
    return Parts(CATEGORY_TO_LABEL[CATEGORY], M.STONE, anomaly_colour(rng, 'nature'))


def _random_rpy(rng: np.random.Generator) -> tuple[float, float, float]:
    return (*rng.uniform(-0.5, 0.5, 2), rng.uniform(0, 2 * math.pi))


def _rocks(rng: np.random.Generator, p: Parts) -> None:
    size = rng.uniform(0.15, 0.5)
    for _ in range(int(rng.integers(2, 7))):
        r = size * rng.uniform(0.5, 1.2, 3)
        xy = rng.normal(0, size * 2.5, 2)
        p.ellipsoid((xy[0], xy[1], r[2] * 0.7), r, rpy=_random_rpy(rng))


def _boulder(rng: np.random.Generator, p: Parts) -> None:
    # A main body with one or two lumps grown into it.
    size = rng.uniform(0.5, 1.4)
    body = size * rng.uniform(0.7, 1.2, 3)
    p.ellipsoid((0, 0, body[2] * 0.8), body, rpy=_random_rpy(rng))
    for _ in range(int(rng.integers(1, 3))):
        direction = rng.normal(size=3) * (1.0, 1.0, 0.4)
        direction /= np.linalg.norm(direction)
        p.ellipsoid(
            (direction * body * 0.6) + (0, 0, body[2] * 0.8), body * rng.uniform(0.4, 0.7, 3), rpy=_random_rpy(rng)
        )


def _log(rng: np.random.Generator, p: Parts) -> None:
    length, r = rng.uniform(1.2, 6.0), rng.uniform(0.12, 0.45)
    p.cylinder((0, 0, r), r, length, axis='x', material=M.BARK, color=anomaly_colour(rng, 'nature'))


def _tree_like(rng: np.random.Generator, p: Parts, length: float, r: float) -> None:
    """A tapered trunk lying along x with side branches, some in leaf."""
    start = np.array([-length / 2, 0, r])
    end = np.array([length / 2, rng.normal(0, 0.3), r * 1.5])
    p.segment(start, end, r, taper=0.5, material=M.BARK)
    for _ in range(int(rng.integers(2, 7))):
        base = start + (end - start) * rng.uniform(0.2, 0.9)
        tip = base + np.array([rng.uniform(0.2, 1.0), rng.uniform(-1.2, 1.2), rng.uniform(0.1, 1.0)]) * length * 0.35
        p.segment(base, tip, r * 0.45, taper=0.4, material=M.BARK)
        if rng.random() < 0.5:
            leaf = np.array([0.2, 0.35, 0.1], np.float32) * rng.uniform(0.6, 1.4)
            p.ellipsoid(tip, rng.uniform(0.2, 0.6, 3) * length * 0.15, color=leaf, material=M.FOLIAGE)


def _branches(rng: np.random.Generator, p: Parts) -> None:
    _tree_like(rng, p, rng.uniform(2.0, 4.0), rng.uniform(0.04, 0.1))


def _fallen_tree(rng: np.random.Generator, p: Parts) -> None:
    _tree_like(rng, p, rng.uniform(4.0, 9.0), rng.uniform(0.15, 0.35))


def _stump(rng: np.random.Generator, p: Parts) -> None:
    r, h = rng.uniform(0.2, 0.5), rng.uniform(0.3, 1.0)
    p.cylinder((0, 0, h / 2), r, h, taper=0.85, material=M.BARK)
    for a in rng.uniform(0, 2 * math.pi, 3):
        p.segment(
            (0, 0, 0.1), (math.cos(a) * r * 2.2, math.sin(a) * r * 2.2, 0.03), r * 0.3, taper=0.3, material=M.BARK
        )


def _hay_bale(rng: np.random.Generator, p: Parts) -> None:
    r, length = rng.uniform(0.5, 0.8), rng.uniform(1.0, 1.5)
    straw = np.array([0.75, 0.62, 0.3]) * rng.uniform(0.8, 1.1)
    p.cylinder((0, 0, r), r, length, axis='y', color=straw, material=M.GRASS)


def _pile(rng: np.random.Generator, p: Parts) -> None:
    r = rng.uniform(0.8, 2.0)
    p.cylinder((0, 0, r * 0.3), (r, r * rng.uniform(0.6, 1.0)), r * 0.6, taper=rng.uniform(0.1, 0.5))


KINDS = {
    'rocks': _rocks,
    'boulder': _boulder,
    'log': _log,
    'branches': _branches,
    'fallen_tree': _fallen_tree,
    'stump': _stump,
    'hay_bale': _hay_bale,
    'pile': _pile,
}
