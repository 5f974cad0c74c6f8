"""Anomalies of the six AnoVox categories, built from a few primitives each.

Categories and their labels (labels.CATEGORY_TO_LABEL): home 29 (furniture),
animal 30 (body, legs, neck, head), nature 31 (rocks, logs, branches), special 32
(odd props), airplane 33 (fuselage, wings, tail), falling 34 (objects that
tumble through the air; their motion is set by the scene). Sizes span ankle
height to several metres, and colours come from the same palettes as normal
objects (materials.py), so neither height nor colour alone reveals an anomaly.

Splits hold categories out three ways: `SPLIT_CATEGORIES` gives train, val and
test disjoint categories, so nothing chosen on validation (checkpoints,
thresholds, score rules) has seen a test category.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from anovox_training.data.labels import CATEGORY_TO_LABEL
from anovox_training.data.synth import materials as M
from anovox_training.data.synth.objects import Model, make_model
from anovox_training.data.synth.parts import Parts
from anovox_training.data.synth.primitives import aabb_half_extents

__all__ = ['BUILDERS', 'SPLIT_CATEGORIES', 'build_anomaly']

# No category is in two splits.
SPLIT_CATEGORIES: dict[str, tuple[str, ...]] = {
    'train': ('home', 'special'),
    'val': ('nature',),
    'test': ('animal', 'airplane', 'falling'),
}


def _colour(rng: np.random.Generator, family: str) -> np.ndarray:
    # Half of the time from any family, so anomaly colours overlap every normal class.
    return M.sample_color(rng, None if rng.random() < 0.5 else family)


# -- home (29) ---------------------------------------------------------------------------------------------------


def _home(rng: np.random.Generator) -> Model:
    kind = rng.choice(['table', 'chair', 'sofa', 'bed', 'cabinet', 'appliance', 'lamp', 'shelf'])
    col = _colour(rng, 'building')
    mat = rng.choice([M.WOOD, M.CLOTH, M.PLASTIC, M.METAL])
    p = Parts(CATEGORY_TO_LABEL['home'], int(mat), col)
    if kind == 'table':
        l, w, h = rng.uniform(0.8, 2.2), rng.uniform(0.6, 1.1), rng.uniform(0.45, 0.8)
        p.box((0, 0, h - 0.025), (l, w, 0.05))
        round_top = rng.random() < 0.3
        if round_top:
            p.cylinder((0, 0, h / 2), 0.05, h)
        else:
            for sx in (-1, 1):
                for sy in (-1, 1):
                    p.box((sx * (l / 2 - 0.06), sy * (w / 2 - 0.06), h / 2), (0.06, 0.06, h))
    elif kind == 'chair':
        s = rng.uniform(0.4, 0.6)
        seat = rng.uniform(0.4, 0.5)
        p.box((0, 0, seat), (s, s, 0.05))
        p.box((-s / 2 + 0.025, 0, seat + 0.25), (0.05, s, 0.5), rpy=(0, -0.1, 0))
        for sx in (-1, 1):
            for sy in (-1, 1):
                p.box((sx * (s / 2 - 0.03), sy * (s / 2 - 0.03), seat / 2), (0.04, 0.04, seat))
    elif kind == 'sofa':
        l, d = rng.uniform(1.2, 2.4), rng.uniform(0.8, 1.0)
        p.box((0, 0, 0.22), (l, d, 0.44))
        p.box((0, d / 2 - 0.12, 0.62), (l, 0.24, 0.5))
        for sx in (-1, 1):
            p.box((sx * (l / 2 - 0.1), 0, 0.5), (0.2, d, 0.3))
    elif kind == 'bed':
        l, w = rng.uniform(1.9, 2.2), rng.uniform(0.9, 1.8)
        p.box((0, 0, 0.25), (l, w, 0.25))
        p.box((0, 0, 0.06), (l * 0.95, w * 0.95, 0.12), color=(0.25, 0.2, 0.15), material=M.WOOD)
        p.box((-l / 2, 0, 0.5), (0.08, w, 0.8), color=(0.4, 0.28, 0.18), material=M.WOOD)
    elif kind == 'cabinet':
        l, w, h = rng.uniform(0.8, 1.6), rng.uniform(0.45, 0.65), rng.uniform(1.2, 2.1)
        p.box((0, 0, h / 2), (w, l, h))
        p.box((w / 2, 0, h / 2), (0.02, 0.01, h * 0.9), color=(0.1, 0.1, 0.1))
    elif kind == 'appliance':
        w, h = rng.uniform(0.55, 0.8), rng.uniform(0.8, 1.9)
        p.box((0, 0, h / 2), (w, w, h), material=M.METAL)
        if h < 1.1:
            p.cylinder((w / 2, 0, h * 0.45), w * 0.3, 0.03, axis='x', color=(0.15, 0.15, 0.18), material=M.GLASS)
    elif kind == 'lamp':
        h = rng.uniform(1.2, 1.8)
        p.cylinder((0, 0, 0.02), 0.18, 0.04)
        p.cylinder((0, 0, h / 2), 0.02, h)
        p.cylinder((0, 0, h), 0.25, 0.35, taper=0.5, color=_colour(rng, 'cloth'), material=M.CLOTH)
    else:
        l, d, h = rng.uniform(0.8, 1.6), rng.uniform(0.3, 0.4), rng.uniform(1.0, 2.0)
        for side in (-1, 1):
            p.box((0, side * (l / 2 - 0.02), h / 2), (d, 0.04, h))
        for z in np.linspace(0.02, h - 0.02, int(rng.integers(3, 6))):
            p.box((0, 0, z), (d, l, 0.03))
    return make_model(f'home/{kind}', p)


# -- animal (30) -------------------------------------------------------------------------------------------------


def _animal(rng: np.random.Generator) -> Model:
    kind = rng.choice(['dog', 'deer', 'cow', 'horse', 'pig', 'sheep', 'bird', 'lying'])
    proportions = {
        # body length, body height (radius z), leg length, neck length
        'dog': (0.7, 0.2, 0.4, 0.25),
        'deer': (1.3, 0.32, 0.85, 0.6),
        'cow': (2.0, 0.5, 0.75, 0.4),
        'horse': (1.8, 0.42, 0.95, 0.7),
        'pig': (1.2, 0.35, 0.35, 0.15),
        'sheep': (1.1, 0.35, 0.45, 0.25),
        'bird': (0.6, 0.28, 0.8, 0.7),
        'lying': (1.6, 0.4, 0.0, 0.3),
    }[kind]
    s = rng.uniform(0.75, 1.3)
    body_l, body_h, leg, neck = (v * s for v in proportions)
    col = _colour(rng, 'nature')
    p = Parts(CATEGORY_TO_LABEL['animal'], M.FUR, col)
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
            color=_colour(rng, 'nature'),
        )
    return make_model(f'animal/{kind}', p)


# -- nature (31) -------------------------------------------------------------------------------------------------


def _nature(rng: np.random.Generator) -> Model:
    kind = rng.choice(['rocks', 'boulder', 'log', 'branches', 'fallen_tree', 'stump', 'hay_bale', 'pile'])
    p = Parts(CATEGORY_TO_LABEL['nature'], M.STONE, _colour(rng, 'nature'))
    if kind in ('rocks', 'boulder'):
        n = int(rng.integers(2, 7)) if kind == 'rocks' else 1
        size = rng.uniform(0.15, 0.5) if kind == 'rocks' else rng.uniform(0.5, 1.4)
        spread = size * 2.5 if n > 1 else 0.0
        for _ in range(n):
            r = size * rng.uniform(0.5, 1.2, 3)
            xy = rng.normal(0, spread, 2)
            p.ellipsoid((xy[0], xy[1], r[2] * 0.7), r, rpy=(*rng.uniform(-0.5, 0.5, 2), rng.uniform(0, 2 * math.pi)))
    elif kind == 'log':
        length, r = rng.uniform(1.2, 6.0), rng.uniform(0.12, 0.45)
        p.cylinder((0, 0, r), r, length, axis='x', material=M.BARK, color=_colour(rng, 'nature'))
    elif kind in ('branches', 'fallen_tree'):
        length = rng.uniform(2.0, 4.0) if kind == 'branches' else rng.uniform(4.0, 9.0)
        r = rng.uniform(0.04, 0.1) if kind == 'branches' else rng.uniform(0.15, 0.35)
        start = np.array([-length / 2, 0, r])
        end = np.array([length / 2, rng.normal(0, 0.3), r * 1.5])
        p.segment(start, end, r, taper=0.5, material=M.BARK)
        for _ in range(int(rng.integers(2, 7))):
            base = start + (end - start) * rng.uniform(0.2, 0.9)
            tip = (
                base + np.array([rng.uniform(0.2, 1.0), rng.uniform(-1.2, 1.2), rng.uniform(0.1, 1.0)]) * length * 0.35
            )
            p.segment(base, tip, r * 0.45, taper=0.4, material=M.BARK)
            if rng.random() < 0.5:
                leaf = np.array([0.2, 0.35, 0.1], np.float32) * rng.uniform(0.6, 1.4)
                p.ellipsoid(tip, rng.uniform(0.2, 0.6, 3) * length * 0.15, color=leaf, material=M.FOLIAGE)
    elif kind == 'stump':
        r, h = rng.uniform(0.2, 0.5), rng.uniform(0.3, 1.0)
        p.cylinder((0, 0, h / 2), r, h, taper=0.85, material=M.BARK)
        for a in rng.uniform(0, 2 * math.pi, 3):
            p.segment(
                (0, 0, 0.1), (math.cos(a) * r * 2.2, math.sin(a) * r * 2.2, 0.03), r * 0.3, taper=0.3, material=M.BARK
            )
    elif kind == 'hay_bale':
        r, length = rng.uniform(0.5, 0.8), rng.uniform(1.0, 1.5)
        p.cylinder(
            (0, 0, r), r, length, axis='y', color=np.array([0.75, 0.62, 0.3]) * rng.uniform(0.8, 1.1), material=M.GRASS
        )
    else:
        r = rng.uniform(0.8, 2.0)
        p.cylinder((0, 0, r * 0.3), (r, r * rng.uniform(0.6, 1.0)), r * 0.6, taper=rng.uniform(0.1, 0.5))
    return make_model(f'nature/{kind}', p)


# -- special (32) ------------------------------------------------------------------------------------------------


def _special(rng: np.random.Generator) -> Model:
    kinds = ['tyres', 'cart', 'suitcase', 'statue', 'ball', 'pallets', 'drums', 'rocket', 'balloon', 'sculpture']
    # Random sculptures (any stack of primitives) are the broadest shape family: drawn most often.
    weights = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 4], np.float64)
    kind = rng.choice(kinds, p=weights / weights.sum())
    p = Parts(CATEGORY_TO_LABEL['special'], M.PLASTIC, _colour(rng, 'paint'))
    if kind == 'tyres':
        r = rng.uniform(0.3, 0.5)
        for i in range(int(rng.integers(1, 5))):
            p.cylinder(
                (rng.normal(0, 0.05), rng.normal(0, 0.05), 0.12 + i * 0.24),
                r,
                0.22,
                color=(0.06, 0.06, 0.06),
                material=M.RUBBER,
            )
    elif kind == 'cart':
        p.box((0, 0, 0.65), (0.9, 0.55, 0.45), material=M.METAL)
        p.box((-0.5, 0, 0.95), (0.04, 0.55, 0.04), material=M.METAL)
        for sx in (-1, 1):
            for sy in (-1, 1):
                p.cylinder((sx * 0.35, sy * 0.22, 0.06), 0.06, 0.03, axis='y', color=(0.1, 0.1, 0.1), material=M.RUBBER)
                p.box((sx * 0.35, sy * 0.22, 0.25), (0.03, 0.03, 0.4), material=M.METAL)
    elif kind == 'suitcase':
        l, w, h = rng.uniform(0.4, 0.8), rng.uniform(0.2, 0.35), rng.uniform(0.5, 0.9)
        lying = rng.random() < 0.5
        p.box((0, 0, (w if lying else h) / 2), (l, h if lying else w, w if lying else h))
    elif kind == 'statue':
        p.box((0, 0, 0.3), (0.8, 0.8, 0.6), color=(0.6, 0.6, 0.58), material=M.STONE)
        h = rng.uniform(1.0, 2.5)
        p.cylinder((0, 0, 0.6 + h / 2), rng.uniform(0.15, 0.35), h, taper=rng.uniform(0.5, 1.5), material=M.STONE)
        p.ellipsoid((0, 0, 0.6 + h + 0.2), rng.uniform(0.15, 0.45, 3), material=M.STONE)
    elif kind == 'ball':
        r = rng.uniform(0.3, 1.2)
        p.ellipsoid((0, 0, r), (r, r, r))
    elif kind == 'pallets':
        for i in range(int(rng.integers(1, 6))):
            p.box((0, 0, 0.07 + i * 0.15), (1.2, 0.8, 0.14), color=(0.6, 0.48, 0.3), material=M.WOOD)
    elif kind == 'drums':
        for _ in range(int(rng.integers(1, 4))):
            xy = rng.normal(0, 0.5, 2)
            if rng.random() < 0.5:
                p.cylinder((xy[0], xy[1], 0.45), 0.3, 0.9, material=M.METAL)
            else:
                p.cylinder((xy[0], xy[1], 0.3), 0.3, 0.9, axis='x', rpy=(0, 0, rng.uniform(0, 3)), material=M.METAL)
    elif kind == 'balloon':
        # A tethered balloon: a large body in the air on a thin line.
        r = rng.uniform(0.3, 1.0)
        height = rng.uniform(1.5, 4.0)
        p.box((0, 0, 0.05), (0.3, 0.3, 0.1), color=(0.3, 0.3, 0.3), material=M.STONE)
        p.segment((0, 0, 0.1), (0, 0, height - r), 0.01, color=(0.8, 0.8, 0.8))
        p.ellipsoid((0, 0, height), (r, r, r * rng.uniform(1.0, 1.3)))
    elif kind == 'rocket':
        h = rng.uniform(1.5, 4.0)
        r = h * 0.08
        p.cylinder((0, 0, h * 0.4), r, h * 0.8, material=M.METAL)
        p.cylinder((0, 0, h * 0.9), r, h * 0.2, taper=0.0, color=_colour(rng, 'signal'))
        for a in (0, math.pi / 2, math.pi, 3 * math.pi / 2):
            p.box((math.cos(a) * r * 1.5, math.sin(a) * r * 1.5, h * 0.12), (r * 1.2, 0.03, h * 0.2), rpy=(0, 0, a))
    else:
        # A random sculpture: a few primitives stacked on each other.
        z = 0.0
        for _ in range(int(rng.integers(2, 6))):
            size = rng.uniform(0.2, 0.9, 3)
            shape = rng.integers(3)
            col = _colour(rng, 'paint')
            rpy = rng.uniform(-0.6, 0.6, 3)
            centre = (rng.normal(0, 0.2), rng.normal(0, 0.2), z + size[2] / 2)
            if shape == 0:
                p.box(centre, size, rpy=rpy, color=col)
            elif shape == 1:
                p.ellipsoid(centre, size / 2, rpy=rpy, color=col)
            else:
                p.cylinder(centre, size[0] / 2, size[2], taper=rng.uniform(0, 1.5), rpy=rpy, color=col)
            z += size[2] * 0.85
    return make_model(f'special/{kind}', p)


# -- airplane (33) -----------------------------------------------------------------------------------------------


def _airplane(rng: np.random.Generator) -> Model:
    kind = rng.choice(['light', 'jet', 'glider', 'drone', 'toy'], p=[0.35, 0.15, 0.15, 0.15, 0.2])
    scale = {
        'light': rng.uniform(6, 9),
        'jet': rng.uniform(8, 13),
        'glider': rng.uniform(6, 9),
        'drone': rng.uniform(0.8, 1.6),
        'toy': rng.uniform(1.0, 2.5),
    }[kind]
    col = _colour(rng, 'paint')
    p = Parts(CATEGORY_TO_LABEL['airplane'], M.METAL, col)
    if kind == 'drone':
        arm = scale / 2
        p.box((0, 0, 0.35), (arm * 0.5, arm * 0.5, 0.15))
        for a in (math.pi / 4, 3 * math.pi / 4, 5 * math.pi / 4, 7 * math.pi / 4):
            tip = (math.cos(a) * arm, math.sin(a) * arm)
            p.segment((0, 0, 0.35), (tip[0], tip[1], 0.35), 0.025)
            p.cylinder((tip[0], tip[1], 0.42), arm * 0.35, 0.02, color=(0.1, 0.1, 0.1), material=M.PLASTIC)
            p.segment((tip[0], tip[1], 0.0), (tip[0], tip[1], 0.35), 0.015)
        return make_model('airplane/drone', p)
    length = scale * (0.8 if kind != 'glider' else 0.7)
    span = scale * (1.1 if kind != 'glider' else 2.0)
    radius = length * (0.07 if kind != 'jet' else 0.06)
    gear = radius * (1.2 if kind in ('light', 'jet') else 0.1)
    zc = radius + gear
    p.ellipsoid((0, 0, zc), (length / 2, radius, radius * 1.1))
    chord = length * 0.16
    wing_z = zc + (radius * 0.6 if kind in ('light', 'glider') else -radius * 0.3)
    p.box((length * 0.05, 0, wing_z), (chord, span, radius * 0.18), rpy=(0, 0, 0))
    p.box((-length * 0.42, 0, zc + radius * 0.3), (chord * 0.6, span * 0.35, radius * 0.12))
    p.box(
        (-length * 0.42, 0, zc + radius * 1.4), (chord * 0.7, radius * 0.12, radius * 2.2), color=_colour(rng, 'paint')
    )
    p.ellipsoid(
        (length * 0.18, 0, zc + radius * 0.7),
        (length * 0.1, radius * 0.6, radius * 0.5),
        color=(0.1, 0.13, 0.16),
        material=M.GLASS,
    )
    if kind == 'light':
        p.cylinder((length / 2 + 0.02, 0, zc), radius * 1.4, 0.05, axis='x', color=(0.15, 0.15, 0.15))
    if kind == 'jet':
        for side in (-1, 1):
            p.cylinder(
                (length * 0.1, side * span * 0.25, wing_z - radius * 0.5),
                radius * 0.45,
                length * 0.2,
                axis='x',
                color=(0.5, 0.5, 0.52),
            )
    if gear > 0.1:
        for x, y in ((length * 0.25, 0.0), (-0.02 * length, radius * 1.6), (-0.02 * length, -radius * 1.6)):
            p.segment((x, y, gear * 0.4), (x, y * 0.6, zc - radius * 0.8), radius * 0.08)
            p.cylinder(
                (x, y, gear * 0.35), gear * 0.35, radius * 0.25, axis='y', color=(0.06, 0.06, 0.06), material=M.RUBBER
            )
    return make_model(f'airplane/{kind}', p)


# -- falling (34) ------------------------------------------------------------------------------------------------


def _falling(rng: np.random.Generator) -> Model:
    kind = rng.choice(['crate', 'ball', 'barrel', 'plank', 'sack', 'tyre', 'box_pile'])
    p = Parts(CATEGORY_TO_LABEL['falling'], M.WOOD, _colour(rng, 'building'))
    if kind == 'crate':
        s = rng.uniform(0.3, 1.2, 3)
        p.box((0, 0, s[2] / 2), s)
    elif kind == 'ball':
        r = rng.uniform(0.15, 0.7)
        p.ellipsoid((0, 0, r), (r, r, r), material=M.PLASTIC)
    elif kind == 'barrel':
        p.cylinder((0, 0, 0.45), 0.3, 0.9, material=M.METAL)
    elif kind == 'plank':
        length = rng.uniform(1.0, 3.5)
        p.box((0, 0, 0.05), (length, rng.uniform(0.1, 0.4), rng.uniform(0.03, 0.1)))
    elif kind == 'sack':
        p.ellipsoid((0, 0, 0.25), (rng.uniform(0.3, 0.6), rng.uniform(0.2, 0.35), 0.25), material=M.CLOTH)
    elif kind == 'tyre':
        r = rng.uniform(0.3, 0.55)
        p.cylinder((0, 0, r), r, 0.22, axis='y', color=(0.06, 0.06, 0.06), material=M.RUBBER)
    else:
        for i in range(int(rng.integers(2, 4))):
            s = rng.uniform(0.3, 0.7, 3)
            p.box(
                (rng.normal(0, 0.15), rng.normal(0, 0.15), i * 0.45 + s[2] / 2),
                s,
                rpy=(0, 0, rng.uniform(0, 1)),
                color=_colour(rng, 'building'),
            )
    return make_model(f'falling/{kind}', p)


BUILDERS: dict[str, Callable[[np.random.Generator], Model]] = {
    'home': _home,
    'animal': _animal,
    'nature': _nature,
    'special': _special,
    'airplane': _airplane,
    'falling': _falling,
}


def build_anomaly(category: str, rng: np.random.Generator) -> Model:
    """One anomaly of ``category``, in its object frame, labelled with the category's id.

    The object's lowest point lies on the ground plane (z = 0) of its frame.

    Raises:
        KeyError: For an unknown category.
    """
    if category not in BUILDERS:
        msg = f'build_anomaly: unknown category {category!r}; expected one of {sorted(BUILDERS)}'
        raise KeyError(msg)
    model = BUILDERS[category](rng)
    # Rest the lowest point on the ground: tilted rocks and sculptures neither float nor sink.
    bottom = float((model.parts.center[:, 2] - aabb_half_extents(model.parts)[:, 2]).min())
    parts = model.parts.transformed(np.eye(3), np.array([0.0, 0.0, -bottom]))
    return Model(model.name, parts, model.size_m + np.array([0.0, 0.0, -bottom]))
