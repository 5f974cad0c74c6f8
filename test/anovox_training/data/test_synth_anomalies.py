"""Synthetic world: anomaly categories, splits, placement, and where sensors see anomalies."""

from __future__ import annotations

import math

import numpy as np
import pytest

from anovox_training.data.labels import CATEGORY_TO_LABEL, is_anomaly
from anovox_training.data.synth import SPLIT_CATEGORIES, SensorRig, WorldSettings, build_anomaly, build_scenario
from anovox_training.data.synth.motion import static_track
from anovox_training.data.synth.pipeline import FrameRenderer
from anovox_training.data.synth.primitives import aabb_half_extents
from anovox_training.data.synth.scene import Actor
from anovox_training.data.synth.world import scenario_uuid


def test_train_val_and_test_splits_draw_disjoint_categories():
    assert SPLIT_CATEGORIES == {
        'train': ('home', 'special'),
        'val': ('nature',),
        'test': ('animal', 'airplane', 'falling'),
    }
    drawn = [c for categories in SPLIT_CATEGORIES.values() for c in categories]
    assert len(drawn) == len(set(drawn)), 'a category is in two splits'
    assert set(drawn) == set(CATEGORY_TO_LABEL)


@pytest.mark.parametrize('category', sorted(CATEGORY_TO_LABEL))
def test_every_category_builds_varied_anomalies_labelled_with_its_id(category):
    rng = np.random.default_rng(0)
    models = [build_anomaly(category, rng) for _ in range(12)]
    assert len({m.name for m in models}) >= 3
    for m in models:
        assert m.name.startswith(f'{category}/')
        assert set(m.parts.label.tolist()) == {CATEGORY_TO_LABEL[category]}
        assert (m.size_m > 0.02).all() and m.size_m.max() < 25.0
        bottom = (m.parts.center[:, 2] - aabb_half_extents(m.parts)[:, 2]).min()
        assert abs(bottom) < 1e-6, f'{m.name} rests at {bottom:.2f} m, not on the ground'


def test_unknown_category_is_rejected():
    with pytest.raises(KeyError, match="unknown category 'unicorn'"):
        build_anomaly('unicorn', np.random.default_rng(0))


def test_scenarios_draw_only_their_split_categories():
    for split in ('train', 'val', 'test'):
        seen = set()
        for index in range(4):
            scenario = build_scenario(split, index, 11, WorldSettings(20, normal_share=0.0))
            assert scenario.anomalies, f'{split} scenario {index} has no anomaly'
            for a in scenario.anomalies:
                assert a.label == CATEGORY_TO_LABEL[a.category]
                seen.add(a.category)
        assert seen <= set(SPLIT_CATEGORIES[split])


def test_normality_scenarios_have_no_anomaly():
    scenario = build_scenario('train', 0, 3, WorldSettings(10, normal_share=1.0))
    assert scenario.anomalies == []
    assert scenario.anomaly_boxes(0) == []


def test_one_to_three_anomalies_lie_5_to_60_m_ahead_in_most_frames():
    for index in range(3):
        scenario = build_scenario('val', index, 2, WorldSettings(100, normal_share=0.0))
        ahead = [
            sum(5.0 <= b.center_m[0] <= 60.0 and abs(b.center_m[1]) < 15.0 for b in scenario.anomaly_boxes(k))
            for k in range(0, 100, 5)
        ]
        share = np.mean([1 <= n <= 3 for n in ahead])
        assert share >= 0.7, f'scenario {index}: anomalies ahead per frame {ahead}'


def test_scenario_ids_are_deterministic_uuids_per_split_seed_and_index():
    assert scenario_uuid(0, 'train', 1) == scenario_uuid(0, 'train', 1)
    ids = {scenario_uuid(s, sp, i) for s in (0, 1) for sp in ('train', 'test') for i in (0, 1)}
    assert len(ids) == 8


def _scene_with_anomaly_ahead(category: str, kind: str, distance_m: float):
    """A generated scenario with one extra anomaly placed on the road ahead of the ego at frame 0."""
    scenario = build_scenario('train', 0, 7, WorldSettings(1, normal_share=1.0))
    model = build_anomaly(category, np.random.default_rng(4), kind)
    ego = scenario.ego.position[0]
    yaw = 0.7
    centre = ego + np.array([math.cos(scenario.ego.yaw[0]), math.sin(scenario.ego.yaw[0]), 0.0]) * distance_m
    track = static_track(1, centre, yaw)
    if category == 'falling':
        track.position[0, 2] = 1.5
    scenario.add_actor(Actor(model.name, 900, model.parts.with_instance(900), track), category)
    return scenario


@pytest.mark.parametrize(('category', 'kind'), [('home', 'piano'), ('animal', 'lying'), ('falling', 'sack')])
def test_anomaly_points_and_voxels_lie_on_the_placed_anomaly(category, kind):
    scenario = _scene_with_anomaly_ahead(category, kind, 9.0)
    frame = FrameRenderer(scenario, SensorRig.default(160, 96, azimuth_steps=1024)).render(0)
    (box,) = [b for b in frame.anomalies if b.instance_id == 900]
    label = CATEGORY_TO_LABEL[category]
    c, s = math.cos(math.radians(box.yaw_deg)), math.sin(math.radians(box.yaw_deg))
    to_box = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])

    def inside(points: np.ndarray, margin: float) -> np.ndarray:
        local = (points - box.center_m) @ to_box.T
        return np.all(np.abs(local) <= box.size_m / 2 + margin, axis=1)

    semantic = frame.semantic_points
    hits = semantic[semantic[:, 3] == label, :3]
    assert len(hits) >= 5
    assert inside(hits, 1e-6).all()
    assert is_anomaly(frame.semantic).sum() >= 20
    voxels = frame.voxels[frame.voxels[:, 3] == label]
    assert len(voxels) >= 2
    centres = (voxels[:, :3].astype(np.float64) + 0.5) * 0.5 - np.array([250.0, 250.0, 16.0])
    # A labelled voxel holds a surface point, so its centre is within half a voxel diagonal.
    assert inside(centres, math.sqrt(3) * 0.25 + 1e-6).all()
