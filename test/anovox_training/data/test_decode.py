"""Decoding AnoVox file contents into arrays: images, depth, labels, point clouds, voxels, csv."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from anovox_perception.core.errors import DecodeError
from anovox_training.data.decode import (
    anomalies_from_csv,
    as_matrix4,
    carla_depth_m,
    decode_image,
    decode_json,
    decode_npy,
    instance_from_raw,
    parse_kv_csv,
    points_from_array,
    semantic_from_colors,
    semantic_from_raw,
    voxels_from_array,
)


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format='PNG')
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_carla_depth_follows_the_linear_encoding():
    image = np.array([[[255, 255, 255], [1, 0, 0], [0, 1, 0], [0, 0, 1]]], dtype=np.uint8)
    depth = carla_depth_m(image)
    scale = 1000.0 / (256**3 - 1)
    np.testing.assert_allclose(depth[0], [1000.0, scale, 256 * scale, 65536 * scale], rtol=1e-6)
    assert depth.dtype == np.float32


def test_depth_accepts_rgba_and_rejects_single_channel():
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 0] = 10
    assert carla_depth_m(rgba).shape == (2, 2)
    with pytest.raises(DecodeError, match=r'CARLA depth image: expected an \(H, W, 3\) or \(H, W, 4\) uint8 image'):
        carla_depth_m(np.zeros((2, 2), dtype=np.uint8))


def test_raw_semantic_takes_the_red_channel_or_a_single_channel_image():
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[..., 0] = [[1, 2, 3], [24, 29, 100]]
    np.testing.assert_array_equal(semantic_from_raw(rgb), rgb[..., 0])
    np.testing.assert_array_equal(semantic_from_raw(rgb[..., 0]), rgb[..., 0])


def test_colour_coded_semantic_maps_cityscapes_and_anovox_anomaly_colours_to_ids():
    image = np.array(
        [[[128, 64, 128], [157, 234, 50], [245, 0, 0], [245, 31, 0], [0, 0, 142], [220, 20, 61]]], dtype=np.uint8
    )
    np.testing.assert_array_equal(semantic_from_colors(image), [[1, 24, 100, 31, 14, 112]])


def test_unknown_colours_are_reported_with_counts():
    image = np.zeros((1, 4, 3), dtype=np.uint8)
    image[0, 1:] = (1, 2, 3)
    with pytest.raises(DecodeError, match=r'3 pixels have colours outside .* e\.g\. \(1, 2, 3\) x3'):
        semantic_from_colors(image)


def test_instance_id_is_green_plus_256_blue():
    image = np.array([[[14, 7, 0], [14, 255, 255]]], dtype=np.uint8)
    np.testing.assert_array_equal(instance_from_raw(image), [[7, 65535]])


def test_decode_image_rejects_truncated_png_and_16_bit_images():
    data = png_bytes(np.zeros((8, 8, 3), dtype=np.uint8))
    with pytest.raises(DecodeError, match='not a readable image'):
        decode_image(data[: len(data) // 2])
    with pytest.raises(DecodeError, match='expected an 8-bit image'):
        decode_image(png_bytes(np.zeros((4, 4), dtype=np.uint16)))


def test_decode_npy_rejects_truncated_files_and_object_arrays():
    data = npy_bytes(np.zeros((10, 4), dtype=np.float32))
    with pytest.raises(DecodeError, match='not a readable .npy array'):
        decode_npy(data[:-8])
    with pytest.raises(DecodeError, match='not a readable .npy array'):
        decode_npy(npy_bytes(np.array([{'a': 1}], dtype=object)))


def test_points_negate_y_only_when_asked_and_come_out_float32():
    stored = np.array([[1.0, 2.0, 3.0, 0.5]], dtype=np.float64)
    np.testing.assert_array_equal(points_from_array(stored, negate_y=True), [[1, -2, 3, 0.5]])
    out = points_from_array(stored, negate_y=False)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, stored)


@pytest.mark.parametrize(
    ('array', 'labels', 'match'),
    [
        (np.zeros((5, 3), np.float32), False, r'expected an \(N, 4\) numeric array .* got shape \(5, 3\)'),
        (np.array([[0, np.nan, 0, 0]], np.float32), False, '1 of 1 points have non-finite coordinates'),
        (np.array([[0, 0, 0, -1]], np.float32), True, r'labels must be whole numbers in 0\.\.65535'),
        (np.array([[0, 0, 0, 1.5]], np.float32), True, 'labels must be whole numbers'),
    ],
)
def test_bad_point_arrays_raise(array, labels, match):
    with pytest.raises(DecodeError, match=match):
        points_from_array(array, negate_y=False, labels=labels)


def test_voxels_must_lie_in_the_anovox_grid():
    good = np.array([[0, 0, 0, 1], [999, 999, 63, 30]], dtype=np.int64)
    assert voxels_from_array(good).dtype == np.uint16
    with pytest.raises(DecodeError, match=r'got min \[0, 0, 0, 1\] max \[999, 999, 64, 30\]'):
        voxels_from_array(np.array([[0, 0, 0, 1], [999, 999, 64, 30]]))
    with pytest.raises(DecodeError, match=r'expected an \(M, 4\) integer array'):
        voxels_from_array(np.zeros((3, 3), dtype=np.uint16))


def test_layout_b_action_csv_values_are_typed():
    text = (
        'frame ; 120\ntimestamp ; 12.0\nego_location ; [1.5, -2.0, 0.0]\nweather ; ClearNoon\n'
        'lidar_transformation ; [[1.0, 0.0, 0.0, 5.0], [0.0, 1.0, 0.0, 6.0], [0.0, 0.0, 1.0, 1.8], [0, 0, 0, 1]]\n'
    )
    values = parse_kv_csv(text)
    assert values['frame'] == 120 and values['timestamp'] == 12.0 and values['weather'] == 'ClearNoon'
    np.testing.assert_array_equal(values['ego_location'], [1.5, -2.0, 0.0])
    np.testing.assert_array_equal(as_matrix4(values['lidar_transformation'], 'lidar')[:3, 3], [5.0, 6.0, 1.8])


def test_anovox_action_csv_with_spaced_keys_tuples_and_numpy_style_matrices():
    text = (
        'frame_id ; 7\nhand_brake ; False\ncenter_of_mass ; (0.1, 0.0, -0.3)\n'
        "steering_curve ; ('0.0,1.0)', '(120.0/0.3')\n"
        'camera transformation matrix ; [[1. 0. 0. 0.]\n [0. 1. 0. 0.]\n [0. 0. 1. 0.]\n [0. 0. 0. 1.]]\n'
        'vehicle_type_id ; vehicle.lincoln.mkz_2020\n'
    )
    values = parse_kv_csv(text)
    assert values['hand_brake'] is False and values['steering_curve'] == ('0.0,1.0)', '(120.0/0.3')
    np.testing.assert_array_equal(values['center_of_mass'], [0.1, 0.0, -0.3])
    np.testing.assert_array_equal(values['camera transformation matrix'], np.eye(4))
    assert values['vehicle_type_id'] == 'vehicle.lincoln.mkz_2020'


@pytest.mark.parametrize(
    ('text', 'match'),
    [
        ('frame ; 1\nthis line has no separator\n', 'line 2: expected "key ; value"'),
        ('frame ; 1\nframe ; 2\n', "line 2: key 'frame' appears twice"),
        ('m ; [[1, 2], [3, 4]\n', "line 1: value of 'm' has unbalanced brackets"),
        (' ; 5\n', 'line 1: expected "key ; value"'),
    ],
)
def test_malformed_csv_raises_with_the_line_number(text, match):
    with pytest.raises(DecodeError, match=match):
        parse_kv_csv(text)


def test_as_matrix4_rejects_other_shapes():
    with pytest.raises(DecodeError, match=r'lidar: expected a finite 4x4 matrix, got shape \(3, 3\)'):
        as_matrix4(np.eye(3), 'lidar')


def test_layout_b_anomaly_csv_gives_one_object_per_suffix_and_none_gives_no_object():
    values = parse_kv_csv(
        'category_0 ; home\nlabel_0 ; 29\nlocation_0 ; [20, 1, -1]\nsize_0 ; [2, 1, 1]\nyaw_deg_0 ; 30\n'
        'instance_id_0 ; 5\ncategory_1 ; falling\nlocation_1 ; [30, -2, 0.5]\nsize_1 ; [0.5, 0.5, 0.5]\n'
    )
    first, second = anomalies_from_csv(values)
    assert (first.category, first.label, first.yaw_deg, first.instance_id) == ('home', 29, 30.0, 5)
    assert (second.category, second.label, second.instance_id) == ('falling', 34, -1)
    np.testing.assert_array_equal(second.location_m, [30, -2, 0.5])
    assert anomalies_from_csv(parse_kv_csv('anomaly_id ; -1\ncategory ; none\n')) == []


def test_anomaly_csv_with_unknown_category_or_missing_location_raises():
    with pytest.raises(DecodeError, match="category: expected one of .* got 'dragon'"):
        anomalies_from_csv({'category': 'dragon'})
    with pytest.raises(DecodeError, match='location: missing for the home anomaly'):
        anomalies_from_csv({'category': 'home', 'size': [1, 1, 1]})


def test_anovox_generator_anomaly_location_is_moved_from_carla_world_into_the_lidar_frame():
    world_from_lidar = np.eye(4)
    world_from_lidar[:3, 3] = [100.0, 50.0, 1.8]
    values = {'anomaly_id': 4242, 'semantic_tags': [30], 'location': (110.0, 47.0, 0.6)}
    (anomaly,) = anomalies_from_csv(values, np.linalg.inv(world_from_lidar))
    # 10 m ahead and 3 m left: CARLA y (right) -3 becomes REP-103 y (left) +3.
    np.testing.assert_allclose(anomaly.location_m, [10.0, 3.0, -1.2])
    assert (anomaly.category, anomaly.label, anomaly.instance_id) == ('animal', 30, 4242)
    assert np.isnan(anomaly.size_m).all()


def test_decode_json_reports_the_position_of_the_error():
    with pytest.raises(DecodeError, match='invalid JSON at line 1 column 9'):
        decode_json(b'{"a": 1,}')
