"""Object-level metrics: ground-truth instances, matching with the node's components, pooled counts."""

from __future__ import annotations

import numpy as np
import pytest

from anovox_perception.core.calibration import OperatingPoint
from anovox_perception.core.geometry import GridSpec
from anovox_perception.core.parameters import defaults
from anovox_perception.core.preprocess import InputSpec, points_to_bev
from anovox_training.evaluate.object_metrics import ObjectCounts, anomaly_instances, match_components

GRID = GridSpec(x_min_m=0.0, x_max_m=5.0, y_min_m=0.0, y_max_m=5.0, z_min_m=0.0, z_max_m=1.0)  # 10 x 10 x 2

ANIMAL, AIRPLANE, ROAD, AGENT = 30, 33, 1, 113


def test_instances_are_connected_voxels_of_one_label():
    cells = np.array([[1, 1, 0], [2, 2, 1], [5, 5, 0], [3, 2, 1], [0, 0, 0]])
    labels = np.array([ANIMAL, ANIMAL, ANIMAL, AIRPLANE, AIRPLANE])
    instance, count = anomaly_instances(cells, labels)
    # Animal: (1,1,0)-(2,2,1) touch diagonally (26-connected), (5,5,0) is apart; the airplane
    # voxel (3,2,1) touches an animal voxel but is another object, and (0,0,0) is apart from it.
    assert count == 4
    assert instance[0] == instance[1] and len({instance[0], instance[2], instance[3], instance[4]}) == 4
    assert anomaly_instances(np.zeros((0, 3), np.int64), np.zeros(0, np.uint8))[1] == 0


def test_matching_marks_detected_instances_and_components_on_anomalies_or_ignored_voxels():
    gt_index = np.array([10, 11, 12, 20, 30, 40])
    gt_instance = np.array([0, 0, -1, 1, -1, -1])
    gt_ignored = np.array([False, False, False, False, True, False])
    # Component 0 covers instance 0 and a normal voxel; 1 sits on the ignored voxel; 2 on no ground truth.
    voxel_index = np.array([11, 12, 30, 99, 98])
    component = np.array([0, 0, 1, 2, 2])
    detected, on_anomaly, on_ignored = match_components(gt_index, gt_instance, gt_ignored, voxel_index, component)
    assert detected.tolist() == [True, False]
    assert on_anomaly.tolist() == [True, False, False] and on_ignored.tolist() == [False, True, False]


def _cells(cells):
    return GRID.flat_index(np.array(cells))


def _frame():
    """One frame: three anomaly objects, road, an agent-mode actor, and the model's grids."""
    animal_a = [[1, 1, 0], [1, 2, 0], [2, 2, 0]]
    animal_b = [[7, 7, 0], [7, 7, 1]]
    airplane = [[2, 3, 0], [3, 3, 0], [3, 4, 0]]  # touches animal_a: another object all the same
    road = [[x, 9, 0] for x in range(10)]
    agent = [[5, 0, 0], [5, 1, 0], [6, 0, 0]]
    groups = [(animal_a, ANIMAL), (animal_b, ANIMAL), (airplane, AIRPLANE), (road, ROAD), (agent, AGENT)]
    gt_index = np.concatenate([_cells(c) for c, _ in groups])
    gt_label = np.concatenate([np.full(len(c), v, np.uint8) for c, v in groups])
    sizes = ['small'] * 3 + ['medium', 'small'] + ['small', 'large', 'large']
    occupancy = np.zeros(GRID.shape, np.float32)
    anomaly = np.zeros(GRID.shape, np.float32)
    occupancy.reshape(-1)[gt_index] = 0.9
    free_blob = [[4, 6, 1], [4, 7, 1], [5, 7, 1]]
    occupancy[tuple(np.array(free_blob).T)] = 0.9
    occupancy[0, 1, 0] = 0.9
    # Anomalous: animal_a plus a free neighbour (one component of 4), animal_b (2 voxels: below
    # the 3-voxel minimum), three road cells, the agent, and a blob in free space.
    for cells in (animal_a, [[0, 1, 0]], animal_b, [[0, 9, 0], [1, 9, 0], [2, 9, 0]], agent, free_blob):
        anomaly[tuple(np.array(cells).T)] = 0.8
    return occupancy, anomaly, gt_index, gt_label, np.array(sizes, dtype=object)


def test_object_counts_follow_the_node_components_over_frames():
    counts = ObjectCounts()
    # The configured operating point (the node's before calibrations carried one) and the node's smallest component.
    assert counts.operating_point == OperatingPoint() == OperatingPoint(0.5, 0)
    assert counts.min_component_voxels == defaults()['markers.min_component_voxels']
    occupancy, anomaly, gt_index, gt_label, sizes = _frame()
    counts.add(GRID, occupancy, anomaly, 0.5, gt_index, gt_label, sizes)
    # A frame without anomalies: its road blob is one more false alarm.
    road = gt_label == ROAD
    second = np.zeros_like(anomaly)
    second[0:3, 9, 0] = 0.8
    counts.add(GRID, occupancy, second, 0.5, gt_index[road], gt_label[road], np.zeros(0, dtype=object))
    result = counts.result()
    assert result['frames'] == 2 and result['instances'] == 3 and result['detected'] == 1
    assert result['recall'] == pytest.approx(1 / 3)
    # Frame 1: animal_a's, the road's, the agent's and the free blob's components; frame 2: the road's.
    assert result['components'] == 5 and result['ignored_components'] == 1 and result['false_alarms'] == 3
    assert result['false_alarms_per_frame'] == 1.5
    assert result['by_category'] == {
        'airplane': {'instances': 1, 'detected': 0, 'recall': 0.0},
        'animal': {'instances': 2, 'detected': 1, 'recall': 0.5},
    }
    # animal_b's buckets tie (medium, small): the smaller wins; the airplane is mostly large.
    assert result['by_size'] == {
        'small': {'instances': 2, 'detected': 1, 'recall': 0.5},
        'large': {'instances': 1, 'detected': 0, 'recall': 0.0},
    }


def test_the_occupancy_threshold_and_the_component_minimum_decide_what_is_detected():
    occupancy, anomaly, gt_index, gt_label, sizes = _frame()
    strict = ObjectCounts()
    strict.add(GRID, occupancy, anomaly, 0.95, gt_index, gt_label, sizes)  # nothing is occupied
    assert strict.result()['components'] == 0 and strict.result()['recall'] == 0.0
    loose = ObjectCounts(min_component_voxels=2)
    loose.add(GRID, occupancy, anomaly, 0.5, gt_index, gt_label, sizes)
    assert loose.result()['detected'] == 2  # animal_b's two voxels now make a component


def test_no_frames_give_no_rates():
    result = ObjectCounts().result()
    assert result['recall'] is None and result['false_alarms_per_frame'] is None and result['by_category'] == {}


def _returns_in(cells) -> np.ndarray:
    """The BEV input of a cloud with two LiDAR returns in each of ``cells``."""
    spec = InputSpec(grid=GRID, image_width=64, image_height=48, image_stride=16, bev_stride=2)
    centres = GRID.mins + (np.asarray(cells) + 0.5) * GRID.cell_m
    points = np.concatenate([centres - 0.05, centres + 0.05])
    return points_to_bev(np.c_[points, np.zeros(len(points))].astype(np.float32), spec)


def test_components_without_lidar_support_are_not_counted_at_an_operating_point_that_needs_it():
    occupancy, anomaly, gt_index, gt_label, sizes = _frame()
    # Returns on animal_a and the road only: the agent's and the free blob's components hold none.
    bev = _returns_in([[1, 1, 0], [2, 2, 0], [0, 9, 0], [1, 9, 0]])
    every = ObjectCounts.at(OperatingPoint(0.5, 0))
    every.add(GRID, occupancy, anomaly, 0.5, gt_index, gt_label, sizes, lidar_bev=bev)
    supported = ObjectCounts.at(OperatingPoint(0.5, 1))
    supported.add(GRID, occupancy, anomaly, 0.5, gt_index, gt_label, sizes, lidar_bev=bev)
    assert (every.result()['components'], every.result()['false_alarms']) == (4, 2)
    result = supported.result()
    assert result['min_component_points'] == 1
    assert (result['components'], result['false_alarms'], result['ignored_components']) == (2, 1, 0)
    assert result['detected'] == every.result()['detected'] == 1  # animal_a has its returns
    # animal_a's columns hold 4 points, the road's 4: at 5 no component is left.
    none = ObjectCounts.at(OperatingPoint(0.5, 5))
    none.add(GRID, occupancy, anomaly, 0.5, gt_index, gt_label, sizes, lidar_bev=bev)
    assert none.result()['components'] == 0 and none.result()['detected'] == 0
