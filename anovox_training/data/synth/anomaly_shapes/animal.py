"""Animal (30): four-legged animals, birds and lying animals: an ellipsoid body on legs, neck and head."""

from __future__ import annotations

import functools
import math

import numpy as np

from anovox_training.data.labels import CATEGORY_TO_LABEL
from anovox_training.data.synth import materials as M
from anovox_training.data.synth.anomaly_shapes.colour import anomaly_colour
from anovox_training.data.synth.parts import Parts

__all__ = ['CATEGORY', 'KINDS', 'base_parts']

CATEGORY = 'animal'

# body length, body height (radius z), leg length, neck length (m, before a 0.75-1.3 scale)
_PROPORTIONS: dict[str, tuple[float, float, float, float]] = {
    'dog': (0.7, 0.2, 0.4, 0.25),
    'deer': (1.3, 0.32, 0.85, 0.6),
    'cow': (2.0, 0.5, 0.75, 0.4),
    'horse': (1.8, 0.42, 0.95, 0.7),
    'pig': (1.2, 0.35, 0.35, 0.15),
    'sheep': (1.1, 0.35, 0.45, 0.25),
    'bird': (0.6, 0.28, 0.8, 0.7),
    'lying': (1.6, 0.4, 0.0, 0.3),
}


def base_parts(rng: np.random.Generator) -> Parts:
    """Parts labelled animal, of fur in a nature colour."""
    return Parts(CATEGORY_TO_LABEL[CATEGORY], M.FUR, anomaly_colour(rng, 'nature'))


def _animal(rng: np.random.Generator, p: Parts, kind: str) -> None:
    s = rng.uniform(0.75, 1.3)
    body_l, body_h, leg, neck = (v * s for v in _PROPORTIONS[kind])
    body_w = body_h * rng.uniform(0.8, 1.1)
    body_z = leg + body_h * 0.85 if kind != 'lying' else body_h * 0.9
    p.ellipsoid((0, 0, body_z), (body_l / 2, body_w, body_h))
    if kind == 'bird':
        for side in (-1, 1):
            p.segment((0.05, side * 0.1 * s, 0), (0, side * 0.1 * s, body_z - body_h * 0.5), 0.03 * s)
    elif leg > 0:
        leg_r = max(0.03, body_h * 0.2)
        for sx in (-1, 1):
            for sy in (-1, 1):
                x = sx * body_l * 0.32
                p.segment((x, sy * body_w * 0.55, 0), (x, sy * body_w * 0.55, body_z), leg_r, taper=1.3)
    head_dir = rng.uniform(0.3, 1.2) if kind != 'pig' else 0.1
    neck_base = np.array([body_l * 0.42, 0.0, body_z + body_h * 0.3])
    neck_top = neck_base + neck * np.array([math.cos(head_dir), 0.0, math.sin(head_dir)])
    p.segment(neck_base, neck_top, max(0.05, body_h * 0.35), taper=0.7)
    head_r = max(0.07, body_h * 0.45) * (0.6 if kind == 'bird' else 1.0)
    p.ellipsoid(neck_top + np.array([head_r * 0.6, 0, 0]), (head_r * 1.3, head_r * 0.75, head_r * 0.8))
    if kind in ('deer', 'cow'):
        for side in (-1, 1):
            tip = neck_top + np.array([0.0, side * head_r * 1.5, head_r * (2.0 if kind == 'deer' else 1.0)])
            p.segment(neck_top + np.array([0, side * head_r * 0.4, head_r * 0.5]), tip, 0.025 * s, taper=0.4)
    if kind != 'bird':
        tail_base = np.array([-body_l * 0.48, 0.0, body_z + body_h * 0.2])
        p.segment(tail_base, tail_base + np.array([-0.1, 0, -0.4]) * s, 0.03 * s, taper=0.5)
    if rng.random() < 0.3:
        # Patches of a second coat colour.
        p.ellipsoid(
            (rng.normal(0, body_l * 0.15), 0, body_z + body_h * 0.3),
            (body_l * 0.2, body_w * 1.02, body_h * 0.6),
            color=anomaly_colour(rng, 'nature'),
        )


KINDS = {kind: functools.partial(_animal, kind=kind) for kind in _PROPORTIONS}
