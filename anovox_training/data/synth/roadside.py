"""Roadside scenery and normal clutter on the road.

Frontage (building blocks or park land, with walls, fences and hedges in the
gaps), kerbside furniture (lamps, trees, signs, traffic lights, benches, bins,
hydrants, bollards, guard rails), parked cars, and normal objects standing on
the road itself (cones, barriers, bins, bollards, stopped cars) so that "an
object on the road" never means "an anomaly" by itself.
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
    """Cones, barriers, bins and stopped cars on the road: normal objects where anomalies also stand."""
    rng, road = b.rng, b.road
    count = rng.poisson((x_hi - x_lo) / 60.0)
    for x in np.sort(rng.uniform(x_lo, x_hi, count)):
        kind = str(rng.choice(['cones', 'barrier', 'bin', 'stopped_car', 'bollards'], p=[0.35, 0.2, 0.15, 0.2, 0.1]))
        zone = str(rng.choice(['ego_lane', 'road', 'edge'], p=[0.3, 0.3, 0.4]))
        y = b.lateral(zone, lane_y)
        if b.overlaps_obstacle(np.array([x - 4, x + 4, y - 2, y + 2]), margin=1.0):
            continue
        if kind == 'cones':
            n = int(rng.integers(3, 9))
            dy = rng.uniform(-0.6, 0.6)
            step = rng.uniform(1.5, 4.0)
            for i in range(n):
                b.add_static(O.cone(rng), x + i * step, y + i * dy * 0.3, rng.uniform(0, 6.3), obstacle=True)
        elif kind == 'barrier':
            for i in range(int(rng.integers(1, 4))):
                yaw = rng.choice([0.0, math.pi / 2]) + rng.normal(0, 0.1)
                b.add_static(
                    O.barrier(rng), x + i * 2.5 * math.cos(yaw), y + i * 2.5 * math.sin(yaw), yaw, obstacle=True
                )
        elif kind == 'bin':
            b.add_static(O.bin_(rng), x, y, rng.uniform(0, 6.3), obstacle=True)
        elif kind == 'stopped_car':
            model = O.car(rng) if rng.random() < 0.8 else O.truck(rng)
            yside = math.copysign(road.lanes_half_width_m - model.size_m[1] / 2 - 0.2, y)
            b.add_static(model, x, yside, (0.0 if yside < 0 else math.pi) + rng.normal(0, 0.05), obstacle=True)
        else:
            for i in range(int(rng.integers(2, 5))):
                b.add_static(O.bollard(rng), x + i * 1.5, y, 0.0, obstacle=True)


def place_roadside(b: WorldBuilder, x_lo: float, x_hi: float) -> None:
    """Both sides of the road from ``x_lo`` to ``x_hi``: frontage, kerbside furniture, parked cars."""
    for side in (-1.0, 1.0):
        _frontage(b, x_lo, x_hi, side)
        _kerbside(b, x_lo, x_hi, side)
        if b.road.parking_width_m > 0:
            _parked(b, x_lo, x_hi, side)


def _frontage(b: WorldBuilder, x_lo: float, x_hi: float, side: float) -> None:
    """Building blocks (or park land) behind the verge, with walls, fences or hedges in the gaps."""
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
                b.add_static(O.bush(rng), cx, cy, 0.0)
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
    furniture: list[Callable[[np.random.Generator], Model]] = [O.bench, O.bin_, O.hydrant, O.bollard]
    for fx in rng.uniform(x_lo, x_hi, rng.poisson((x_hi - x_lo) / 25.0)):
        builder = furniture[int(rng.integers(len(furniture)))]
        fy = side * (road.half_width_m + rng.uniform(0.4, max(0.5, road.sidewalk_width_m - 0.4)))
        b.add_static(builder(rng), fx, fy, facing_road + rng.normal(0, 0.1))


def _row(
    b: WorldBuilder, x_lo: float, x_hi: float, make: Callable[[], Model], spacing: float, y: float, yaw: float | None
) -> None:
    """Models every ``spacing`` m along x at lateral ``y`` (random yaw when ``yaw`` is None)."""
    for x in np.arange(x_lo + b.rng.uniform(0, spacing), x_hi, spacing):
        b.add_static(make(), float(x), y, b.rng.uniform(0, 6.3) if yaw is None else yaw)


def _parked(b: WorldBuilder, x_lo: float, x_hi: float, side: float) -> None:
    """Cars and a few trucks parallel-parked along one parking strip."""
    rng, road = b.rng, b.road
    fill = rng.uniform(0.3, 0.9)
    y = side * (road.lanes_half_width_m + road.parking_width_m / 2)
    x = x_lo + rng.uniform(0, 5)
    while x < x_hi:
        model = O.car(rng) if rng.random() < 0.92 else O.truck(rng)
        length = model.size_m[0]
        if rng.random() < fill:
            box = np.array([x, x + length, y - 1, y + 1])
            if not b.overlaps_obstacle(box, margin=0.5):
                yaw = (0.0 if side < 0 else math.pi) + rng.normal(0, 0.03)
                b.add_static(model, x + length / 2, y + rng.normal(0, 0.1), yaw, obstacle=True)
        x += length + rng.uniform(0.8, 2.5)
