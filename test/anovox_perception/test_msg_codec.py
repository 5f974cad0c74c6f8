"""Tests for anovox_perception.ros.msg_codec against hand-built ROS 2 messages."""

from __future__ import annotations

import io
import struct
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from anovox_perception.core.errors import DecodeError
from anovox_perception.core.geometry import GridSpec
from anovox_perception.core.tracker import MarkerSpec
from anovox_perception.ros.msg_codec import (
    array_to_pointcloud2,
    camera_info_to_model,
    compressed_to_rgb,
    image_to_rgb,
    make_occupancy_grid,
    markers_to_msg,
    ns_to_stamp,
    pointcloud2_to_xyzi,
    rgb_to_image,
    stamp_to_ns,
    xyzi_to_pointcloud2,
)

HEADER = Header(frame_id='lidar', stamp=ns_to_stamp(1_700_000_000_123_456_789))
RGB = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 7  # 2 rows, 3 columns


def image_msg(rows: list[bytes], width: int, encoding: str, step: int, bigendian: bool = False) -> Image:
    msg = Image(height=len(rows), width=width, encoding=encoding, step=step, is_bigendian=bigendian)
    msg.data = b''.join(rows)
    return msg


def padded_rows(pixels: np.ndarray, pad: int) -> list[bytes]:
    return [row.tobytes() + bytes([0xEE] * pad) for row in pixels]


# --- images ---------------------------------------------------------------


@pytest.mark.parametrize(
    ('encoding', 'order'),
    [('rgb8', [0, 1, 2]), ('bgr8', [2, 1, 0]), ('rgba8', [0, 1, 2, 3]), ('bgra8', [2, 1, 0, 3])],
)
def test_image_to_rgb_decodes_colour_encodings_with_row_padding(encoding: str, order: list[int]) -> None:
    alpha = np.full((2, 3, 1), 255, np.uint8)
    stored = np.concatenate([RGB, alpha], axis=2)[..., order]
    channels = stored.shape[2]
    msg = image_msg(padded_rows(stored, pad=5), width=3, encoding=encoding, step=3 * channels + 5)
    np.testing.assert_array_equal(image_to_rgb(msg), RGB)


def test_image_to_rgb_spreads_mono8_over_three_channels() -> None:
    mono = RGB[..., 0]
    msg = image_msg(padded_rows(mono, pad=1), width=3, encoding='mono8', step=4)
    np.testing.assert_array_equal(image_to_rgb(msg), np.repeat(mono[..., None], 3, axis=2))


@pytest.mark.parametrize('bigendian', [False, True])
def test_image_to_rgb_keeps_the_high_byte_of_16_bit_images_in_either_byte_order(bigendian: bool) -> None:
    values = RGB.astype(np.uint16) * 256 + 0x7F  # high byte RGB, low byte noise
    stored = values.astype('>u2' if bigendian else '<u2')
    msg = image_msg(padded_rows(stored, pad=2), width=3, encoding='rgb16', step=3 * 6 + 2, bigendian=bigendian)
    np.testing.assert_array_equal(image_to_rgb(msg), RGB)
    mono = image_msg(padded_rows(stored[..., 0], pad=0), width=3, encoding='mono16', step=6, bigendian=bigendian)
    np.testing.assert_array_equal(image_to_rgb(mono)[..., 1], RGB[..., 0])


def test_image_to_rgb_returns_a_view_of_the_message_buffer_unless_asked_to_copy() -> None:
    msg = rgb_to_image(RGB, HEADER)
    view = image_to_rgb(msg)
    assert np.shares_memory(view, np.frombuffer(msg.data, np.uint8))
    copy = image_to_rgb(msg, copy=True)
    assert copy.flags.c_contiguous and not np.shares_memory(copy, np.frombuffer(msg.data, np.uint8))
    np.testing.assert_array_equal(copy, RGB)


def test_image_to_rgb_accepts_rosbags_style_numpy_data() -> None:
    msg = SimpleNamespace(height=2, width=3, encoding='rgb8', step=9, is_bigendian=0, data=RGB.reshape(-1).copy())
    np.testing.assert_array_equal(image_to_rgb(msg), RGB)


@pytest.mark.parametrize(
    ('changes', 'match'),
    [
        ({'encoding': 'yuv422'}, r"encoding 'yuv422' is not supported; expected one of \['bgr16'"),
        ({'step': 8}, r'step=8 is smaller than width \* bytes per pixel = 3 \* 3 = 9'),
        ({'height': 3}, r'data has 18 bytes; expected step \* height = 9 \* 3 = 27'),
        ({'width': 0}, r'empty image \(width=0, height=2\)'),
    ],
)
def test_image_to_rgb_rejects_malformed_images(changes: dict, match: str) -> None:
    msg = rgb_to_image(RGB, HEADER)
    for key, value in changes.items():
        setattr(msg, key, value)
    with pytest.raises(DecodeError, match=match):
        image_to_rgb(msg)


def test_image_to_rgb_rejects_data_that_is_not_bytes() -> None:
    msg = SimpleNamespace(height=1, width=1, encoding='rgb8', step=3, is_bigendian=0, data=[1, 2, 300])
    with pytest.raises(DecodeError, match='Image: data of type list is not a byte buffer'):
        image_to_rgb(msg)


def test_rgb_to_image_round_trips_rgb8_and_bgr8() -> None:
    for encoding in ('rgb8', 'bgr8'):
        msg = rgb_to_image(RGB, HEADER, encoding=encoding)
        assert (msg.height, msg.width, msg.step, msg.encoding) == (2, 3, 9, encoding)
        assert msg.header.frame_id == 'lidar'
        np.testing.assert_array_equal(image_to_rgb(msg), RGB)
    assert bytes(rgb_to_image(RGB, HEADER, 'bgr8').data[:3]) == bytes(RGB[0, 0, ::-1])


def test_rgb_to_image_rejects_a_wrong_shape() -> None:
    with pytest.raises(DecodeError, match=r'got uint8 array of shape \(2, 3\); rgb8 needs uint8 \(H, W, 3\)'):
        rgb_to_image(RGB[..., 0], HEADER)


def encoded(rgb: np.ndarray, fmt: str) -> bytes:
    out = io.BytesIO()
    PILImage.fromarray(rgb).save(out, format=fmt)
    return out.getvalue()


def test_compressed_to_rgb_decodes_png_exactly_and_jpeg_closely() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    png = CompressedImage(format='png')
    png.data = encoded(rgb, 'PNG')
    np.testing.assert_array_equal(compressed_to_rgb(png), rgb)
    smooth = np.repeat(np.linspace(0, 255, 24, dtype=np.uint8)[None, :, None], 16, axis=0).repeat(3, axis=2)
    jpeg = CompressedImage(format='rgb8; jpeg compressed bgr8')
    jpeg.data = encoded(smooth, 'JPEG')
    decoded = compressed_to_rgb(jpeg)
    assert decoded.shape == (16, 24, 3)
    assert np.abs(decoded.astype(int) - smooth).max() <= 8  # JPEG is lossy


@pytest.mark.parametrize(
    ('fmt', 'data', 'match'),
    [
        ('jpeg', b'not an image', r"cannot decode 12 bytes of format 'jpeg'"),
        ('png', b'', r"data is empty \(format 'png'\)"),
        ('16UC1; compressedDepth png', b'\x00' * 12, 'is a depth image'),
    ],
)
def test_compressed_to_rgb_rejects_undecodable_data(fmt: str, data: bytes, match: str) -> None:
    msg = CompressedImage(format=fmt)
    msg.data = data
    with pytest.raises(DecodeError, match=match):
        compressed_to_rgb(msg)


# --- point clouds ---------------------------------------------------------

# Hand-packed layout: intensity first, then padding, z as float64, x, y as float32, a ring id.
FIELDS = [
    PointField(name='intensity', offset=0, datatype=PointField.FLOAT32, count=1),
    PointField(name='z', offset=8, datatype=PointField.FLOAT64, count=1),
    PointField(name='x', offset=16, datatype=PointField.FLOAT32, count=1),
    PointField(name='y', offset=20, datatype=PointField.FLOAT32, count=1),
    PointField(name='ring', offset=24, datatype=PointField.UINT16, count=1),
]
POINT_STEP = 32
XYZI = [(1.5, -2.0, 0.25, 10.0), (3.0, 4.0, -1.0, 20.0), (-5.5, 0.5, 2.0, 30.0), (0.0, 0.0, 0.0, 40.0)]


def pack_point(x: float, y: float, z: float, i: float, endian: str = '<') -> bytes:
    body = struct.pack(f'{endian}f4xdffH', i, z, x, y, 7)
    return body + bytes(POINT_STEP - len(body))


def cloud_msg(rows: list[list[tuple]], endian: str = '<', row_pad: int = 0, fields=None) -> PointCloud2:
    width = len(rows[0])
    msg = PointCloud2(height=len(rows), width=width, is_bigendian=endian == '>', point_step=POINT_STEP)
    msg.fields = FIELDS if fields is None else fields
    msg.row_step = width * POINT_STEP + row_pad
    msg.data = b''.join(b''.join(pack_point(*p, endian=endian) for p in row) + bytes(row_pad) for row in rows)
    return msg


def test_pointcloud2_to_xyzi_reads_any_field_order_offsets_and_padding() -> None:
    decoded = pointcloud2_to_xyzi(cloud_msg([XYZI]))
    assert decoded.points.dtype == np.float32 and decoded.points.shape == (4, 4)
    np.testing.assert_array_equal(decoded.points, np.array(XYZI, np.float32))
    assert (decoded.total_points, decoded.nonfinite_points, decoded.has_intensity) == (4, 0, True)


def test_pointcloud2_to_xyzi_reads_big_endian_clouds() -> None:
    np.testing.assert_array_equal(pointcloud2_to_xyzi(cloud_msg([XYZI], endian='>')).points, np.array(XYZI, np.float32))


def test_pointcloud2_to_xyzi_reads_organised_clouds_with_padded_rows_row_major() -> None:
    msg = cloud_msg([XYZI[:2], XYZI[2:]], row_pad=12)
    assert (msg.height, msg.width, msg.row_step) == (2, 2, 2 * POINT_STEP + 12)
    np.testing.assert_array_equal(pointcloud2_to_xyzi(msg).points, np.array(XYZI, np.float32))


def test_pointcloud2_to_xyzi_fills_zero_intensity_when_the_field_is_absent() -> None:
    decoded = pointcloud2_to_xyzi(cloud_msg([XYZI], fields=FIELDS[1:]))
    assert not decoded.has_intensity
    np.testing.assert_array_equal(decoded.points[:, 3], 0.0)
    np.testing.assert_array_equal(decoded.points[:, :3], np.array(XYZI, np.float32)[:, :3])


def test_pointcloud2_to_xyzi_reads_a_custom_intensity_field_name() -> None:
    fields = [PointField(name='reflectivity', offset=0, datatype=PointField.FLOAT32, count=1), *FIELDS[1:]]
    decoded = pointcloud2_to_xyzi(cloud_msg([XYZI], fields=fields), intensity_field='reflectivity')
    np.testing.assert_array_equal(decoded.points[:, 3], [10.0, 20.0, 30.0, 40.0])


@pytest.mark.parametrize('name', ['i', 'reflectivity', 'reflectance'])
def test_pointcloud2_to_xyzi_finds_intensity_under_the_names_drivers_use(name: str) -> None:
    fields = [PointField(name=name, offset=0, datatype=PointField.FLOAT32, count=1), *FIELDS[1:]]
    decoded = pointcloud2_to_xyzi(cloud_msg([XYZI], fields=fields))
    assert decoded.intensity_field == name
    np.testing.assert_array_equal(decoded.points[:, 3], [10.0, 20.0, 30.0, 40.0])


@pytest.mark.parametrize(
    ('datatype', 'endian'), [(PointField.FLOAT32, '<'), (PointField.UINT32, '<'), (PointField.FLOAT32, '>')]
)
def test_pointcloud2_to_xyzi_reads_a_grey_packed_rgb_field_as_intensity(datatype: int, endian: str) -> None:
    grey = np.array([0, 51, 255, 128], np.uint32)
    packed = (grey << 16) | (grey << 8) | grey
    rows = [pack_point(x, y, z, 0.0, endian=endian) for x, y, z, _ in XYZI]
    # The rgb bits go where the intensity float was (offset 0).
    data = b''.join(struct.pack(f'{endian}I', int(v)) + row[4:] for v, row in zip(packed, rows, strict=True))
    fields = [PointField(name='rgb', offset=0, datatype=datatype, count=1), *FIELDS[1:]]
    msg = PointCloud2(height=1, width=4, is_bigendian=endian == '>', point_step=POINT_STEP, row_step=4 * POINT_STEP)
    msg.fields, msg.data = fields, data
    decoded = pointcloud2_to_xyzi(msg)
    assert decoded.intensity_field == 'rgb'
    np.testing.assert_allclose(decoded.points[:, 3], grey / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(decoded.points[:, :3], np.array(XYZI, np.float32)[:, :3])


def test_pointcloud2_to_xyzi_prefers_intensity_over_other_names_and_lists_the_fields() -> None:
    fields = [*FIELDS, PointField(name='reflectivity', offset=28, datatype=PointField.UINT16, count=1)]
    decoded = pointcloud2_to_xyzi(cloud_msg([XYZI], fields=fields))
    assert decoded.intensity_field == 'intensity'
    assert decoded.fields == ('intensity', 'z', 'x', 'y', 'ring', 'reflectivity')
    absent = pointcloud2_to_xyzi(cloud_msg([XYZI], fields=FIELDS[1:]))
    assert absent.intensity_field is None and absent.fields == ('z', 'x', 'y', 'ring')


def test_pointcloud2_to_xyzi_rejects_a_packed_colour_that_is_not_4_bytes() -> None:
    fields = [PointField(name='rgb', offset=0, datatype=PointField.FLOAT64, count=1), *FIELDS[1:]]
    with pytest.raises(DecodeError, match="packed colour field 'rgb' has 8-byte values; expected 4"):
        pointcloud2_to_xyzi(cloud_msg([XYZI], fields=fields))


def test_pointcloud2_to_xyzi_drops_and_counts_non_finite_points() -> None:
    points = [
        (1.0, 2.0, 3.0, 1.0),
        (float('nan'), 0.0, 0.0, 2.0),
        (0.0, float('inf'), 0.0, 3.0),
        (4.0, 5.0, 6.0, float('nan')),
    ]
    decoded = pointcloud2_to_xyzi(cloud_msg([points]))
    assert (decoded.total_points, decoded.nonfinite_points) == (4, 2)
    np.testing.assert_array_equal(decoded.points, [[1.0, 2.0, 3.0, 1.0], [4.0, 5.0, 6.0, 0.0]])


@pytest.mark.parametrize(
    ('datatype', 'code'),
    [
        (PointField.INT8, 'b'),
        (PointField.UINT8, 'B'),
        (PointField.INT16, 'h'),
        (PointField.UINT16, 'H'),
        (PointField.INT32, 'i'),
        (PointField.UINT32, 'I'),
        (PointField.FLOAT32, 'f'),
        (PointField.FLOAT64, 'd'),
    ],
)
def test_pointcloud2_to_xyzi_reads_every_pointfield_datatype(datatype: int, code: str) -> None:
    values = [(1, 2, 3), (4, 5, 6), (7, 8, 9)] if code in 'bhi' else [(1, 2, 3), (100, 120, 127), (0, 1, 2)]
    if code in 'bhi':
        values[0] = (-1, -2, -3)
    size = struct.calcsize(code)
    fields = [PointField(name=n, offset=k * size, datatype=datatype, count=1) for k, n in enumerate('zyx')]
    msg = PointCloud2(height=1, width=3, point_step=3 * size + 1, row_step=3 * (3 * size + 1), is_bigendian=True)
    msg.fields = fields
    msg.data = b''.join(struct.pack(f'>{code}{code}{code}x', z, y, x) for x, y, z in values)
    np.testing.assert_array_equal(pointcloud2_to_xyzi(msg).points[:, :3], np.array(values, np.float32))


def test_pointcloud2_to_xyzi_returns_no_points_for_an_empty_cloud() -> None:
    msg = cloud_msg([XYZI])
    msg.width, msg.row_step, msg.data = 0, 0, b''
    decoded = pointcloud2_to_xyzi(msg)
    assert decoded.points.shape == (0, 4) and decoded.total_points == 0


def field(name: str, offset: int, datatype: int = PointField.FLOAT32, count: int = 1) -> PointField:
    return PointField(name=name, offset=offset, datatype=datatype, count=count)


@pytest.mark.parametrize(
    ('edit', 'match'),
    [
        (
            lambda m: setattr(m, 'fields', FIELDS[:1] + FIELDS[2:]),
            r"required field\(s\) \['z'\] missing; fields present",
        ),
        (lambda m: setattr(m, 'fields', [field('x', 0, 9), *FIELDS]), "field 'x' has datatype 9; expected 1..8"),
        (lambda m: setattr(m, 'fields', [field('x', 30), *FIELDS]), r"field 'x' \(offset 30, 4 bytes\) does not fit"),
        (lambda m: setattr(m, 'fields', [field('x', 16, count=5), *FIELDS]), r"'x' \(offset 16, 20 bytes\) does not"),
        (lambda m: setattr(m, 'point_step', 12), r"field 'x' \(offset 16, 4 bytes\) does not fit in point_step=12"),
        (lambda m: setattr(m, 'row_step', 100), r'row_step=100 is smaller than width \* point_step = 4 \* 32 = 128'),
        (lambda m: setattr(m, 'height', 2), r'data has 128 bytes; expected row_step \* height = 128 \* 2 = 256'),
    ],
)
def test_pointcloud2_to_xyzi_rejects_malformed_clouds(edit, match: str) -> None:
    msg = cloud_msg([XYZI])
    edit(msg)
    with pytest.raises(DecodeError, match=match):
        pointcloud2_to_xyzi(msg)


def test_pointcloud2_to_xyzi_ignores_broken_fields_it_does_not_read() -> None:
    # The first of duplicated names wins; unknown datatypes elsewhere do not matter.
    fields = [*FIELDS[:4], field('intensity', 0, 9), field('ring', 24, 42)]
    np.testing.assert_array_equal(
        pointcloud2_to_xyzi(cloud_msg([XYZI], fields=fields)).points, np.array(XYZI, np.float32)
    )


def test_xyzi_to_pointcloud2_round_trips_and_names_the_fourth_field() -> None:
    rng = np.random.default_rng(1)
    points = rng.normal(size=(50, 4)).astype(np.float32)
    msg = xyzi_to_pointcloud2(points, HEADER, value_name='score')
    assert [f.name for f in msg.fields] == ['x', 'y', 'z', 'score']
    assert (msg.height, msg.width, msg.point_step, msg.row_step, msg.is_dense) == (1, 50, 16, 800, True)
    assert msg.header.stamp == HEADER.stamp
    np.testing.assert_array_equal(pointcloud2_to_xyzi(msg, intensity_field='score').points, points)


def test_array_to_pointcloud2_packs_mixed_dtypes_that_decode_back() -> None:
    x = np.array([1.0, -2.0, 3.5])
    fields = {
        'ring': np.array([0, 1, 2], np.uint16),
        'x': x,
        'y': np.array([4, 5, 6], np.int32),
        'z': np.array([0.5, 0.25, np.nan], np.float32),
        'intensity': np.array([7, 8, 9], np.uint8),
    }
    msg = array_to_pointcloud2(fields, HEADER)
    assert [(f.name, f.offset, f.datatype) for f in msg.fields] == [
        ('ring', 0, PointField.UINT16),
        ('x', 2, PointField.FLOAT64),
        ('y', 10, PointField.INT32),
        ('z', 14, PointField.FLOAT32),
        ('intensity', 18, PointField.UINT8),
    ]
    assert (msg.point_step, msg.row_step, msg.is_dense, msg.is_bigendian) == (19, 57, False, False)
    decoded = pointcloud2_to_xyzi(msg)
    np.testing.assert_array_equal(decoded.points, [[1.0, 4.0, 0.5, 7.0], [-2.0, 5.0, 0.25, 8.0]])
    assert decoded.nonfinite_points == 1


def test_array_to_pointcloud2_rejects_unequal_lengths_and_unsupported_dtypes() -> None:
    with pytest.raises(DecodeError, match=r"equal length, got shapes \{'x': \(2,\), 'y': \(3,\)\}"):
        array_to_pointcloud2({'x': np.zeros(2), 'y': np.zeros(3)}, HEADER)
    with pytest.raises(DecodeError, match="field 'x' has dtype complex128"):
        array_to_pointcloud2({'x': np.zeros(2, complex)}, HEADER)
    with pytest.raises(DecodeError, match=r'points must be \(N, 4\), got shape \(5, 3\)'):
        xyzi_to_pointcloud2(np.zeros((5, 3)), HEADER)


DATATYPES = {'f': PointField.FLOAT32, 'd': PointField.FLOAT64}


@settings(max_examples=120, deadline=None)
@given(
    order=st.permutations(['x', 'y', 'z', 'intensity', 'ring']),
    kinds=st.tuples(*[st.sampled_from('fd')] * 4),
    gaps=st.lists(st.integers(0, 5), min_size=6, max_size=6),
    endian=st.sampled_from('<>'),
    height=st.integers(1, 3),
    width=st.integers(1, 4),
    row_pad=st.integers(0, 9),
    seed=st.integers(0, 2**16),
)
def test_pointcloud2_to_xyzi_recovers_xyz_for_random_layouts(
    order, kinds, gaps, endian, height, width, row_pad, seed
) -> None:
    codes = dict(zip(['x', 'y', 'z', 'intensity'], kinds, strict=True)) | {'ring': 'H'}
    fields, fmt, offset = [], endian, 0
    for name, gap in zip(order, gaps, strict=False):
        fmt += 'x' * gap
        offset += gap
        fields.append(PointField(name=name, offset=offset, datatype=DATATYPES.get(codes[name], 4), count=1))
        fmt += codes[name]
        offset += struct.calcsize(endian + codes[name])
    point_step = offset + gaps[-1]
    rng = np.random.default_rng(seed)
    expected = rng.uniform(-100, 100, (height * width, 4)).astype(np.float32)
    rows = []
    for r in range(height):
        row = b''
        for p in expected[r * width : (r + 1) * width]:
            values = {'x': p[0], 'y': p[1], 'z': p[2], 'intensity': p[3], 'ring': 3}
            row += struct.pack(fmt, *[values[n] for n in order]) + bytes(gaps[-1])
        rows.append(row + bytes(row_pad))
    msg = PointCloud2(height=height, width=width, point_step=point_step, row_step=width * point_step + row_pad)
    msg.is_bigendian = endian == '>'
    msg.fields = fields
    msg.data = b''.join(rows)
    decoded = pointcloud2_to_xyzi(msg)
    np.testing.assert_array_equal(decoded.points, expected)


@settings(max_examples=300, deadline=None)
@given(
    height=st.integers(0, 3),
    width=st.integers(0, 5),
    point_step=st.integers(0, 40),
    row_step=st.integers(0, 200),
    fields=st.lists(
        st.tuples(
            st.sampled_from(['x', 'y', 'z', 'intensity', 'ring']),
            st.integers(0, 40),
            st.integers(0, 10),
            st.integers(0, 3),
        ),
        max_size=6,
    ),
    data=st.binary(max_size=300),
    bigendian=st.booleans(),
)
def test_pointcloud2_to_xyzi_either_decodes_or_raises_decode_error(
    height, width, point_step, row_step, fields, data, bigendian
) -> None:
    msg = PointCloud2(height=height, width=width, point_step=point_step, row_step=row_step, is_bigendian=bigendian)
    msg.fields = [PointField(name=n, offset=o, datatype=d, count=c) for n, o, d, c in fields]
    msg.data = data
    try:
        decoded = pointcloud2_to_xyzi(msg)
    except DecodeError:
        return
    assert decoded.points.shape == (decoded.total_points - decoded.nonfinite_points, 4)
    assert np.isfinite(decoded.points).all()


@settings(max_examples=300, deadline=None)
@given(
    height=st.integers(0, 4),
    width=st.integers(0, 4),
    step=st.integers(0, 40),
    encoding=st.sampled_from(['rgb8', 'bgra8', 'mono8', 'rgb16', 'mono16', '8UC3', '']),
    data=st.binary(max_size=120),
    bigendian=st.booleans(),
)
def test_image_to_rgb_either_decodes_or_raises_decode_error(height, width, step, encoding, data, bigendian) -> None:
    msg = Image(height=height, width=width, step=step, encoding=encoding, is_bigendian=bigendian)
    msg.data = data
    try:
        rgb = image_to_rgb(msg)
    except DecodeError:
        return
    assert rgb.shape == (height, width, 3) and rgb.dtype == np.uint8


# --- camera info, grids, markers, stamps ----------------------------------


def test_camera_info_to_model_reads_k_or_p() -> None:
    info = CameraInfo(width=768, height=512)
    info.k = [384.0, 0.0, 384.0, 0.0, 385.0, 256.0, 0.0, 0.0, 1.0]
    info.p = [380.0, 0.0, 383.0, 0.0, 0.0, 381.0, 255.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    model = camera_info_to_model(info)
    assert (model.width, model.height, model.fx, model.fy, model.cx, model.cy) == (768, 512, 384, 385, 384, 256)
    rect = camera_info_to_model(info, use_projection=True)
    assert (rect.fx, rect.fy, rect.cx, rect.cy) == (380, 381, 383, 255)


def test_camera_info_to_model_rejects_uncalibrated_or_invalid_cameras() -> None:
    info = CameraInfo(width=768, height=512)
    with pytest.raises(DecodeError, match='k is all zeros'):
        camera_info_to_model(info)
    info.k = [-1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0]
    with pytest.raises(DecodeError, match='invalid camera .*focal lengths must be positive'):
        camera_info_to_model(info)
    with pytest.raises(DecodeError, match='k has 4 values; expected 9'):
        camera_info_to_model(SimpleNamespace(width=1, height=1, k=[1.0, 0.0, 0.0, 1.0]))


def test_make_occupancy_grid_sets_origin_resolution_and_row_major_data() -> None:
    grid = GridSpec(x_min_m=-2.0, x_max_m=2.0, y_min_m=-1.0, y_max_m=2.0, z_min_m=-1.0, z_max_m=1.0)
    data = np.arange(grid.ny * grid.nx).reshape(grid.ny, grid.nx).astype(np.int8) - 1
    msg = make_occupancy_grid(data, grid, HEADER, z_m=-1.5)
    info = msg.info
    assert (info.width, info.height, info.resolution) == (8, 6, 0.5)
    assert (info.origin.position.x, info.origin.position.y, info.origin.position.z) == (-2.0, -1.0, -1.5)
    assert info.origin.orientation.w == 1.0
    assert info.map_load_time == HEADER.stamp and msg.header.frame_id == 'lidar'
    assert list(msg.data) == data.reshape(-1).tolist()
    assert msg.data[1 * 8 + 3] == data[1, 3]  # row iy = 1, column ix = 3


def test_make_occupancy_grid_rejects_a_transposed_array() -> None:
    grid = GridSpec(x_min_m=-2.0, x_max_m=2.0, y_min_m=-1.0, y_max_m=2.0, z_min_m=-1.0, z_max_m=1.0)
    with pytest.raises(DecodeError, match=r'data is int8 \(8, 6\); expected int8 \(ny, nx\) = \(6, 8\)'):
        make_occupancy_grid(np.zeros((8, 6), np.int8), grid, HEADER)


def test_markers_to_msg_builds_boxes_texts_and_deletes() -> None:
    specs = [
        MarkerSpec(id=3, kind='box', action='delete'),
        MarkerSpec(
            id=4,
            kind='box',
            position_m=(1.0, 2.0, 3.0),
            scale_m=(0.5, 0.6, 0.7),
            color_rgba=(1.0, 0.5, 0.0, 0.5),
            lifetime_s=1.25,
        ),
        MarkerSpec(id=4, kind='text', position_m=(1.0, 2.0, 4.0), text='anomaly 0.93', lifetime_s=0.5),
    ]
    markers = markers_to_msg(specs, HEADER, delete_all_first=True).markers
    assert [m.action for m in markers] == [Marker.DELETEALL, Marker.DELETE, Marker.ADD, Marker.ADD]
    delete, box, text = markers[1:]
    assert (delete.ns, delete.id) == ('anomaly_boxes', 3)
    assert (box.ns, box.id, box.type) == ('anomaly_boxes', 4, Marker.CUBE)
    assert (box.pose.position.x, box.pose.position.y, box.pose.position.z) == (1.0, 2.0, 3.0)
    assert box.pose.orientation.w == 1.0
    assert (box.scale.x, box.scale.y, box.scale.z) == pytest.approx((0.5, 0.6, 0.7))
    assert (box.color.r, box.color.g, box.color.b, box.color.a) == (1.0, 0.5, 0.0, 0.5)
    assert (box.lifetime.sec, box.lifetime.nanosec) == (1, 250_000_000)
    assert (text.ns, text.id, text.type, text.text) == ('anomaly_labels', 4, Marker.TEXT_VIEW_FACING, 'anomaly 0.93')
    assert (text.lifetime.sec, text.lifetime.nanosec) == (0, 500_000_000)
    assert all(m.header.frame_id == 'lidar' and m.header.stamp == HEADER.stamp for m in markers)


def test_stamps_convert_to_nanoseconds_and_back() -> None:
    stamp = ns_to_stamp(1_700_000_000_123_456_789)
    assert (stamp.sec, stamp.nanosec) == (1_700_000_000, 123_456_789)
    assert stamp_to_ns(stamp) == 1_700_000_000_123_456_789
