"""Street furniture and clutter: road-works kit, bins, benches, planters, parcels, bags, racks, shelters.

Labels follow CARLA: fixed furniture is static (20); things people move
(bins, parcels, rubbish bags) are dynamic (21); plants in planters are
vegetation (9). Several of these are plain boxes, cylinders and ellipsoids at
the sizes anomalies have (parcels, bags, round planters, utility boxes), so a
simple primitive never means "anomaly" by its shape alone.
"""

from __future__ import annotations

import math

import numpy as np

from anovox_training.data.labels import LABEL_IDS
from anovox_training.data.synth import materials as M
from anovox_training.data.synth.model import Model, make_model, model_of_batch
from anovox_training.data.synth.parts import Parts
from anovox_training.data.synth.primitives import PrimitiveBatch
from anovox_training.data.synth.vehicles import bicycle

__all__ = [
    'barrier',
    'bench',
    'bike_rack',
    'bin_',
    'bollard',
    'bus_stop',
    'cone',
    'hydrant',
    'newspaper_box',
    'parcel_boxes',
    'planter',
    'recycling_boxes',
    'rubbish_bags',
    'sandwich_board',
    'utility_box',
]

_ID = LABEL_IDS
_CONCRETE = (0.65, 0.65, 0.62)
_DARK = (0.12, 0.12, 0.13)


def cone(rng: np.random.Generator) -> Model:
    """A traffic cone on a square base (static, 20)."""
    h = rng.uniform(0.45, 0.95)
    p = Parts(_ID['static'], M.PLASTIC, M.sample_color(rng, 'signal', jitter=0.03))
    p.box((0, 0, 0.02), (h * 0.6, h * 0.6, 0.04), color=(0.1, 0.1, 0.1))
    p.cylinder((0, 0, 0.04 + h / 2), h * 0.22, h, taper=0.15)
    return make_model('cone', p)


def barrier(rng: np.random.Generator) -> Model:
    """A road barrier: concrete, a plastic rail on legs, or a water-filled block (static, 20)."""
    p = Parts(_ID['static'], M.PLASTIC, M.sample_color(rng, 'signal'))
    length = rng.uniform(1.2, 3.0)
    style = str(rng.choice(['concrete', 'rail', 'water']))
    if style == 'concrete':
        p.box((0, 0, 0.4), (length, 0.5, 0.8), color=_CONCRETE, material=M.CONCRETE)
        p.box((0, 0, 0.1), (length, 0.7, 0.2), color=_CONCRETE, material=M.CONCRETE)
    elif style == 'rail':
        h = rng.uniform(0.8, 1.1)
        p.box((0, 0, h - 0.15), (length, 0.08, 0.25), material=M.RETRO)
        for x in (-length / 2 + 0.1, length / 2 - 0.1):
            p.box((x, 0, h / 2), (0.08, 0.5, h), color=(0.9, 0.9, 0.9))
    else:
        p.box((0, 0, 0.25), (length, 0.5, 0.5))
        p.box((0, 0, 0.7), (length * 0.9, 0.35, 0.4))
    return make_model(f'barrier/{style}', p)


def bin_(rng: np.random.Generator) -> Model:
    """A waste bin (dynamic, 21): wheelie bin, round street bin, dumpster or recycling bell."""
    colour = M.sample_color(rng, 'paint') * 0.5 + np.array([0.1, 0.3, 0.15], np.float32) * 0.5
    p = Parts(_ID['dynamic'], M.PLASTIC, colour)
    style = str(rng.choice(['wheelie', 'round', 'dumpster', 'bell'], p=[0.4, 0.3, 0.15, 0.15]))
    if style == 'wheelie':
        h, w, d = rng.uniform(0.95, 1.1), rng.uniform(0.5, 0.6), rng.uniform(0.55, 0.75)
        p.box((0, 0, 0.05 + h / 2), (d, w, h))
        p.box((0.02, 0, h + 0.08), (d + 0.06, w + 0.02, 0.05))
        p.cylinder((-d / 2, 0, 0.1), 0.1, w + 0.04, axis='y', color=(0.06, 0.06, 0.06), material=M.RUBBER)
    elif style == 'round':
        h = rng.uniform(0.7, 1.0)
        p.cylinder((0, 0, h / 2), rng.uniform(0.25, 0.35), h, taper=rng.uniform(1.0, 1.15))
    elif style == 'dumpster':
        l, w, h = rng.uniform(1.6, 2.2), rng.uniform(1.0, 1.3), rng.uniform(1.1, 1.4)
        p.box((0, 0, 0.15 + h / 2), (l, w, h), material=M.METAL)
        p.box((0, 0, h + 0.2), (l, w + 0.04, 0.06), rpy=(0.08, 0, 0))
        for sx in (-1, 1):
            for sy in (-1, 1):
                p.cylinder((sx * l * 0.4, sy * w * 0.4, 0.08), 0.08, 0.06, axis='y', color=_DARK, material=M.RUBBER)
    else:
        r, h = rng.uniform(0.6, 0.8), rng.uniform(1.4, 1.8)
        p.cylinder((0, 0, h / 2), r, h, taper=rng.uniform(0.6, 0.85))
        p.cylinder((0, 0, h + 0.1), 0.08, 0.2, color=_DARK)
    return make_model(f'bin/{style}', p)


def bench(rng: np.random.Generator) -> Model:
    """A bench, with or without a backrest (static, 20)."""
    p = Parts(_ID['static'], M.WOOD, np.array([0.45, 0.3, 0.18]) * rng.uniform(0.7, 1.3))
    length = rng.uniform(1.5, 2.2)
    p.box((0, 0, 0.45), (length, 0.45, 0.06))
    if rng.random() < 0.75:
        p.box((0, -0.2, 0.75), (length, 0.05, 0.35), rpy=(0.15, 0, 0))
    for x in (-length / 2 + 0.15, length / 2 - 0.15):
        p.box((x, 0, 0.22), (0.06, 0.45, 0.44), color=(0.2, 0.2, 0.2), material=M.METAL)
    return make_model('bench', p)


def hydrant(rng: np.random.Generator) -> Model:
    """A fire hydrant (static, 20)."""
    p = Parts(_ID['static'], M.METAL, M.sample_color(rng, 'signal'))
    p.cylinder((0, 0, 0.3), 0.12, 0.6)
    p.ellipsoid((0, 0, 0.6), (0.13, 0.13, 0.1))
    p.cylinder((0, 0, 0.4), 0.05, 0.4, axis='y')
    return make_model('hydrant', p)


def bollard(rng: np.random.Generator) -> Model:
    """A bollard: a post, a capped post or a concrete block (static, 20)."""
    p = Parts(_ID['static'], M.METAL, M.sample_color(rng, 'building'))
    h = rng.uniform(0.7, 1.1)
    style = str(rng.choice(['post', 'capped', 'block'], p=[0.5, 0.3, 0.2]))
    if style == 'block':
        s = rng.uniform(0.4, 0.6)
        p.box((0, 0, h * 0.3), (s, s, h * 0.6), color=_CONCRETE, material=M.CONCRETE)
    else:
        r = rng.uniform(0.06, 0.12)
        p.cylinder((0, 0, h / 2), r, h)
        if style == 'capped':
            p.ellipsoid((0, 0, h), (r * 1.2, r * 1.2, r * 0.8))
            p.cylinder((0, 0, h * 0.85), r * 1.05, 0.06, material=M.RETRO, color=(0.9, 0.9, 0.9))
    return make_model(f'bollard/{style}', p)


def planter(rng: np.random.Generator) -> Model:
    """A planter: a concrete or wooden box or tub (static, 20) holding a shrub (vegetation, 9)."""
    p = Parts(_ID['static'], M.CONCRETE, M.sample_color(rng, 'building'))
    green = np.array([0.16, 0.32, 0.1]) * rng.uniform(0.7, 1.3)
    if rng.random() < 0.5:
        l, w, h = rng.uniform(0.8, 2.0), rng.uniform(0.5, 1.0), rng.uniform(0.4, 0.9)
        p.box((0, 0, h / 2), (l, w, h), material=int(rng.choice([M.CONCRETE, M.WOOD])))
        top = (l * 0.5, w * 0.55, rng.uniform(0.25, 0.7))
    else:
        r, h = rng.uniform(0.35, 0.8), rng.uniform(0.4, 0.9)
        p.cylinder((0, 0, h / 2), r, h, taper=rng.uniform(1.0, 1.25))
        top = (r * 0.85, r * 0.85, rng.uniform(0.25, 0.8))
    p.ellipsoid((0, 0, h + top[2] * 0.6), top, color=green, material=M.FOLIAGE, label=_ID['vegetation'])
    return make_model('planter', p)


def parcel_boxes(rng: np.random.Generator) -> Model:
    """One to four cardboard parcels left on the pavement (dynamic, 21)."""
    p = Parts(_ID['dynamic'], M.CLOTH, np.array([0.62, 0.48, 0.32]) * rng.uniform(0.8, 1.15))
    z = 0.0
    for _ in range(int(rng.integers(1, 5))):
        size = np.array([rng.uniform(0.25, 0.8), rng.uniform(0.2, 0.6), rng.uniform(0.15, 0.6)])
        if rng.random() < 0.5 or z == 0.0:
            centre = (rng.normal(0, 0.05), rng.normal(0, 0.05), z + size[2] / 2)
            z += size[2]
        else:
            centre = (rng.normal(0, 0.4), rng.normal(0, 0.4), size[2] / 2)
        p.box(centre, size, rpy=(0, 0, rng.normal(0, 0.3)))
    return make_model('parcel_boxes', p)


def rubbish_bags(rng: np.random.Generator) -> Model:
    """Filled rubbish bags heaped by the kerb (dynamic, 21)."""
    colour = (
        M.sample_color(rng, 'paint') if rng.random() < 0.3 else np.array([0.07, 0.07, 0.08]) * rng.uniform(0.8, 2.5)
    )
    p = Parts(_ID['dynamic'], M.PLASTIC, colour)
    for _ in range(int(rng.integers(1, 6))):
        r = np.array([rng.uniform(0.25, 0.4), rng.uniform(0.22, 0.35), rng.uniform(0.25, 0.4)])
        xy = rng.normal(0, 0.35, 2)
        p.ellipsoid((xy[0], xy[1], r[2] * 0.9), r, rpy=(rng.normal(0, 0.3), rng.normal(0, 0.3), rng.uniform(0, 3)))
    return make_model('rubbish_bags', p)


def recycling_boxes(rng: np.random.Generator) -> Model:
    """Open recycling crates with bottles and paper in them, put out for collection (dynamic, 21)."""
    p = Parts(_ID['dynamic'], M.PLASTIC, M.sample_color(rng, 'paint'))
    for k in range(int(rng.integers(1, 4))):
        l, w, h = rng.uniform(0.45, 0.6), rng.uniform(0.35, 0.4), rng.uniform(0.3, 0.4)
        x = k * (l + 0.1)
        p.box((x, 0, 0.02), (l, w, 0.04))
        for sy in (-1, 1):
            p.box((x, sy * (w / 2 - 0.015), h / 2), (l, 0.03, h))
        for sx in (-1, 1):
            p.box((x + sx * (l / 2 - 0.015), 0, h / 2), (0.03, w, h))
        p.box((x, 0, h * 0.55), (l * 0.85, w * 0.85, h * 0.5), color=M.sample_color(rng, None), material=M.CLOTH)
    return make_model('recycling_boxes', p)


def newspaper_box(rng: np.random.Generator) -> Model:
    """A newspaper vending box or post box on a short pedestal (static, 20)."""
    p = Parts(_ID['static'], M.METAL, M.sample_color(rng, 'paint'))
    w, d, h = rng.uniform(0.4, 0.55), rng.uniform(0.4, 0.5), rng.uniform(0.8, 1.1)
    p.box((0, 0, 0.15), (0.1, 0.1, 0.3), color=_DARK)
    p.box((0, 0, 0.3 + (h - 0.3) / 2), (d, w, h - 0.3))
    p.box((d / 2 + 0.01, 0, h * 0.75), (0.02, w * 0.8, h * 0.25), color=(0.15, 0.18, 0.2), material=M.GLASS)
    return make_model('newspaper_box', p)


def utility_box(rng: np.random.Generator) -> Model:
    """A roadside utility cabinet (static, 20): a plain box of anomaly size."""
    p = Parts(_ID['static'], M.METAL, M.sample_color(rng, 'building'))
    l, w, h = rng.uniform(0.6, 1.4), rng.uniform(0.3, 0.6), rng.uniform(0.9, 1.6)
    p.box((0, 0, h / 2), (w, l, h))
    return make_model('utility_box', p)


def sandwich_board(rng: np.random.Generator) -> Model:
    """An A-frame sign on the pavement or by road works (static, 20)."""
    p = Parts(_ID['static'], M.PLASTIC, M.sample_color(rng, 'signal'))
    h, w = rng.uniform(0.8, 1.2), rng.uniform(0.5, 0.8)
    lean = 0.22
    for sx in (-1, 1):
        p.box((sx * h * math.sin(lean) / 2, 0, h * math.cos(lean) / 2), (0.03, w, h), rpy=(0, -sx * lean, 0))
    return make_model('sandwich_board', p)


def bike_rack(rng: np.random.Generator) -> Model:
    """A row of hoops (static, 20), with parked bicycles (19) in some of them."""
    p = Parts(_ID['static'], M.METAL, (0.5, 0.5, 0.52))
    hoops = int(rng.integers(2, 6))
    parts = []
    for k in range(hoops):
        y = (k - (hoops - 1) / 2) * 0.8
        for sx in (-1, 1):
            p.segment((sx * 0.35, y, 0.0), (sx * 0.35, y, 0.75), 0.025)
        p.segment((-0.35, y, 0.75), (0.35, y, 0.75), 0.025)
        if rng.random() < 0.5:
            bike = bicycle(rng, ridden=False).parts
            parts.append(bike.transformed(np.eye(3), np.array([0.0, y + 0.2, 0.0])))
    rack = make_model('bike_rack', p)
    if not parts:
        return rack
    return model_of_batch('bike_rack', PrimitiveBatch.concat([rack.parts, *parts]))


def bus_stop(rng: np.random.Generator) -> Model:
    """A bus shelter: back glass wall, roof on posts, a bench and a timetable pole (static, 20)."""
    p = Parts(_ID['static'], M.METAL, (0.35, 0.36, 0.38))
    l, d, h = rng.uniform(3.0, 5.0), rng.uniform(1.2, 1.6), rng.uniform(2.3, 2.6)
    p.box((0, d / 2, h / 2 + 0.1), (l, 0.03, h - 0.2), color=(0.2, 0.25, 0.28), material=M.GLASS)
    p.box((0, 0, h), (l + 0.1, d + 0.2, 0.1), color=M.sample_color(rng, 'paint'))
    for sx in (-1, 1):
        p.box((sx * l / 2, d / 2, h / 2), (0.08, 0.08, h))
        p.box((sx * l / 2, 0, h / 2 + 0.1), (0.03, d, h - 0.4), color=(0.2, 0.25, 0.28), material=M.GLASS)
    p.box((0, d / 2 - 0.25, 0.45), (l * 0.6, 0.35, 0.05), material=M.WOOD, color=(0.45, 0.3, 0.18))
    p.cylinder((l / 2 + 0.6, -d / 2, 1.4), 0.04, 2.8, label=_ID['pole'])
    p.box(
        (l / 2 + 0.6, -d / 2, 2.6),
        (0.04, 0.45, 0.45),
        color=(0.9, 0.8, 0.1),
        material=M.RETRO,
        label=_ID['traffic_sign'],
    )
    return make_model('bus_stop', p)
