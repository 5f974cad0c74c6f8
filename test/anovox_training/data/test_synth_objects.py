"""Synthetic world: normal objects are varied, carry normal labels, and also stand on the road."""

from __future__ import annotations

import numpy as np
import pytest

from anovox_training.data.labels import LABEL_IDS, is_anomaly
from anovox_training.data.synth import WorldSettings, build_scenario
from anovox_training.data.synth import objects as O
from anovox_training.data.synth.primitives import BOX, CYLINDER, ELLIPSOID
from anovox_training.data.synth.vehicles import CAR_STYLES

_ID = LABEL_IDS
_BUILDERS = {
    'car': (O.car, {'car'}),
    'truck': (O.truck, {'truck'}),
    'bus': (O.bus, {'bus'}),
    'bicycle': (O.bicycle, {'bicycle', 'rider'}),
    'motorcycle': (O.motorcycle, {'motorcycle', 'rider'}),
    'scooter': (O.scooter, {'motorcycle', 'bicycle', 'rider'}),
    'bin': (O.bin_, {'dynamic'}),
    'parcel_boxes': (O.parcel_boxes, {'dynamic'}),
    'rubbish_bags': (O.rubbish_bags, {'dynamic'}),
    'recycling_boxes': (O.recycling_boxes, {'dynamic'}),
    'planter': (O.planter, {'static', 'vegetation'}),
    'bench': (O.bench, {'static'}),
    'bollard': (O.bollard, {'static'}),
    'newspaper_box': (O.newspaper_box, {'static'}),
    'utility_box': (O.utility_box, {'static'}),
    'sandwich_board': (O.sandwich_board, {'static'}),
    'bike_rack': (O.bike_rack, {'static', 'bicycle'}),
    'bus_stop': (O.bus_stop, {'static', 'pole', 'traffic_sign'}),
    'barrier': (O.barrier, {'static'}),
    'utility_pole': (O.utility_pole, {'pole'}),
    'bush': (O.bush, {'vegetation'}),
}


@pytest.mark.parametrize('name', sorted(_BUILDERS))
def test_normal_objects_carry_only_their_normal_labels(name):
    builder, labels = _BUILDERS[name]
    rng = np.random.default_rng(3)
    for _ in range(20):
        model = builder(rng)
        assert set(model.parts.label.tolist()) <= {_ID[n] for n in labels}, model.name
        assert not is_anomaly(model.parts.label).any()
        assert (model.size_m > 0.05).all() and model.size_m.max() < 20.0


def test_cars_range_from_city_cars_to_vans_and_every_style_is_drawn():
    rng = np.random.default_rng(0)
    length = {style: O.car(rng, style).size_m[0] for style in CAR_STYLES}
    assert length['city'] < 3.9 < length['sedan'] < 5.0 < length['van']
    drawn = {O.car(rng).name for _ in range(300)}
    assert drawn == {f'car/{style}' for style in CAR_STYLES}


def test_parked_two_wheelers_have_no_rider_and_ridden_ones_do():
    rng = np.random.default_rng(1)
    for builder in (O.bicycle, O.motorcycle, O.scooter):
        for _ in range(5):
            assert _ID['rider'] not in builder(rng, ridden=False).parts.label
            assert _ID['rider'] in builder(rng, ridden=True).parts.label


def test_fences_walls_hedges_and_poles_come_in_several_styles():
    rng = np.random.default_rng(2)
    for builder, least in ((O.fence, 4), (O.wall, 3), (O.hedge, 3)):
        assert len({builder(rng, 4.0).name for _ in range(60)}) >= least
    heights = [O.utility_pole(rng).size_m[2] for _ in range(60)]
    assert min(heights) < 3.5 and max(heights) > 10.0


def test_some_normal_clutter_is_made_of_the_single_primitives_anomalies_are_made_of():
    rng = np.random.default_rng(4)
    assert {int(k) for k in O.parcel_boxes(rng).parts.kind} == {BOX}
    assert {int(k) for k in O.rubbish_bags(rng).parts.kind} == {ELLIPSOID}
    assert {int(k) for k in O.utility_box(rng).parts.kind} == {BOX}
    round_bins = [m for m in (O.bin_(rng) for _ in range(40)) if m.name == 'bin/round']
    assert round_bins and all({int(k) for k in m.parts.kind} == {CYLINDER} for m in round_bins)


def test_normal_scenes_hold_every_kind_of_normal_label_and_normal_objects_on_the_lanes():
    seen: set[int] = set()
    on_lanes: set[int] = set()
    for index in range(4):
        scenario = build_scenario('train', index, 5, WorldSettings(2, normal_share=1.0))
        static = scenario.static
        seen |= set(static.label.tolist())
        inside = np.abs(static.center[:, 1]) < scenario.road.lanes_half_width_m - 0.3
        # Scenery above the lanes (lamp arms, traffic-light arms) does not count.
        low = static.center[:, 2] < 2.0
        on_lanes |= set(static.label[inside & low].tolist())
        for actor in scenario.actors:
            seen |= set(actor.parts.label.tolist())
    expected = {'wall', 'fence', 'pole', 'vegetation', 'static', 'dynamic', 'car', 'pedestrian', 'bicycle', 'rider'}
    assert {_ID[n] for n in expected} <= seen
    assert not any(is_anomaly(np.array(sorted(seen))))
    assert {_ID['static'], _ID['car']} <= on_lanes
