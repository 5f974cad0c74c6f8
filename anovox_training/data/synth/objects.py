"""Normal (non-anomalous) objects of the synthetic world, built from primitives.

Each builder draws one parametric template (a pedestrian, a tree, a fence, ...)
with varied size, style and colour. Builders return a `Model` in the object
frame of parts.py (x forward, z up, origin on the ground under the footprint
centre). Vehicles live in vehicles.py and street furniture in
street_furniture.py; this module gathers them all, so placement code reads
``objects.car``, ``objects.planter``, ...
"""

from __future__ import annotations

import math

import numpy as np

from anovox_training.data.labels import LABEL_IDS
from anovox_training.data.synth import materials as M
from anovox_training.data.synth.model import Model, make_model, model_of_batch
from anovox_training.data.synth.parts import Parts
from anovox_training.data.synth.street_furniture import (
    barrier,
    bench,
    bike_rack,
    bin_,
    bollard,
    bus_stop,
    cone,
    hydrant,
    newspaper_box,
    parcel_boxes,
    planter,
    recycling_boxes,
    rubbish_bags,
    sandwich_board,
    utility_box,
)
from anovox_training.data.synth.vehicles import bicycle, bus, car, motorcycle, scooter, truck

__all__ = [
    'Model',
    'barrier',
    'bench',
    'bicycle',
    'bike_rack',
    'bin_',
    'bollard',
    'building',
    'bus',
    'bus_stop',
    'bush',
    'car',
    'cone',
    'fence',
    'guard_rail',
    'hedge',
    'hydrant',
    'make_model',
    'model_of_batch',
    'motorcycle',
    'newspaper_box',
    'parcel_boxes',
    'pedestrian',
    'planter',
    'recycling_boxes',
    'rubbish_bags',
    'sandwich_board',
    'scooter',
    'street_lamp',
    'traffic_light',
    'traffic_sign',
    'tree',
    'truck',
    'utility_box',
    'utility_pole',
    'wall',
]

_ID = LABEL_IDS


def pedestrian(rng: np.random.Generator, child: bool = False) -> Model:
    """A walking person: legs, torso, arms, head."""
    height = rng.uniform(1.05, 1.4) if child else rng.uniform(1.55, 1.95)
    s = height / 1.75
    cloth_top = M.sample_color(rng, 'cloth')
    cloth_leg = M.sample_color(rng, 'cloth')
    skin = M.sample_color(rng, 'skin', jitter=0.03)
    p = Parts(_ID['pedestrian'], M.CLOTH, cloth_top)
    stride = rng.uniform(-0.2, 0.2) * s
    hip = 0.9 * s
    for side, phase in ((-1, 1.0), (1, -1.0)):
        p.segment((phase * stride, side * 0.1 * s, 0.05), (0, side * 0.1 * s, hip), 0.075 * s, color=cloth_leg)
    p.ellipsoid((0, 0, hip + 0.3 * s), (0.14 * s, 0.21 * s, 0.34 * s))
    for side, phase in ((-1, -1.0), (1, 1.0)):
        shoulder = (0, side * 0.22 * s, hip + 0.55 * s)
        p.segment((phase * stride * 0.7, side * 0.26 * s, hip + 0.02 * s), shoulder, 0.05 * s)
    p.ellipsoid((0, 0, height - 0.12 * s), (0.1 * s, 0.09 * s, 0.12 * s), color=skin, material=M.SKIN)
    if rng.random() < 0.3:
        p.box((-0.2 * s, 0, hip + 0.35 * s), (0.15 * s, 0.3 * s, 0.4 * s), color=M.sample_color(rng, 'cloth'))
    return make_model('pedestrian', p)


def tree(rng: np.random.Generator) -> Model:
    """A tree: trunk and a round, layered or conical crown (all vegetation, 9)."""
    trunk_h = rng.uniform(1.8, 4.0)
    trunk_r = rng.uniform(0.1, 0.3)
    green = M.sample_color(rng, 'nature') * 0.3 + np.array([0.14, 0.3, 0.08], np.float32) * rng.uniform(0.7, 1.3)
    p = Parts(_ID['vegetation'], M.FOLIAGE, np.clip(green, 0, 1))
    bark = np.array([0.3, 0.22, 0.15]) * rng.uniform(0.7, 1.2)
    style = rng.choice(['round', 'layered', 'conifer'], p=[0.5, 0.3, 0.2])
    if style == 'conifer':
        crown_h = rng.uniform(4, 9)
        p.cylinder((0, 0, trunk_h * 0.5), trunk_r, trunk_h, color=bark, material=M.BARK)
        p.cylinder((0, 0, trunk_h * 0.6 + crown_h / 2), rng.uniform(1.2, 2.5), crown_h, taper=0.0)
    else:
        crown_r = rng.uniform(1.5, 3.5)
        p.cylinder((0, 0, (trunk_h + crown_r * 0.5) / 2), trunk_r, trunk_h + crown_r * 0.5, color=bark, material=M.BARK)
        blobs = 1 if style == 'round' else int(rng.integers(2, 4))
        for _ in range(blobs):
            off = rng.normal(0, crown_r * 0.3, 2) if blobs > 1 else np.zeros(2)
            radii = crown_r * rng.uniform(0.75, 1.1, 3)
            radii[2] *= rng.uniform(0.8, 1.3)
            p.ellipsoid((off[0], off[1], trunk_h + radii[2] * 0.8), radii)
    return make_model('tree', p)


def bush(rng: np.random.Generator) -> Model:
    """A bush: one to three rounded shrubs (vegetation, 9), or a short hedge segment."""
    if rng.random() < 0.3:
        return hedge(rng, rng.uniform(2.0, 8.0))
    green = np.array([0.16, 0.3, 0.1]) * rng.uniform(0.7, 1.3)
    p = Parts(_ID['vegetation'], M.FOLIAGE, green)
    for _ in range(int(rng.integers(1, 4))):
        r = rng.uniform(0.4, 1.0)
        p.ellipsoid((rng.normal(0, 0.4), rng.normal(0, 0.4), r * 0.7), (r, r * rng.uniform(0.8, 1.2), r * 0.8))
    return make_model('bush', p)


def hedge(rng: np.random.Generator, length: float) -> Model:
    """A hedge along x (vegetation, 9): clipped flat, rounded on top, or loose and uneven."""
    green = np.array([0.15, 0.3, 0.1]) * rng.uniform(0.65, 1.3)
    p = Parts(_ID['vegetation'], M.FOLIAGE, green)
    h, w = rng.uniform(0.6, 2.2), rng.uniform(0.5, 1.3)
    style = str(rng.choice(['clipped', 'rounded', 'loose']))
    if style == 'clipped':
        p.box((0, 0, h / 2), (length, w, h))
    elif style == 'rounded':
        p.box((0, 0, h * 0.4), (length, w, h * 0.8))
        p.cylinder((0, 0, h * 0.8), (w / 2, h * 0.2), length, axis='x')
    else:
        n = max(2, int(length / 0.9))
        for x in np.linspace(-length / 2 + 0.4, length / 2 - 0.4, n):
            r = np.array([0.6, w / 2, h / 2]) * rng.uniform(0.8, 1.2, 3)
            p.ellipsoid((x, rng.normal(0, 0.08), r[2]), r)
    return make_model(f'hedge/{style}', p)


def street_lamp(rng: np.random.Generator) -> Model:
    """A street lamp: pole, arm and head reaching towards the road (+y)."""
    h = rng.uniform(6.0, 9.0)
    grey = np.array([0.4, 0.41, 0.43]) * rng.uniform(0.6, 1.3)
    p = Parts(_ID['pole'], M.METAL, grey)
    p.cylinder((0, 0, h / 2), rng.uniform(0.07, 0.12), h, taper=0.7)
    arm = rng.uniform(1.0, 2.5)
    p.box((0, arm / 2, h - 0.1), (0.08, arm, 0.08))
    p.box((0, arm, h - 0.2), (0.5, 0.3, 0.15), color=(0.8, 0.8, 0.75))
    return make_model('street_lamp', p)


def utility_pole(rng: np.random.Generator) -> Model:
    """A pole (6) of any height: a short post, a wooden utility pole with a cross-arm, or a tall mast."""
    style = str(rng.choice(['post', 'utility', 'mast'], p=[0.35, 0.45, 0.2]))
    h = {'post': rng.uniform(1.5, 3.5), 'utility': rng.uniform(6.0, 11.0), 'mast': rng.uniform(10.0, 16.0)}[style]
    grey = np.array([0.42, 0.42, 0.44]) * rng.uniform(0.6, 1.3)
    wood = np.array([0.35, 0.26, 0.18]) * rng.uniform(0.7, 1.2)
    p = Parts(_ID['pole'], M.WOOD if style == 'utility' else M.METAL, wood if style == 'utility' else grey)
    radius = {'post': rng.uniform(0.03, 0.06), 'utility': rng.uniform(0.12, 0.18), 'mast': rng.uniform(0.15, 0.25)}[
        style
    ]
    p.cylinder((0, 0, h / 2), radius, h, taper=0.8 if style != 'post' else 1.0)
    if style == 'utility':
        p.box((0, 0, h - 0.4), (0.1, rng.uniform(1.2, 2.2), 0.1))
    elif style == 'mast' and rng.random() < 0.5:
        p.box((0, 0, h), (0.6, 0.6, 0.4), color=(0.8, 0.8, 0.75))
    return make_model(f'pole/{style}', p)


def traffic_sign(rng: np.random.Generator) -> Model:
    """A traffic sign: pole (6) and a round, square or diamond plate (8) facing -x."""
    h = rng.uniform(2.2, 3.0)
    p = Parts(_ID['pole'], M.METAL, (0.55, 0.56, 0.58))
    p.cylinder((0, 0, h / 2), 0.04, h)
    colour = M.sample_color(rng, 'signal') if rng.random() < 0.7 else np.array([0.1, 0.25, 0.65], np.float32)
    shape = rng.choice(['round', 'square', 'diamond'])
    size = rng.uniform(0.5, 0.9)
    centre = (-0.05, 0, h - size / 2)
    if shape == 'round':
        p.cylinder(centre, size / 2, 0.04, axis='x', color=colour, material=M.RETRO, label=_ID['traffic_sign'])
    else:
        roll = math.pi / 4 if shape == 'diamond' else 0.0
        p.box(centre, (0.04, size, size), rpy=(roll, 0, 0), color=colour, material=M.RETRO, label=_ID['traffic_sign'])
    return make_model('traffic_sign', p)


def traffic_light(rng: np.random.Generator) -> Model:
    """A traffic light: pole (6) with a light box (7), sometimes on an arm over the road (+y)."""
    h = rng.uniform(3.0, 5.5)
    p = Parts(_ID['pole'], M.METAL, (0.2, 0.2, 0.22))
    p.cylinder((0, 0, h / 2), 0.1, h)
    arm = rng.uniform(2.0, 5.0) if rng.random() < 0.5 else 0.0
    if arm:
        p.box((0, arm / 2, h - 0.1), (0.12, arm, 0.12))
    p.box((-0.1, arm, h - 0.6), (0.3, 0.35, 1.0), color=(0.1, 0.1, 0.1), material=M.PLASTIC, label=_ID['traffic_light'])
    return make_model('traffic_light', p)


def building(rng: np.random.Generator, length: float, depth: float) -> Model:
    """A building block of ``length`` along x and ``depth`` along y (facade at y = -depth/2)."""
    height = float(rng.choice([rng.uniform(4, 9), rng.uniform(9, 20), rng.uniform(20, 40)], p=[0.35, 0.45, 0.2]))
    p = Parts(_ID['building'], M.FACADE, M.sample_color(rng, 'building'))
    p.box((0, 0, height / 2), (length, depth, height))
    if rng.random() < 0.4:
        top = rng.uniform(2, 8)
        p.box((rng.normal(0, length * 0.1), depth * 0.1, height + top / 2), (length * 0.6, depth * 0.6, top))
    if rng.random() < 0.4:
        p.box((0, -depth / 2 - 0.6, 3.2), (length * 0.9, 1.2, 0.15), color=M.sample_color(rng, 'paint'))
    return make_model('building', p)


def wall(rng: np.random.Generator, length: float) -> Model:
    """A wall segment along x (4): plain, capped, or with pillars; knee-high to above head height."""
    h = rng.uniform(0.4, 2.8)
    thick = rng.uniform(0.2, 0.45)
    p = Parts(_ID['wall'], M.CONCRETE, M.sample_color(rng, 'building'))
    style = str(rng.choice(['plain', 'capped', 'pillars']))
    p.box((0, 0, h / 2), (length, thick, h))
    if style == 'capped':
        p.box((0, 0, h + 0.04), (length, thick + 0.08, 0.08), color=M.sample_color(rng, 'building'))
    elif style == 'pillars':
        for x in np.arange(-length / 2, length / 2 + 0.01, max(1.5, length / max(1, round(length / 3.0)))):
            p.box((x, 0, (h + 0.2) / 2), (thick + 0.15, thick + 0.15, h + 0.2))
    return make_model(f'wall/{style}', p)


def fence(rng: np.random.Generator, length: float) -> Model:
    """A fence segment along x (5): solid panels, pickets, wire mesh or metal railings, on posts."""
    h = rng.uniform(0.8, 2.2)
    style = str(rng.choice(['panel', 'picket', 'mesh', 'railing']))
    colour = M.sample_color(rng, 'nature') if rng.random() < 0.5 else M.sample_color(rng, 'building')
    material = M.METAL if style in ('mesh', 'railing') else M.WOOD
    p = Parts(_ID['fence'], material, colour)
    posts = max(2, int(length / 2.5) + 1)
    for x in np.linspace(-length / 2, length / 2, posts):
        p.box((x, 0, h / 2), (0.1, 0.1, h))
    if style == 'panel':
        p.box((0, 0, h / 2 + 0.05), (length, 0.04, h - 0.1))
    elif style == 'picket':
        for z in (h * 0.3, h * 0.75):
            p.box((0, 0, z), (length, 0.03, 0.08))
        for x in np.arange(-length / 2 + 0.1, length / 2, 0.18):
            p.box((x, 0.03, h * 0.45), (0.08, 0.02, h * 0.9))
    elif style == 'mesh':
        # Wire mesh: a thin, partly see-through sheet is beyond the primitives; a dark thin panel stands in.
        p.box((0, 0, h / 2), (length, 0.01, h), color=np.asarray(colour) * 0.5)
    else:
        for z in (0.1, h - 0.05):
            p.box((0, 0, z), (length, 0.04, 0.04))
        for x in np.arange(-length / 2 + 0.08, length / 2, 0.15):
            p.box((x, 0, h / 2), (0.02, 0.02, h))
    return make_model(f'fence/{style}', p)


def guard_rail(rng: np.random.Generator, length: float) -> Model:
    """A guard rail segment along x (28)."""
    p = Parts(_ID['guard_rail'], M.METAL, (0.6, 0.62, 0.64))
    p.box((0, 0, 0.6), (length, 0.08, 0.32))
    posts = max(2, int(length / 2.5) + 1)
    for x in np.linspace(-length / 2, length / 2, posts):
        p.box((x, 0.08, 0.35), (0.1, 0.1, 0.7))
    return make_model('guard_rail', p)
