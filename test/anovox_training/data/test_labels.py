"""Label ids shared by reader, generator and evaluation."""

from __future__ import annotations

import numpy as np

from anovox_training.data.labels import (
    ANOMALY_LABELS,
    CATEGORY_TO_LABEL,
    IGNORED_LABELS,
    LABEL_NAMES,
    ROAD_LINE_LABEL,
    is_anomaly,
    is_ignored,
    label_colors,
)


def test_categories_map_to_anovox_ids_29_to_34():
    assert CATEGORY_TO_LABEL == {'home': 29, 'animal': 30, 'nature': 31, 'special': 32, 'airplane': 33, 'falling': 34}


def test_anomaly_set_is_the_six_categories_and_the_generic_id():
    assert set(range(29, 35)) | {100} == ANOMALY_LABELS
    assert set(range(112, 120)) == IGNORED_LABELS


def test_is_anomaly_marks_exactly_anomaly_ids_for_int_and_float_input():
    labels = np.array([[0, 1, 24, 28], [29, 34, 35, 100]], dtype=np.uint16)
    expected = np.array([[False, False, False, False], [True, True, False, True]])
    np.testing.assert_array_equal(is_anomaly(labels), expected)
    np.testing.assert_array_equal(is_anomaly(labels.astype(np.float32)), expected)


def test_out_of_range_and_nan_labels_are_neither_anomaly_nor_ignored():
    labels = np.array([-1.0, np.nan, 300.0, 1000.0])
    assert not is_anomaly(labels).any()
    assert not is_ignored(labels).any()


def test_ignored_labels_are_agent_mode_ids():
    np.testing.assert_array_equal(is_ignored(np.array([111, 112, 119, 120])), [False, True, True, False])


def test_label_colours_follow_the_cityscapes_palette_and_anomaly_red():
    colours = label_colors(np.array([1, ROAD_LINE_LABEL, 31, 250]))
    np.testing.assert_array_equal(colours, [[128, 64, 128], [157, 234, 50], [245, 0, 0], [0, 0, 0]])
    assert colours.dtype == np.uint8


def test_every_carla_id_has_a_name():
    assert all(i in LABEL_NAMES for i in range(29))
    assert LABEL_NAMES[14] == 'car'
