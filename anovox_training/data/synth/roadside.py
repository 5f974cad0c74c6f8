"""Roadside scenery and normal clutter on the road.

Frontage (building blocks or park land, with walls, fences and hedges in the
gaps and in front), kerbside furniture (lamps, poles of many heights, trees,
signs, traffic lights, bus stops, benches, bins, planters, parcels, rubbish
bags, bike racks, parked two-wheelers, ...), parked vehicles of every size
(some sticking out into the lane), and normal objects standing on the road
itself (road works, cones, barriers, bins put out, rubbish bags, stopped and
double-parked vehicles) so that "an object on the road" never means "an
anomaly" by itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from anovox_training.data.synth import objects as O
from anovox_training.data.synth.builder import WorldBuilder
from anovox_training.data.synth.objects import Model

__all__ = ['place_road_clutter', 'place_roadside']


def place_road_clutter(b: WorldBuilder, x_lo: float, x_hi: float, lane_y: float) -> None:
    """Road works, cones, barriers, bins, bags, two-wheelers and stopped vehicles: normal objects on the road."""
    rng, road = b.rng, b.road
    kinds = ['road_works', 'cones', 'barrier', 'bin', 'bags', 'stopped_car', 'bollards', 'two_wheeler']
    weights = np.array([0.14, 0.2, 0.12, 0.1, 0.08, 0.24, 0.06, 0.06])
    count = rng.poisson((x_hi - x_lo) / 50.0)
    for x in np.sort(rng.uniform(x_lo, x_hi, count)):
        kind = str(rng.choice(kinds, p=weights / weights.sum()))
        zone = str(rng.choice(['ego_lane', 'road', 'edge'], p=[0.3, 0.3, 0.4]))
        if kind in ('bin', 'bags', 'two_wheeler'):
            zone = 'edge'
        y = b.lateral(zone, lane_y)
        reach_x, reach_y = (12.0, 3.0) if kind == 'road_works' else (4.0, 2.0)
        if b.overlaps_obstacle(np.array([x - reach_x, x + reach_x, y - reach_y, y + reach_y]), margin=1.0):
            continue
        if kind == 'road_works':
            _road_works(b, x, y)
        elif kind == 'cones':
            _cone_line(b, x, y, int(rng.integers(3, 9)))
        elif kind == 'barrier':
            for i in range(int(rng.integers(1, 4))):
                yaw = rng.choice([0.0, math.pi / 2]) + rng.normal(0, 0.1)
                b.add_static(
                    O.barrier(rng), x + i * 2.5 * math.cos(yaw), y + i * 2.5 * math.sin(yaw), yaw, obstacle=True
                )
        elif kind == 'bin':
            for i in range(int(rng.integers(1, 4))):
                b.add_static(O.bin_(rng), x + i * 1.2, y, rng.normal(0, 0.2), obstacle=True)
        elif kind == 'bags':
            b.add_static(O.rubbish_bags(rng), x, y, rng.uniform(0, 6.3), obstacle=True)
        elif kind == 'stopped_car':
            model = _any_vehicle(rng)
            yside = math.copysign(road.lanes_half_width_m - model.size_m[1] / 2 - rng.uniform(0.1, 0.6), y)
            b.add_static(model, x, yside, (0.0 if yside < 0 else math.pi) + rng.normal(0, 0.05), obstacle=True)
        elif kind == 'two_wheeler':
            model = _parked_two_wheeler(rng)
            b.add_static(model, x, y, rng.uniform(0, 6.3), obstacle=True)
        else:
            for i in range(int(rng.integers(2, 5))):
                b.add_static(O.bollard(rng), x + i * 1.5, y, 0.0, obstacle=True)


def _cone_line(b: WorldBuilder, x: float, y: float, n: int) -> None:
    dy = b.rng.uniform(-0.6, 0.6)
    step = b.rng.uniform(1.5, 4.0)
    for i in range(n):
        b.add_static(O.cone(b.rng), x + i * step, y + i * dy * 0.3, b.rng.uniform(0, 6.3), obstacle=True)


def _road_works(b: WorldBuilder, x: float, y: float) -> None:
    """A coned-off work area: a taper of cones, barriers round the site, a sign, sometimes a works van."""
    rng = b.rng
    length = rng.uniform(6.0, 14.0)
    _cone_line(b, x - 6.0, y, int(rng.integers(3, 6)))
    for i in range(int(length / 2.5)):
        b.add_static(O.barrier(rng), x + 1.0 + i * 2.5, y + rng.normal(0, 0.1), rng.normal(0, 0.05), obstacle=True)
    b.add_static(O.sandwich_board(rng), x - 7.5, y + rng.normal(0, 0.3), rng.normal(0, 0.2), obstacle=True)
    if rng.random() < 0.5:
        van = O.car(rng, style=str(rng.choice(['van', 'pickup'])))
        b.add_static(van, x + length / 2, y + math.copysign(1.5, -y), rng.normal(0, 0.05), obstacle=True)


def _any_vehicle(rng: np.random.Generator) -> Model:
    """A parked or stopped vehicle: mostly cars of every size, some trucks and buses."""
    r = rng.random()
    return O.car(rng) if r < 0.85 else O.truck(rng) if r < 0.96 else O.bus(rng)


def _parked_two_wheeler(rng: np.random.Generator) -> Model:
    r = rng.random()
    if r < 0.5:
        return O.bicycle(rng, ridden=False)
    return O.motorcycle(rng, ridden=False) if r < 0.75 else O.scooter(rng, ridden=False)


def place_roadside(b: WorldBuilder, x_lo: float, x_hi: float) -> None:
    """Both sides of the road from ``x_lo`` to ``x_hi``: frontage, kerbside furniture, parked cars."""
    for side in (-1.0, 1.0):
        _frontage(b, x_lo, x_hi, side)
        _kerbside(b, x_lo, x_hi, side)
        if b.road.parking_width_m > 0:
            _parked(b, x_lo, x_hi, side)


def _frontage(b: WorldBuilder, x_lo: float, x_hi: float, side: float) -> None:
    """Building blocks (or park land) behind the verge, with walls, fences or hedges in the gaps and in front."""
    rng, road = b.rng, b.road
    facing_road = 0.0 if side > 0 else math.pi  # building facades face -y in the model frame
    urban = rng.random() < 0.75
    x = x_lo
    while x < x_hi:
        length = rng.uniform(8.0, 35.0)
        gap = rng.uniform(0.0, 10.0) if rng.random() < 0.6 else 0.0
        setback = rng.uniform(0.0, 5.0)
        y_face = road.verge_outer_m + setback
        if urban:
            depth = rng.uniform(8.0, 20.0)
            b.add_static(
                O.building(rng, length, depth), x + length / 2, side * (y_face + depth / 2), facing_road, z=0.0
            )
            if setback > 1.5 and rng.random() < 0.4:
                # A front garden's boundary along the verge.
                boundary = [O.fence, O.wall, O.hedge][int(rng.integers(3))]
                b.add_static(boundary(rng, length), x + length / 2, side * (road.verge_outer_m + 0.4), 0.0)
        else:
            for tx in np.arange(x, x + length, rng.uniform(5.0, 10.0)):
                builder = O.tree if rng.random() < 0.6 else O.bush
                b.add_static(builder(rng), tx, side * (y_face + rng.uniform(1.0, 12.0)), rng.uniform(0, 6.3))
        if gap > 1.0:
            filler = rng.choice(['none', 'wall', 'fence', 'hedge'])
            cx, cy = x + length + gap / 2, side * (y_face + 0.3)
            if filler == 'wall':
                b.add_static(O.wall(rng, gap), cx, cy, 0.0)
            elif filler == 'fence':
                b.add_static(O.fence(rng, gap), cx, cy, 0.0)
            elif filler == 'hedge':
                b.add_static(O.hedge(rng, gap), cx, cy, 0.0)
        x += length + gap


def _kerbside(b: WorldBuilder, x_lo: float, x_hi: float, side: float) -> None:
    """Guard rails, lamps, trees, signs, traffic lights and street furniture along one sidewalk."""
    rng, road = b.rng, b.road
    facing_road = 0.0 if side > 0 else math.pi
    if road.verge_width_m > 0 and rng.random() < 0.25:
        _row(b, x_lo, x_hi, lambda: O.guard_rail(b.rng, 10.0), 10.0, side * (road.sidewalk_outer_m + 0.3), 0.0)
    kerb_y = side * (road.half_width_m + 0.45)
    _row(
        b,
        x_lo,
        x_hi,
        lambda: O.street_lamp(b.rng),
        rng.uniform(20.0, 35.0),
        kerb_y,
        math.pi if side > 0 else 0.0,
    )
    if rng.random() < 0.6:
        tree_y = side * (
            road.sidewalk_outer_m + road.verge_width_m / 2 if road.verge_width_m > 1.2 else road.sidewalk_outer_m - 0.8
        )
        _row(b, x_lo, x_hi, lambda: O.tree(b.rng), rng.uniform(8.0, 15.0), tree_y, None)
    sign_yaw = 0.0 if side < 0 else math.pi
    for sx in rng.uniform(x_lo, x_hi, rng.poisson((x_hi - x_lo) / 50.0)):
        b.add_static(O.traffic_sign(rng), sx, side * (road.half_width_m + 0.4), sign_yaw)
    for xc in road.crosswalks_x_m:
        b.add_static(O.traffic_light(rng), xc - side * 3.0, kerb_y, math.pi if side > 0 else 0.0)
    if rng.random() < 0.4:
        # Utility poles, posts or masts of any height at the back of the sidewalk.
        pole_y = side * (road.sidewalk_outer_m - 0.3)
        _row(b, x_lo, x_hi, lambda: O.utility_pole(b.rng), rng.uniform(20.0, 45.0), pole_y, 0.0)
    if rng.random() < 0.35:
        b.add_static(O.bus_stop(rng), rng.uniform(x_lo, x_hi), side * (road.sidewalk_outer_m - 1.0), facing_road)
    names = list(_FURNITURE)
    weights = np.array([_FURNITURE[n][1] for n in names])
    for fx in rng.uniform(x_lo, x_hi, rng.poisson((x_hi - x_lo) / 15.0)):
        builder, _, at_kerb = _FURNITURE[str(rng.choice(names, p=weights / weights.sum()))]
        inner = 0.4 if at_kerb else 0.4 + 0.5 * rng.random() * max(0.0, road.sidewalk_width_m - 1.0)
        fy = side * (road.half_width_m + min(inner, max(0.5, road.sidewalk_width_m - 0.4)))
        b.add_static(builder(rng), fx, fy, facing_road + rng.normal(0, 0.1))


# Sidewalk furniture: builder, relative frequency, whether it stands right at the kerb.
_FURNITURE: dict[str, tuple[Callable[[np.random.Generator], Model], float, bool]] = {
    'bench': (O.bench, 1.0, False),
    'bin': (O.bin_, 1.5, True),
    'hydrant': (O.hydrant, 0.6, True),
    'bollard': (O.bollard, 1.0, True),
    'planter': (O.planter, 1.0, False),
    'newspaper_box': (O.newspaper_box, 0.4, False),
    'utility_box': (O.utility_box, 0.6, False),
    'bike_rack': (O.bike_rack, 0.5, False),
    'parcel_boxes': (O.parcel_boxes, 0.6, False),
    'rubbish_bags': (O.rubbish_bags, 0.8, True),
    'recycling_boxes': (O.recycling_boxes, 0.5, True),
    'sandwich_board': (O.sandwich_board, 0.4, False),
    'two_wheeler': (_parked_two_wheeler, 0.8, False),
}


def _row(
    b: WorldBuilder, x_lo: float, x_hi: float, make: Callable[[], Model], spacing: float, y: float, yaw: float | None
) -> None:
    """Models every ``spacing`` m along x at lateral ``y`` (random yaw when ``yaw`` is None)."""
    for x in np.arange(x_lo + b.rng.uniform(0, spacing), x_hi, spacing):
        b.add_static(make(), float(x), y, b.rng.uniform(0, 6.3) if yaw is None else yaw)


def _parked(b: WorldBuilder, x_lo: float, x_hi: float, side: float) -> None:
    """Vehicles of every size parallel-parked along one parking strip, a fifth of them sticking out into the lane."""
    rng, road = b.rng, b.road
    fill = rng.uniform(0.3, 0.9)
    y_strip = side * (road.lanes_half_width_m + road.parking_width_m / 2)
    x = x_lo + rng.uniform(0, 5)
    while x < x_hi:
        model = _any_vehicle(rng) if rng.random() < 0.93 else O.motorcycle(rng, ridden=False)
        length = model.size_m[0]
        # Wide vehicles and careless parking reach into the lane.
        y = y_strip - side * (
            max(0.0, model.size_m[1] - road.parking_width_m) + (rng.uniform(0.2, 0.8) if rng.random() < 0.2 else 0.0)
        )
        if rng.random() < fill:
            box = np.array([x, x + length, y - 1, y + 1])
            if not b.overlaps_obstacle(box, margin=0.5):
                yaw = (0.0 if side < 0 else math.pi) + rng.normal(0, 0.03)
                b.add_static(model, x + length / 2, y + rng.normal(0, 0.1), yaw, obstacle=True)
        x += length + rng.uniform(0.8, 2.5)
