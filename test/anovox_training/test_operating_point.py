"""The node's operating point chosen on validation: lowest anomaly threshold within the false-alarm bound."""

from __future__ import annotations

import numpy as np
import pytest

from anovox_perception.core.calibration import ChosenOn, OperatingPoint
from anovox_perception.core.errors import ConfigError
from anovox_perception.core.geometry import GridSpec
from anovox_perception.core.preprocess import InputSpec, points_to_bev
from anovox_training.calibrate.operating_point import (
    ANOMALY_THRESHOLDS,
    MIN_COMPONENT_POINTS,
    choose_operating_point,
    count_operating_points,
)
from anovox_training.evaluate.object_metrics import frame_objects

GRID = GridSpec(x_min_m=0.0, x_max_m=5.0, y_min_m=0.0, y_max_m=5.0, z_min_m=0.0, z_max_m=1.0)  # 10 x 10 x 2
SPEC = InputSpec(grid=GRID, image_width=64, image_height=48, image_stride=16, bev_stride=2)
ANIMAL, ROAD = 30, 1
THRESHOLDS = (0.3, 0.4, 0.5, 0.65, 0.8)
POINTS = (0, 1, 3)

OBJECT = [[1, 1, 0], [1, 2, 0], [2, 2, 0]]  # the anomaly, scoring 0.7, with LiDAR returns
FILLED_IN = [[5, 5, 0], [5, 6, 0], [6, 6, 0]]  # free space the network filled in, 0.6, no return
ROAD_BLOB = [[8, 1, 0], [8, 2, 0], [8, 3, 0]]  # road with returns, 0.45
SURE_FALSE_ALARM = [[4, 8, 1], [5, 8, 1], [6, 8, 1]]  # free space with returns, 0.99


def _frame(blobs):
    """(occupancy, anomaly, bev, truth) of one validation frame with ``blobs`` = [(cells, score, returns)]."""
    occupancy = np.zeros(GRID.shape, np.float32)
    anomaly = np.zeros(GRID.shape, np.float32)
    returns = []
    for cells, score, with_returns in blobs:
        index = tuple(np.array(cells).T)
        occupancy[index], anomaly[index] = 0.9, score
        if with_returns:
            centres = GRID.mins + (np.array(cells) + 0.5) * GRID.cell_m
            returns += [centres - 0.05, centres + 0.05]  # two returns per voxel
    points = np.concatenate(returns) if returns else np.zeros((0, 3))
    bev = points_to_bev(np.c_[points, np.zeros(len(points))].astype(np.float32), SPEC)
    truth_cells = OBJECT + ROAD_BLOB
    gt_index = GRID.flat_index(np.array(truth_cells))
    gt_label = np.array([ANIMAL] * len(OBJECT) + [ROAD] * len(ROAD_BLOB), np.uint8)
    truth = frame_objects(GRID, gt_index, gt_label, np.full(len(OBJECT), 'small', dtype=object))
    return occupancy, anomaly, bev, truth


def _results(frames):
    counts = count_operating_points(frames, GRID, 0.5, THRESHOLDS, POINTS)
    return {point: c.result() for point, c in counts.items()}


def _validation():
    return [_frame([(OBJECT, 0.7, True), (FILLED_IN, 0.6, False), (ROAD_BLOB, 0.45, True)])]


def test_the_candidates_are_the_documented_grid():
    assert tuple(round(0.3 + 0.05 * k, 2) for k in range(14)) == ANOMALY_THRESHOLDS
    assert ANOMALY_THRESHOLDS[0] == 0.3 and ANOMALY_THRESHOLDS[-1] == 0.95
    assert MIN_COMPONENT_POINTS == (0, 1, 3, 5, 10)


def test_the_counts_are_the_node_components_matched_with_the_objects():
    results = _results(_validation())
    # Below 0.45 all three blobs are components; the support rule drops the filled-in one.
    assert results[OperatingPoint(0.3, 0)]['false_alarms'] == 2 and results[OperatingPoint(0.3, 1)]['false_alarms'] == 1
    assert results[OperatingPoint(0.5, 0)]['false_alarms'] == 1 and results[OperatingPoint(0.5, 1)]['false_alarms'] == 0
    assert results[OperatingPoint(0.5, 1)]['recall'] == 1.0
    assert results[OperatingPoint(0.8, 0)]['components'] == 0 and results[OperatingPoint(0.8, 0)]['recall'] == 0.0


def test_it_picks_the_lowest_threshold_meeting_the_bound_with_the_fewest_points():
    results = _results(_validation())
    choice = choose_operating_point(results, max_false_alarms_per_frame=0.0)
    # 0.3 and 0.4 keep the road blob whatever the points; at 0.5 one point drops the filled-in blob.
    assert choice.operating_point == OperatingPoint(0.5, 1) and choice.meets_bound
    assert choice.tried['thr=0.5,points=1']['false_alarms_per_frame'] == 0.0
    assert len(choice.tried) == len(THRESHOLDS) * len(POINTS)
    # A looser bound allows a lower threshold.
    assert choose_operating_point(results, 1.0).operating_point == OperatingPoint(0.3, 1)
    assert choose_operating_point(results, 2.0).operating_point == OperatingPoint(0.3, 0)


def test_ties_at_the_lowest_threshold_go_to_the_better_recall():
    def result(false_alarms, recall):
        return {'false_alarms_per_frame': false_alarms, 'recall': recall}

    results = {
        OperatingPoint(0.4, 0): result(0.5, 0.9),
        OperatingPoint(0.4, 1): result(0.1, 0.6),
        OperatingPoint(0.4, 3): result(0.1, 0.7),  # the cap let another object in
        OperatingPoint(0.5, 0): result(0.0, 0.8),
    }
    assert choose_operating_point(results, 0.2).operating_point == OperatingPoint(0.4, 3)


def test_without_a_candidate_meeting_the_bound_the_fewest_false_alarms_and_the_record_says_so():
    frames = [_frame([(OBJECT, 0.7, True), (FILLED_IN, 0.6, False), (SURE_FALSE_ALARM, 0.99, True)])]
    choice = choose_operating_point(_results(frames), max_false_alarms_per_frame=0.0)
    # Every candidate keeps the 0.99 blob: one false alarm at best (the filled-in blob dropped by one point),
    # all of them with the object found; then the lowest threshold and the fewest points.
    assert not choice.meets_bound
    assert choice.operating_point == OperatingPoint(0.3, 1)
    record = choice.record(ChosenOn(('val',), 'ab12'))
    assert record['meets_bound'] is False and 'no candidate met the bound' in record['rule']
    assert record['chosen'] == {'anomaly_threshold': 0.3, 'min_component_points': 1}
    assert record['chosen_on'] == {'folders': ['val'], 'data_hash': 'ab12'}


def test_frames_without_anomalies_count_their_false_alarms():
    quiet = _frame([(FILLED_IN, 0.6, False)])
    results = _results([*_validation(), quiet])
    assert results[OperatingPoint(0.5, 0)]['frames'] == 2
    assert results[OperatingPoint(0.5, 0)]['false_alarms_per_frame'] == 1.0  # one on each frame
    assert results[OperatingPoint(0.5, 1)]['false_alarms_per_frame'] == 0.0


def test_nothing_to_choose_from_is_an_error():
    with pytest.raises(ConfigError, match='no candidates'):
        choose_operating_point({}, 0.2)
    with pytest.raises(ConfigError, match='counted on no frame'):
        choose_operating_point({p: c.result() for p, c in count_operating_points([], GRID, 0.5).items()}, 0.2)
