"""Vehicles of the synthetic world: cars of many sizes, pickups, vans, trucks, buses and two-wheelers.

Cars (14) range from city cars to SUVs, pickups and delivery vans; trucks (15)
are box or flatbed trucks; buses (16) rigid or short. Two-wheelers come ridden
(rider 13 on a bicycle 19 or motorcycle 18) or parked without a rider. Each
model name carries its body style ('car/pickup', 'bicycle/parked', ...).
"""

from __future__ import annotations

import numpy as np

from anovox_training.data.labels import LABEL_IDS
from anovox_training.data.synth import materials as M
from anovox_training.data.synth.model import GLASS_RGB, TYRE_RGB, Model, make_model
from anovox_training.data.synth.parts import Parts

__all__ = ['CAR_STYLES', 'bicycle', 'bus', 'car', 'motorcycle', 'scooter', 'truck']

_ID = LABEL_IDS

# style: (length m, width m, clearance m, body height m, cabin height m, cabin length share, cabin x shift share)
_CAR_BODY: dict[str, tuple[float, float, float, float, float, float, float]] = {
    'city': (3.5, 1.64, 0.16, 0.62, 0.62, 0.62, -0.06),
    'hatch': (4.0, 1.76, 0.18, 0.66, 0.6, 0.6, -0.1),
    'sedan': (4.6, 1.82, 0.18, 0.62, 0.55, 0.5, -0.06),
    'wagon': (4.75, 1.82, 0.18, 0.64, 0.56, 0.68, -0.1),
    'suv': (4.7, 1.92, 0.26, 0.8, 0.65, 0.62, -0.08),
    'minivan': (4.95, 1.9, 0.2, 0.78, 0.78, 0.74, -0.03),
}
CAR_STYLES: tuple[str, ...] = (*_CAR_BODY, 'pickup', 'van')
_CAR_WEIGHTS = np.array([0.12, 0.2, 0.22, 0.1, 0.16, 0.06, 0.06, 0.08])


def _wheels(p: Parts, xs: list[float], half_track: float, radius: float, width: float) -> None:
    for x in xs:
        for side in (-1, 1):
            p.cylinder((x, side * half_track, radius), radius, width, axis='y', color=TYRE_RGB, material=M.RUBBER)


def _lights(p: Parts, length: float, width: float, z: float) -> None:
    p.box((length / 2 - 0.02, 0, z), (0.06, width * 0.85, 0.12), color=(0.9, 0.9, 0.85), material=M.PLASTIC)
    p.box((-length / 2 + 0.02, 0, z), (0.06, width * 0.85, 0.1), color=(0.6, 0.05, 0.05), material=M.PLASTIC)


def car(rng: np.random.Generator, style: str | None = None) -> Model:
    """A passenger car: city car to SUV, pickup or van (``style`` one of CAR_STYLES, drawn when None)."""
    style = str(rng.choice(CAR_STYLES, p=_CAR_WEIGHTS / _CAR_WEIGHTS.sum())) if style is None else style
    p = Parts(_ID['car'], M.CAR_PAINT, M.sample_color(rng, 'paint'))
    if style == 'pickup':
        _pickup(rng, p)
    elif style == 'van':
        _van(rng, p)
    else:
        length, width, clearance, body_h, cabin_h, cabin_share, cabin_shift = _CAR_BODY[style]
        length *= rng.uniform(0.93, 1.07)
        width *= rng.uniform(0.96, 1.04)
        body_h *= rng.uniform(0.93, 1.07)
        cabin_h *= rng.uniform(0.9, 1.1)
        p.box((0, 0, clearance + body_h / 2), (length, width, body_h))
        z0 = clearance + body_h
        cabin_x, cabin_len = cabin_shift * length, cabin_share * length
        p.box((cabin_x, 0, z0 + cabin_h / 2), (cabin_len, width - 0.12, cabin_h), color=GLASS_RGB, material=M.GLASS)
        p.box((cabin_x, 0, z0 + cabin_h - 0.04), (cabin_len * 0.92, width - 0.1, 0.1))
        if style == 'suv' and rng.random() < 0.4:
            p.box((cabin_x, 0, z0 + cabin_h + 0.04), (cabin_len * 0.7, width * 0.7, 0.05), color=(0.1, 0.1, 0.1))
        _lights(p, length, width, z0 - 0.15)
        radius = rng.uniform(0.28, 0.33) if style == 'city' else rng.uniform(0.3, 0.38)
        axle = min(0.85, length * 0.2)
        _wheels(p, [length / 2 - axle, -length / 2 + axle], width / 2 - 0.14, radius, 0.22)
    return make_model(f'car/{style}', p)


def _pickup(rng: np.random.Generator, p: Parts) -> None:
    length, width = rng.uniform(5.0, 5.6), rng.uniform(1.85, 2.0)
    clearance, body_h = 0.32, rng.uniform(0.75, 0.85)
    z0 = clearance + body_h
    p.box((0, 0, clearance + body_h / 2), (length, width, body_h))
    cab_len = length * rng.uniform(0.3, 0.42)
    cab_x = length / 2 - length * 0.28 - cab_len / 2
    p.box((cab_x, 0, z0 + 0.35), (cab_len, width - 0.1, 0.7), color=GLASS_RGB, material=M.GLASS)
    p.box((cab_x, 0, z0 + 0.66), (cab_len * 0.95, width - 0.08, 0.08))
    bed_x = -length / 2 + (length / 2 + cab_x - cab_len / 2) / 2
    bed_len = length / 2 + cab_x - cab_len / 2 - 0.1
    for side in (-1, 1):
        p.box((bed_x, side * (width / 2 - 0.04), z0 + 0.22), (bed_len, 0.08, 0.44))
    p.box((-length / 2 + 0.04, 0, z0 + 0.22), (0.08, width, 0.44))
    if rng.random() < 0.4:
        # Load in the bed: a tarp-covered heap or a few crates.
        cargo = (bed_len * 0.7, width * 0.7, rng.uniform(0.2, 0.6))
        p.box((bed_x, 0, z0 + cargo[2] / 2), cargo, color=M.sample_color(rng, None), material=M.CLOTH)
    _lights(p, length, width, z0 - 0.15)
    _wheels(p, [length / 2 - 0.95, -length / 2 + 1.1], width / 2 - 0.15, rng.uniform(0.38, 0.42), 0.26)


def _van(rng: np.random.Generator, p: Parts) -> None:
    length, width = rng.uniform(4.9, 6.4), rng.uniform(1.95, 2.1)
    height = rng.uniform(2.0, 2.7)
    clearance = 0.22
    nose = rng.uniform(0.7, 1.0)
    p.box((-nose / 2, 0, clearance + (height - clearance) / 2), (length - nose, width, height - clearance))
    p.box((length / 2 - nose / 2, 0, clearance + 0.45), (nose, width, 0.9))
    p.box(
        (length / 2 - nose - 0.02, 0, clearance + 1.25), (0.08, width - 0.15, 0.65), color=GLASS_RGB, material=M.GLASS
    )
    if rng.random() < 0.5:
        band = M.sample_color(rng, 'paint')
        p.box((-nose / 2, 0, clearance + 0.7), (length - nose + 0.02, width + 0.02, 0.3), color=band)
    _lights(p, length, width, clearance + 0.75)
    _wheels(p, [length / 2 - 0.8, -length / 2 + 1.0], width / 2 - 0.16, rng.uniform(0.33, 0.38), 0.24)


def truck(rng: np.random.Generator) -> Model:
    """A truck: cab with a box body or a loaded flatbed, on six wheels."""
    style = str(rng.choice(['box', 'flatbed'], p=[0.7, 0.3]))
    cargo_len, cab_len = rng.uniform(4.5, 8.0), rng.uniform(1.8, 2.3)
    width, height = rng.uniform(2.3, 2.55), rng.uniform(3.0, 3.9)
    paint = M.sample_color(rng, 'paint')
    p = Parts(_ID['truck'], M.CAR_PAINT, paint)
    total = cargo_len + cab_len + 0.2
    x_cab, x_cargo = total / 2 - cab_len / 2, -total / 2 + cargo_len / 2
    cab_h = rng.uniform(2.5, 2.9)
    p.box((x_cab, 0, 0.55 + (cab_h - 0.55) / 2), (cab_len, width, cab_h - 0.55))
    p.box((total / 2 - 0.05, 0, cab_h - 0.6), (0.1, width - 0.2, 0.8), color=GLASS_RGB, material=M.GLASS)
    p.box((x_cargo, 0, 0.7), (cargo_len, width - 0.6, 0.3), color=(0.15, 0.15, 0.15), material=M.METAL)
    if style == 'box':
        cargo_colour = M.sample_color(rng, 'paint') if rng.random() < 0.6 else paint
        p.box((x_cargo, 0, 0.9 + (height - 0.9) / 2), (cargo_len, width, height - 0.9), color=cargo_colour)
    else:
        p.box((x_cargo, 0, 1.0), (cargo_len, width, 0.2), color=(0.3, 0.3, 0.32), material=M.METAL)
        # Strapped load: a few stacked pallets or crates.
        x = x_cargo - cargo_len / 2 + 0.2
        while x < x_cargo + cargo_len / 2 - 1.2:
            size = (rng.uniform(1.0, 1.6), width * rng.uniform(0.7, 0.95), rng.uniform(0.4, 1.4))
            p.box((x + size[0] / 2, 0, 1.1 + size[2] / 2), size, color=M.sample_color(rng, 'building'), material=M.WOOD)
            x += size[0] + rng.uniform(0.1, 0.6)
    _wheels(p, [x_cab, x_cargo - cargo_len / 2 + 1.2, x_cargo - cargo_len / 2 + 2.3], width / 2 - 0.2, 0.5, 0.35)
    return make_model(f'truck/{style}', p)


def bus(rng: np.random.Generator) -> Model:
    """A city bus (10-12.5 m) or a midibus (7-9 m) with a window band."""
    style = str(rng.choice(['city', 'midi'], p=[0.75, 0.25]))
    length = rng.uniform(10.0, 12.5) if style == 'city' else rng.uniform(7.0, 9.0)
    width = 2.55 if style == 'city' else rng.uniform(2.2, 2.4)
    height = rng.uniform(3.0, 3.3) if style == 'city' else rng.uniform(2.7, 3.0)
    p = Parts(_ID['bus'], M.CAR_PAINT, M.sample_color(rng, 'paint'))
    p.box((0, 0, 0.35 + (height - 0.35) / 2), (length, width, height - 0.35))
    p.box((0.1, 0, 1.95), (length - 0.6, width + 0.03, 1.1), color=GLASS_RGB, material=M.GLASS)
    p.box((length / 2 + 0.01, 0, 1.9), (0.04, width - 0.2, 1.4), color=GLASS_RGB, material=M.GLASS)
    _wheels(p, [length / 2 - 2.5, -length / 2 + 2.8], width / 2 - 0.25, 0.5, 0.35)
    return make_model(f'bus/{style}', p)


def _rider(rng: np.random.Generator, p: Parts, seat: np.ndarray, hands: np.ndarray, feet: np.ndarray) -> None:
    """A seated rider (13): legs to ``feet``, leaning torso, arms to ``hands``, head."""
    cloth, skin = M.sample_color(rng, 'cloth'), M.sample_color(rng, 'skin', jitter=0.03)
    rider = _ID['rider']
    for side in (-1, 1):
        p.segment(feet + (0, side * 0.1, 0), seat + (0, side * 0.1, 0), 0.065, color=cloth, label=rider)
    chest = seat + np.array([0.12, 0, 0.55])
    p.ellipsoid(seat + (0.06, 0, 0.32), (0.14, 0.2, 0.33), rpy=(0, 0.35, 0), color=cloth, label=rider)
    for side in (-1, 1):
        p.segment(chest + (0, side * 0.2, 0), hands + (0, side * 0.2, 0), 0.045, color=cloth, label=rider)
    head = chest + np.array([0.1, 0, 0.27])
    if rng.random() < 0.5:
        p.ellipsoid(head, (0.14, 0.13, 0.15), color=M.sample_color(rng, 'paint'), material=M.PLASTIC, label=rider)
    else:
        p.ellipsoid(head, (0.1, 0.09, 0.12), color=skin, material=M.SKIN, label=rider)


def bicycle(rng: np.random.Generator, ridden: bool = True) -> Model:
    """A bicycle (19), with a rider (13) when ``ridden``."""
    p = Parts(_ID['bicycle'], M.METAL, M.sample_color(rng, 'paint'))
    r = rng.uniform(0.3, 0.36)
    wheelbase = rng.uniform(1.0, 1.15)
    for x in (-wheelbase / 2, wheelbase / 2):
        p.cylinder((x, 0, r), r, 0.05, axis='y', color=TYRE_RGB, material=M.RUBBER)
    rear, front = np.array([-wheelbase / 2, 0, r]), np.array([wheelbase / 2, 0, r])
    seat, bars = np.array([-0.1, 0, r + 0.5]), np.array([wheelbase / 2 - 0.15, 0, r + 0.55])
    p.segment(rear, seat, 0.025)
    p.segment(front, bars, 0.025)
    p.segment(seat + (0, 0, -0.05), bars + (0, 0, -0.05), 0.03)
    p.segment((-0.1, 0, r), seat, 0.025)
    p.box(seat + (0, 0, 0.03), (0.25, 0.12, 0.05), color=(0.08, 0.08, 0.08), material=M.PLASTIC)
    p.box(bars + (0, 0, 0.02), (0.04, 0.55, 0.03))
    if rng.random() < 0.3:
        p.box((wheelbase / 2, 0, r + 0.5), (0.3, 0.35, 0.25), color=M.sample_color(rng, None), material=M.PLASTIC)
    if ridden:
        _rider(rng, p, seat + (0, 0, 0.05), bars, np.array([0.0, 0.0, r + 0.05]))
    return make_model('bicycle/ridden' if ridden else 'bicycle/parked', p)


def motorcycle(rng: np.random.Generator, ridden: bool = True) -> Model:
    """A motorcycle (18), with a rider (13) when ``ridden``."""
    p = Parts(_ID['motorcycle'], M.CAR_PAINT, M.sample_color(rng, 'paint'))
    r = rng.uniform(0.3, 0.34)
    for x in (-0.72, 0.72):
        p.cylinder((x, 0, r), r, 0.14, axis='y', color=TYRE_RGB, material=M.RUBBER)
    p.ellipsoid((0.0, 0, 0.72), (0.75, 0.2, 0.22))
    p.box((-0.15, 0, 0.5), (0.6, 0.3, 0.3), color=(0.3, 0.3, 0.3), material=M.METAL)
    p.segment((0.72, 0, r), (0.5, 0, 1.0), 0.035, color=(0.5, 0.5, 0.52), material=M.METAL)
    p.box((0.5, 0, 1.02), (0.05, 0.7, 0.04), color=(0.1, 0.1, 0.1), material=M.METAL)
    if ridden:
        _rider(rng, p, np.array([-0.25, 0, 0.85]), np.array([0.5, 0, 1.02]), np.array([0.1, 0, 0.35]))
    return make_model('motorcycle/ridden' if ridden else 'motorcycle/parked', p)


def scooter(rng: np.random.Generator, ridden: bool = True) -> Model:
    """A moped (motorcycle, 18) or a kick e-scooter (bicycle, 19), with a rider (13) when ``ridden``."""
    if rng.random() < 0.5:
        p = Parts(_ID['motorcycle'], M.PLASTIC, M.sample_color(rng, 'paint'))
        r = rng.uniform(0.2, 0.25)
        for x in (-0.6, 0.6):
            p.cylinder((x, 0, r), r, 0.12, axis='y', color=TYRE_RGB, material=M.RUBBER)
        p.box((0.0, 0, r + 0.1), (0.8, 0.32, 0.16))
        p.ellipsoid((-0.35, 0, 0.62), (0.4, 0.2, 0.22))
        p.box((0.55, 0, 0.7), (0.15, 0.4, 0.9), rpy=(0, -0.25, 0))
        p.box((0.62, 0, 1.12), (0.05, 0.6, 0.04), color=(0.1, 0.1, 0.1), material=M.METAL)
        if ridden:
            _rider(rng, p, np.array([-0.35, 0, 0.8]), np.array([0.6, 0, 1.12]), np.array([0.15, 0, r + 0.2]))
        return make_model('scooter/moped_ridden' if ridden else 'scooter/moped_parked', p)
    p = Parts(_ID['bicycle'], M.METAL, M.sample_color(rng, 'paint'))
    for x in (-0.45, 0.45):
        p.cylinder((x, 0, 0.1), 0.1, 0.05, axis='y', color=TYRE_RGB, material=M.RUBBER)
    p.box((0, 0, 0.12), (0.8, 0.14, 0.05))
    p.segment((0.45, 0, 0.1), (0.4, 0, 1.05), 0.02)
    p.box((0.4, 0, 1.05), (0.03, 0.45, 0.03))
    if ridden:
        # A standing rider: legs straight down to the deck.
        cloth = M.sample_color(rng, 'cloth')
        for side in (-1, 1):
            p.segment((side * 0.1, side * 0.06, 0.15), (0, side * 0.1, 0.95), 0.07, color=cloth, label=_ID['rider'])
        p.ellipsoid((0.03, 0, 1.25), (0.14, 0.21, 0.33), color=cloth, label=_ID['rider'])
        for side in (-1, 1):
            p.segment((0.05, side * 0.22, 1.45), (0.4, side * 0.2, 1.05), 0.045, color=cloth, label=_ID['rider'])
        skin = M.sample_color(rng, 'skin', jitter=0.03)
        p.ellipsoid((0.05, 0, 1.72), (0.1, 0.09, 0.12), color=skin, material=M.SKIN, label=_ID['rider'])
    return make_model('scooter/kick_ridden' if ridden else 'scooter/kick_parked', p)
