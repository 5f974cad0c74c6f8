"""Normal (non-anomalous) objects of the synthetic world, built from primitives.

Each builder draws one parametric template (a car, a pedestrian, a tree, ...)
so that every class has a consistent, learnable shape with varied size and
colour. Builders return a `Model` in the object frame of parts.py (x forward,
z up, origin on the ground under the footprint centre).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from anovox_training.data.labels import LABEL_IDS
from anovox_training.data.synth import materials as M
from anovox_training.data.synth.parts import Parts
from anovox_training.data.synth.primitives import PrimitiveBatch

__all__ = [
    'Model',
    'barrier',
    'bench',
    'bicycle',
    'bin_',
    'bollard',
    'building',
    'bus',
    'bush',
    'car',
    'cone',
    'fence',
    'guard_rail',
    'hydrant',
    'make_model',
    'model_of_batch',
    'motorcycle',
    'pedestrian',
    'street_lamp',
    'traffic_light',
    'traffic_sign',
    'tree',
    'truck',
    'wall',
]

_ID = LABEL_IDS
_TYRE = (0.06, 0.06, 0.06)
_GLASS = (0.10, 0.13, 0.16)


@dataclass
class Model:
    """A built object.

    Attributes:
        name: Template name ('car', 'pedestrian', 'home/sofa', ...).
        parts: Primitives in the object frame.
        size_m: (3,) footprint length (x), width (y) and height (z).
    """

    name: str
    parts: PrimitiveBatch
    size_m: np.ndarray


def make_model(name: str, parts: Parts) -> Model:
    """The Model of built ``parts``; its size is taken from the parts' bounding boxes."""
    return model_of_batch(name, parts.build())


def model_of_batch(name: str, batch: PrimitiveBatch) -> Model:
    """The Model of primitives in an object frame: footprint extent about the origin, height above the ground."""
    corners = batch.corners().reshape(-1, 3)
    size = np.array(
        [
            2 * np.abs(corners[:, 0]).max(),
            2 * np.abs(corners[:, 1]).max(),
            max(corners[:, 2].max(), 0.0),
        ]
    )
    return Model(name, batch, size)


def _wheels(p: Parts, xs: list[float], half_track: float, radius: float, width: float) -> None:
    for x in xs:
        for side in (-1, 1):
            p.cylinder((x, side * half_track, radius), radius, width, axis='y', color=_TYRE, material=M.RUBBER)


def car(rng: np.random.Generator) -> Model:
    """A passenger car (sedan, hatchback, SUV or van body)."""
    style = rng.choice(['sedan', 'hatch', 'suv', 'van'], p=[0.4, 0.25, 0.25, 0.1])
    length = {'sedan': 4.6, 'hatch': 4.0, 'suv': 4.7, 'van': 5.0}[style] * rng.uniform(0.92, 1.08)
    width = rng.uniform(1.72, 1.98)
    clearance = 0.18 if style in ('sedan', 'hatch') else 0.26
    body_h = {'sedan': 0.62, 'hatch': 0.66, 'suv': 0.8, 'van': 1.05}[style] * rng.uniform(0.93, 1.07)
    cabin_h = {'sedan': 0.55, 'hatch': 0.6, 'suv': 0.65, 'van': 0.8}[style] * rng.uniform(0.9, 1.1)
    paint = M.sample_color(rng, 'paint')
    p = Parts(_ID['car'], M.CAR_PAINT, paint)
    radius = rng.uniform(0.3, 0.37)
    p.box((0, 0, clearance + body_h / 2), (length, width, body_h))
    cabin_len = length * {'sedan': 0.5, 'hatch': 0.6, 'suv': 0.62, 'van': 0.78}[style]
    cabin_x = -length * {'sedan': 0.06, 'hatch': 0.1, 'suv': 0.08, 'van': 0.04}[style]
    z0 = clearance + body_h
    p.box((cabin_x, 0, z0 + cabin_h / 2), (cabin_len, width - 0.12, cabin_h), color=_GLASS, material=M.GLASS)
    p.box((cabin_x, 0, z0 + cabin_h - 0.04), (cabin_len * 0.92, width - 0.1, 0.1))
    p.box((length / 2 - 0.02, 0, z0 - 0.15), (0.06, width * 0.85, 0.12), color=(0.9, 0.9, 0.85), material=M.PLASTIC)
    p.box((-length / 2 + 0.02, 0, z0 - 0.15), (0.06, width * 0.85, 0.1), color=(0.6, 0.05, 0.05), material=M.PLASTIC)
    _wheels(p, [length / 2 - 0.85, -length / 2 + 0.85], width / 2 - 0.14, radius, 0.22)
    return make_model(f'car/{style}', p)


def truck(rng: np.random.Generator) -> Model:
    """A truck: cab and cargo box on six wheels."""
    cargo_len = rng.uniform(4.5, 8.0)
    cab_len = rng.uniform(1.8, 2.3)
    width = rng.uniform(2.3, 2.55)
    height = rng.uniform(3.0, 3.9)
    paint = M.sample_color(rng, 'paint')
    p = Parts(_ID['truck'], M.CAR_PAINT, paint)
    total = cargo_len + cab_len + 0.2
    x_cab = total / 2 - cab_len / 2
    cab_h = rng.uniform(2.5, 2.9)
    p.box((x_cab, 0, 0.55 + (cab_h - 0.55) / 2), (cab_len, width, cab_h - 0.55))
    p.box((total / 2 - 0.05, 0, cab_h - 0.6), (0.1, width - 0.2, 0.8), color=_GLASS, material=M.GLASS)
    cargo_colour = M.sample_color(rng, 'paint') if rng.random() < 0.6 else paint
    x_cargo = -total / 2 + cargo_len / 2
    p.box((x_cargo, 0, 0.9 + (height - 0.9) / 2), (cargo_len, width, height - 0.9), color=cargo_colour)
    p.box((x_cargo, 0, 0.7), (cargo_len, width - 0.6, 0.3), color=(0.15, 0.15, 0.15), material=M.METAL)
    _wheels(p, [x_cab, x_cargo - cargo_len / 2 + 1.2, x_cargo - cargo_len / 2 + 2.3], width / 2 - 0.2, 0.5, 0.35)
    return make_model('truck', p)


def bus(rng: np.random.Generator) -> Model:
    """A city bus with a window band."""
    length = rng.uniform(10.0, 12.5)
    width = 2.55
    height = rng.uniform(3.0, 3.3)
    paint = M.sample_color(rng, 'paint')
    p = Parts(_ID['bus'], M.CAR_PAINT, paint)
    p.box((0, 0, 0.35 + (height - 0.35) / 2), (length, width, height - 0.35))
    p.box((0.1, 0, 1.95), (length - 0.6, width + 0.03, 1.1), color=_GLASS, material=M.GLASS)
    p.box((length / 2 + 0.01, 0, 1.9), (0.04, width - 0.2, 1.4), color=_GLASS, material=M.GLASS)
    _wheels(p, [length / 2 - 2.5, -length / 2 + 2.8], width / 2 - 0.25, 0.5, 0.35)
    return make_model('bus', p)


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


def bicycle(rng: np.random.Generator) -> Model:
    """A cyclist: bicycle (19) and rider (13)."""
    p = Parts(_ID['bicycle'], M.METAL, M.sample_color(rng, 'paint'))
    r = rng.uniform(0.32, 0.36)
    for x in (-0.55, 0.55):
        p.cylinder((x, 0, r), r, 0.05, axis='y', color=_TYRE, material=M.RUBBER)
    p.segment((-0.55, 0, r), (-0.1, 0, r + 0.45), 0.025)
    p.segment((0.55, 0, r), (0.4, 0, r + 0.55), 0.025)
    p.segment((-0.1, 0, r + 0.45), (0.4, 0, r + 0.5), 0.03)
    p.segment((-0.1, 0, r), (-0.1, 0, r + 0.45), 0.025)
    rider = M.sample_color(rng, 'cloth')
    skin = M.sample_color(rng, 'skin', jitter=0.03)
    seat_z = r + 0.5
    for side in (-1, 1):
        p.segment((0.0, side * 0.1, r + 0.05), (-0.1, side * 0.1, seat_z), 0.065, color=rider, label=_ID['rider'])
    p.ellipsoid((0.0, 0, seat_z + 0.35), (0.14, 0.2, 0.34), rpy=(0, 0.35, 0), color=rider, label=_ID['rider'])
    p.segment((0.1, 0.2, seat_z + 0.55), (0.4, 0.2, r + 0.55), 0.045, color=rider, label=_ID['rider'])
    p.segment((0.1, -0.2, seat_z + 0.55), (0.4, -0.2, r + 0.55), 0.045, color=rider, label=_ID['rider'])
    p.ellipsoid((0.2, 0, seat_z + 0.82), (0.1, 0.09, 0.12), color=skin, material=M.SKIN, label=_ID['rider'])
    return make_model('bicycle', p)


def motorcycle(rng: np.random.Generator) -> Model:
    """A motorcyclist: motorcycle (18) and rider (13)."""
    p = Parts(_ID['motorcycle'], M.CAR_PAINT, M.sample_color(rng, 'paint'))
    r = 0.32
    for x in (-0.72, 0.72):
        p.cylinder((x, 0, r), r, 0.14, axis='y', color=_TYRE, material=M.RUBBER)
    p.ellipsoid((0.0, 0, 0.72), (0.75, 0.2, 0.22))
    p.box((-0.15, 0, 0.5), (0.6, 0.3, 0.3), color=(0.3, 0.3, 0.3), material=M.METAL)
    rider = M.sample_color(rng, 'cloth')
    p.ellipsoid((-0.15, 0, 1.25), (0.16, 0.21, 0.33), rpy=(0, 0.3, 0), color=rider, label=_ID['rider'])
    for side in (-1, 1):
        p.segment((0.25, side * 0.2, 0.5), (-0.2, side * 0.15, 0.9), 0.07, color=rider, label=_ID['rider'])
    p.ellipsoid((0.0, 0, 1.68), (0.14, 0.13, 0.15), color=M.sample_color(rng, 'paint'), label=_ID['rider'])
    return make_model('motorcycle', p)


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
    """A bush or hedge segment."""
    green = np.array([0.16, 0.3, 0.1]) * rng.uniform(0.7, 1.3)
    p = Parts(_ID['vegetation'], M.FOLIAGE, green)
    if rng.random() < 0.5:
        length, h = rng.uniform(2, 8), rng.uniform(0.6, 1.6)
        p.box((0, 0, h / 2), (length, rng.uniform(0.6, 1.2), h))
    else:
        for _ in range(int(rng.integers(1, 4))):
            r = rng.uniform(0.4, 1.0)
            p.ellipsoid((rng.normal(0, 0.4), rng.normal(0, 0.4), r * 0.7), (r, r * rng.uniform(0.8, 1.2), r * 0.8))
    return make_model('bush', p)


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


def cone(rng: np.random.Generator) -> Model:
    """A traffic cone on a square base (static, 20)."""
    h = rng.uniform(0.45, 0.95)
    colour = M.sample_color(rng, 'signal', jitter=0.03)
    p = Parts(_ID['static'], M.PLASTIC, colour)
    p.box((0, 0, 0.02), (h * 0.6, h * 0.6, 0.04), color=(0.1, 0.1, 0.1))
    p.cylinder((0, 0, 0.04 + h / 2), h * 0.22, h, taper=0.15)
    return make_model('cone', p)


def barrier(rng: np.random.Generator) -> Model:
    """A road barrier: plastic or concrete (static, 20)."""
    p = Parts(_ID['static'], M.PLASTIC, M.sample_color(rng, 'signal'))
    length = rng.uniform(1.2, 3.0)
    if rng.random() < 0.5:
        p.box((0, 0, 0.4), (length, 0.5, 0.8), color=(0.65, 0.65, 0.62), material=M.CONCRETE)
        p.box((0, 0, 0.1), (length, 0.7, 0.2), color=(0.65, 0.65, 0.62), material=M.CONCRETE)
    else:
        h = rng.uniform(0.8, 1.1)
        p.box((0, 0, h - 0.15), (length, 0.08, 0.25), material=M.RETRO)
        for x in (-length / 2 + 0.1, length / 2 - 0.1):
            p.box((x, 0, h / 2), (0.08, 0.5, h), color=(0.9, 0.9, 0.9))
    return make_model('barrier', p)


def bin_(rng: np.random.Generator) -> Model:
    """A waste bin (dynamic, 21)."""
    colour = M.sample_color(rng, 'paint') * 0.5 + np.array([0.1, 0.3, 0.15], np.float32) * 0.5
    p = Parts(_ID['dynamic'], M.PLASTIC, colour)
    if rng.random() < 0.5:
        h = rng.uniform(0.9, 1.3)
        p.box((0, 0, h / 2), (rng.uniform(0.6, 1.2), rng.uniform(0.6, 0.9), h))
    else:
        h = rng.uniform(0.7, 1.0)
        p.cylinder((0, 0, h / 2), rng.uniform(0.25, 0.35), h)
    return make_model('bin', p)


def bench(rng: np.random.Generator) -> Model:
    """A bench (static, 20)."""
    p = Parts(_ID['static'], M.WOOD, np.array([0.45, 0.3, 0.18]) * rng.uniform(0.7, 1.3))
    length = rng.uniform(1.5, 2.2)
    p.box((0, 0, 0.45), (length, 0.45, 0.06))
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
    """A bollard (static, 20)."""
    p = Parts(_ID['static'], M.METAL, M.sample_color(rng, 'building'))
    h = rng.uniform(0.7, 1.1)
    p.cylinder((0, 0, h / 2), rng.uniform(0.06, 0.12), h)
    return make_model('bollard', p)


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
    """A wall segment along x (4)."""
    h = rng.uniform(0.6, 2.6)
    p = Parts(_ID['wall'], M.CONCRETE, M.sample_color(rng, 'building'))
    p.box((0, 0, h / 2), (length, rng.uniform(0.2, 0.4), h))
    return make_model('wall', p)


def fence(rng: np.random.Generator, length: float) -> Model:
    """A fence segment along x (5): panel and posts."""
    h = rng.uniform(1.0, 2.0)
    colour = M.sample_color(rng, 'nature') if rng.random() < 0.5 else M.sample_color(rng, 'building')
    p = Parts(_ID['fence'], M.WOOD, colour)
    p.box((0, 0, h / 2 + 0.1), (length, 0.05, h - 0.2))
    posts = max(2, int(length / 3) + 1)
    for x in np.linspace(-length / 2, length / 2, posts):
        p.box((x, 0, h / 2), (0.1, 0.1, h))
    return make_model('fence', p)


def guard_rail(rng: np.random.Generator, length: float) -> Model:
    """A guard rail segment along x (28)."""
    p = Parts(_ID['guard_rail'], M.METAL, (0.6, 0.62, 0.64))
    p.box((0, 0, 0.6), (length, 0.08, 0.32))
    posts = max(2, int(length / 2.5) + 1)
    for x in np.linspace(-length / 2, length / 2, posts):
        p.box((x, 0.08, 0.35), (0.1, 0.1, 0.7))
    return make_model('guard_rail', p)
