"""PCD parsing: ascii, binary, binary_compressed (LZF), and strict errors."""

from __future__ import annotations

import numpy as np
import pytest
from handmade_scenarios import FOLDERS_A, PCD_HEADER, binary_compressed, write_layout_a

from anovox_perception.core.errors import DecodeError
from anovox_training.data.decode import MissingIntensityWarning, points_from_pcd, read_pcd_points
from anovox_training.data.pcd import encode_pcd, lzf_decompress, parse_pcd, unpack_rgb
from anovox_training.data.reader import ScenarioReader


def cloud_xyzi(n: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cloud = np.zeros(n, dtype=[('x', '<f4'), ('y', '<f4'), ('z', '<f4'), ('intensity', '<f4'), ('ring', '<u2')])
    for name in ('x', 'y', 'z', 'intensity'):
        cloud[name] = rng.normal(0, 10, n)
    cloud['ring'] = rng.integers(0, 64, n)
    return cloud


@pytest.mark.parametrize('data', ['ascii', 'binary'])
def test_encode_then_parse_returns_the_same_cloud(data):
    cloud = cloud_xyzi()
    header, parsed = parse_pcd(encode_pcd(cloud, data=data))
    assert header.data == data and header.points == 5 and header.fields == ('x', 'y', 'z', 'intensity', 'ring')
    for name in cloud.dtype.names:
        np.testing.assert_array_equal(parsed[name], cloud[name])


def test_binary_compressed_cloud_is_decompressed_field_by_field():
    cloud = cloud_xyzi(n=40, seed=3)
    header, parsed = parse_pcd(binary_compressed(cloud))
    assert header.data == 'binary_compressed'
    for name in cloud.dtype.names:
        np.testing.assert_array_equal(parsed[name], cloud[name])


def test_lzf_back_references_repeat_earlier_output_including_overlaps():
    # 'abc' literal, then copy 3 bytes from 3 back -> 'abcabc'.
    assert lzf_decompress(bytes([2, 97, 98, 99, (1 << 5), 2]), 6) == b'abcabc'
    # 'a' literal, then copy 7 bytes from 1 back (overlapping) -> 8 x 'a'.
    assert lzf_decompress(bytes([0, 97, (5 << 5), 0]), 8) == b'a' * 8
    # Long reference: length field 7 plus an extra byte: 7 + 3 + 2 = 12 bytes copied.
    assert lzf_decompress(bytes([1, 120, 121, (7 << 5), 3, 1]), 14) == b'xy' * 7


def test_lzf_rejects_references_before_the_start_and_wrong_sizes():
    with pytest.raises(DecodeError, match='before the start'):
        lzf_decompress(bytes([0, 97, (1 << 5), 5]), 4)
    with pytest.raises(DecodeError, match='decompressed to 3 bytes, expected 4'):
        lzf_decompress(bytes([2, 97, 98, 99]), 4)
    with pytest.raises(DecodeError, match='passes the end'):
        lzf_decompress(bytes([5, 97]), 6)


def test_multi_count_and_padding_fields_are_parsed():
    body = '1 2 3 0 0 9\n4 5 6 0 0 8\n'
    text = PCD_HEADER.format(fields='normal _ id', sizes='4 1 4', types='F U I', counts='3 2 1', n=2, data='ascii')
    header, cloud = parse_pcd((text + body).encode())
    assert header.fields == ('normal', '_pad1', 'id')
    np.testing.assert_array_equal(cloud['normal'], [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(cloud['id'], [9, 8])


def test_packed_rgb_unpacks_to_bytes():
    bits = np.array([(245 << 16) | (0 << 8) | 7, (1 << 16) | (2 << 8) | 3], dtype=np.uint32)
    np.testing.assert_array_equal(unpack_rgb(bits.view(np.float32)), [[245, 0, 7], [1, 2, 3]])


def test_cloud_without_intensity_gets_zero_intensity_and_a_warning_naming_its_fields():
    cloud = np.zeros(3, dtype=[('x', '<f4'), ('y', '<f4'), ('z', '<f4'), ('ring', '<u2')])
    cloud['x'] = [1, 2, 3]
    with pytest.warns(MissingIntensityWarning, match=r"no intensity field .*fields are \['x', 'y', 'z', 'ring'\]"):
        points = points_from_pcd(encode_pcd(cloud), negate_y=False)
    assert points.shape == (3, 4) and points.dtype == np.float32
    np.testing.assert_array_equal(points[:, 3], 0)


@pytest.mark.parametrize(('name', 'dtype'), [('i', '<f4'), ('reflectivity', '<u2'), ('reflectance', '<f4')])
def test_intensity_is_read_from_the_names_other_tools_give_it(name, dtype):
    cloud = np.zeros(3, dtype=[('x', '<f4'), ('y', '<f4'), ('z', '<f4'), (name, dtype)])
    cloud[name] = [5, 10, 200]
    read = read_pcd_points(encode_pcd(cloud), negate_y=False)
    assert read.value_field == name
    np.testing.assert_array_equal(read.points[:, 3], [5, 10, 200])


def test_grey_packed_rgb_is_read_as_intensity():
    # Open3D writes a cloud whose colours are its intensity (r = g = b) as a packed rgb field.
    grey = np.array([0, 51, 255], np.uint32)
    cloud = np.zeros(3, dtype=[('x', '<f4'), ('y', '<f4'), ('z', '<f4'), ('rgb', '<f4')])
    cloud['rgb'] = ((grey << 16) | (grey << 8) | grey).view(np.float32)
    read = read_pcd_points(encode_pcd(cloud), negate_y=False)
    assert read.value_field == 'rgb'
    np.testing.assert_allclose(read.points[:, 3], grey / 255.0, rtol=1e-6)


def test_the_reader_counts_layout_a_clouds_without_intensity_and_warns_once(tmp_path):
    scenario = write_layout_a(tmp_path, frame_ids=(1, 2))
    for frame_id in (1, 2):
        path = scenario.path / FOLDERS_A['points'] / f'{FOLDERS_A["points"]}_{frame_id}.pcd'
        _, cloud = parse_pcd(path.read_bytes())
        path.write_bytes(encode_pcd(cloud[['x', 'y', 'z']], data='binary'))
    reader = ScenarioReader(scenario.path)
    with pytest.warns(MissingIntensityWarning, match=r'Scenario_a: PCD_1\.pcd: PCD has no intensity field') as caught:
        for frame_id in (1, 2):
            np.testing.assert_array_equal(reader.read(frame_id, sensors=['points']).points[:, 3], 0)
    assert len([w for w in caught if issubclass(w.category, MissingIntensityWarning)]) == 1
    assert reader.clouds_without_intensity == 2


@pytest.mark.parametrize(
    ('text', 'match'),
    [
        ('VERSION 0.7\nSIZE 4\nTYPE F\nPOINTS 0\nDATA ascii\n', 'no FIELDS line'),
        ('FIELDS x y\nSIZE 4\nTYPE F F\nPOINTS 0\nDATA ascii\n', 'SIZE has 1 entries for 2 FIELDS'),
        ('FIELDS x\nSIZE 4\nTYPE Q\nPOINTS 0\nDATA ascii\n', "TYPE 'Q' is not one of I, U, F"),
        ('FIELDS x\nSIZE 2\nTYPE F\nPOINTS 0\nDATA ascii\n', 'SIZE 2 is not valid for TYPE F'),
        ('FIELDS x\nSIZE 4\nTYPE F\nPOINTS 1\nDATA lzma\n', "DATA 'lzma' is not one of"),
        ('FIELDS x\nSIZE 4\nTYPE F\nWIDTH 3\nHEIGHT 1\nPOINTS 2\nDATA ascii\n', 'POINTS 2 does not equal WIDTH 3'),
        ('FIELDS x y\nSIZE 4 4\nTYPE F F\nPOINTS 2\nDATA ascii\n1 2\n3\n', 'holds 3 values, expected 2 points x 2'),
        ('FIELDS x\nSIZE 4\nTYPE F\nPOINTS 1\n', 'ends before the DATA line'),
        ('FIELDS x\nSIZE 4\nTYPE I\nPOINTS 1\nDATA ascii\nabc\n', "field 'x': values are not int32"),
    ],
)
def test_malformed_headers_and_bodies_raise_decode_errors_that_say_what_was_expected(text, match):
    with pytest.raises(DecodeError, match=match):
        parse_pcd(text.encode())


def test_truncated_binary_body_is_reported_with_expected_size():
    data = encode_pcd(cloud_xyzi(n=5), data='binary')
    with pytest.raises(DecodeError, match=r'has 80 bytes, expected 5 points x 18 bytes = 90 \(file truncated\)'):
        parse_pcd(data[:-10])


def test_binary_garbage_is_not_a_pcd_file():
    with pytest.raises(DecodeError, match='not ASCII text'):
        parse_pcd(b'\x89PNG\r\n\x1a\n\xff\xfe')


def test_truncated_compressed_payload_is_reported():
    data = binary_compressed(cloud_xyzi(n=10))
    with pytest.raises(DecodeError, match='compressed bytes, got'):
        parse_pcd(data[:-5])
