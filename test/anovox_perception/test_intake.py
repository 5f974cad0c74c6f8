"""InputIntake: bad and odd input is refused or noted (warning naming the field, counter), never raised.

Named cases for each input kind, then property-based fuzzing (500 messages per input kind):
whatever arrives, the intake returns a usable message or None with a counted warning, and the
next good message goes through.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import Header

from anovox_perception.core import pipeline_stats as ps
from anovox_perception.core.detector import CameraFrame, CloudFrame
from anovox_perception.core.intake import InputIntake, IntakeLimits
from anovox_perception.core.sync import LidarDrivenSync
from anovox_perception.ros import msg_codec

NOW_NS = 1_700_000_000 * 1_000_000_000
FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Recorder:
    """The intake under test, with its counters and every warning it logged."""

    def __init__(self, **limits: float) -> None:
        self.stats = ps.PipelineStats()
        self.warnings: list[tuple[str, str]] = []
        self.intake = InputIntake(
            self.stats, lambda kind, text: self.warnings.append((kind, text)), lambda: NOW_NS, IntakeLimits(**limits)
        )

    def counts(self) -> dict[str, int]:
        return self.stats.snapshot().totals


def header(stamp_ns: int = NOW_NS, frame_id: str = 'lidar') -> Header:
    return Header(stamp=msg_codec.ns_to_stamp(stamp_ns), frame_id=frame_id)


def good_cloud(stamp_ns: int = NOW_NS, n: int = 50) -> PointCloud2:
    points = np.random.default_rng(n).uniform(-10, 10, size=(n, 4)).astype(np.float32)
    return msg_codec.xyzi_to_pointcloud2(points, header(stamp_ns))


def good_image(stamp_ns: int = NOW_NS, width: int = 8, height: int = 6) -> Image:
    return msg_codec.rgb_to_image(np.full((height, width, 3), 7, np.uint8), header(stamp_ns, 'camera'))


def calibrated_info(width: int = 8, height: int = 6, fx: float = 4.0) -> CameraInfo:
    info = CameraInfo(header=header(frame_id='camera'), width=width, height=height)
    info.k = [fx, 0.0, width / 2, 0.0, fx, height / 2, 0.0, 0.0, 1.0]
    return info


def xyz_fields(datatype: int = PointField.FLOAT32) -> list[PointField]:
    return [PointField(name=n, offset=4 * i, datatype=datatype, count=1) for i, n in enumerate('xyz')]


def cloud_with(**changes) -> PointCloud2:
    msg = good_cloud()
    for name, value in changes.items():
        setattr(msg, name, value)
    return msg


def image_with(**changes) -> Image:
    msg = good_image()
    for name, value in changes.items():
        setattr(msg, name, value)
    return msg


def nan_cloud() -> PointCloud2:
    return msg_codec.xyzi_to_pointcloud2(np.full((10, 4), np.nan, np.float32), header())


def big_endian_garbage() -> PointCloud2:
    # Little-endian bytes declared big-endian: every float decodes to nonsense, none may crash.
    msg = good_cloud()
    msg.is_bigendian = True
    return msg


BAD_CLOUDS = {
    'missing z': (lambda: cloud_with(fields=xyz_fields()[:2]), "required field(s) ['z'] missing"),
    'unknown datatype': (
        lambda: cloud_with(fields=[*xyz_fields()[:2], PointField(name='z', offset=8, datatype=13, count=1)]),
        "field 'z' has datatype 13",
    ),
    'offset past point_step': (
        lambda: cloud_with(fields=[*xyz_fields()[:2], PointField(name='z', offset=14, datatype=7, count=1)]),
        "field 'z' (offset 14, 4 bytes) does not fit in point_step=16",
    ),
    'row_step smaller than a row': (lambda: cloud_with(row_step=8), 'row_step=8 is smaller than width * point_step'),
    'truncated data': (lambda: cloud_with(data=bytes(40)), 'data has 40 bytes; expected row_step * height'),
    'all points NaN': (nan_cloud, 'all 10 points have a non-finite x, y or z'),
    'zero points': (lambda: cloud_with(width=0, row_step=0, data=b''), 'empty (width * height = 0)'),
    '5 million points': (
        lambda: cloud_with(width=5_000_000, row_step=16 * 5_000_000, data=b''),
        'width * height = 5000000 * 1 = 5000000 points, more than the 4194304 accepted',
    ),
}


@pytest.mark.parametrize('case', list(BAD_CLOUDS))
def test_a_bad_cloud_is_refused_with_a_counted_warning_naming_the_field(case):
    make, expected = BAD_CLOUDS[case]
    rec = Recorder()
    assert rec.intake.cloud(make()) is None
    assert rec.counts()[ps.BAD_INPUT_PREFIX + 'points'] == 1
    ((kind, text),) = rec.warnings
    assert kind == 'points' and expected in text, text
    after = rec.intake.cloud(good_cloud(NOW_NS + 1))
    assert isinstance(after.payload, CloudFrame) and after.payload.points.shape == (50, 4)


def test_a_big_endian_cloud_is_decoded_as_big_endian_and_non_finite_points_are_dropped():
    rec = Recorder()
    out = rec.intake.cloud(big_endian_garbage())
    if out is not None:
        assert np.isfinite(out.payload.points).all()
    points = np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)
    msg = msg_codec.xyzi_to_pointcloud2(points, header())
    msg.is_bigendian = True
    msg.data = points.astype('>f4').tobytes()
    np.testing.assert_array_equal(rec.intake.cloud(msg).payload.points, points)


def test_a_dense_cloud_with_nan_points_is_noted_and_its_finite_points_kept():
    points = np.array([[1, 2, 3, 0.5], [np.nan, 0, 0, 1], [4, 5, 6, 0.25]], np.float32)
    msg = msg_codec.xyzi_to_pointcloud2(points, header())
    msg.is_dense = True
    rec = Recorder()
    out = rec.intake.cloud(msg)
    np.testing.assert_array_equal(out.payload.points, points[[0, 2]])
    counts = rec.counts()
    assert counts[ps.NONFINITE_POINTS] == 1 and counts[ps.INPUT_NOTE_PREFIX + 'is_dense'] == 1
    assert 'is_dense is true but 1 of 3 points' in rec.warnings[0][1]


def test_a_cloud_without_intensity_is_used_with_a_counted_warning_unless_the_model_ignores_intensity():
    msg = cloud_with(fields=xyz_fields())
    rec = Recorder()
    assert rec.intake.cloud(msg) is not None
    assert rec.counts()[ps.INPUT_NOTE_PREFIX + 'no_intensity'] == 1
    assert (
        "no intensity field (looked for intensity, i, reflectivity, reflectance, rgb; fields are ['x', 'y', 'z']"
        in (rec.warnings[0][1])
    )
    quiet = Recorder()
    quiet.intake.intensity_used = False
    assert quiet.intake.cloud(msg) is not None and quiet.warnings == []


BAD_IMAGES = {
    'unknown encoding': (lambda: image_with(encoding='yuv422'), "encoding 'yuv422' is not supported"),
    'wrong encoding for the data': (lambda: image_with(encoding='rgb16'), 'step=24 is smaller than width'),
    'step smaller than a row': (lambda: image_with(step=10), 'step=10 is smaller than width * bytes per pixel'),
    'truncated data': (lambda: image_with(data=bytes(20)), 'data has 20 bytes; expected step * height'),
    'zero size': (lambda: image_with(width=0, step=0), 'empty image (width=0, height=6)'),
    'huge size': (
        lambda: image_with(width=100_000, height=100_000, step=300_000),
        'width * height = 100000 * 100000 = 10000000000 pixels, more than',
    ),
}


@pytest.mark.parametrize('case', list(BAD_IMAGES))
def test_a_bad_image_is_refused_with_a_counted_warning_naming_the_field(case):
    make, expected = BAD_IMAGES[case]
    rec = Recorder()
    assert rec.intake.image(make()) is None
    assert rec.counts()[ps.BAD_INPUT_PREFIX + 'image'] == 1
    assert expected in rec.warnings[0][1], rec.warnings
    after = rec.intake.image(good_image(NOW_NS + 1))
    assert isinstance(after.payload, CameraFrame) and after.payload.rgb.shape == (6, 8, 3)


def test_undecodable_compressed_images_are_refused_and_counted():
    rec = Recorder()
    bad = CompressedImage(header=header(), format='jpeg')
    bad.data = b'\xff\xd8 not really a jpeg'
    assert rec.intake.compressed_image(bad) is None
    assert rec.counts()[ps.BAD_INPUT_PREFIX + 'compressed_image'] == 1
    buf = io.BytesIO()
    PILImage.fromarray(np.zeros((6, 8, 3), np.uint8)).save(buf, format='PNG')
    good = CompressedImage(header=header(), format='png')
    good.data = buf.getvalue()
    assert rec.intake.compressed_image(good).payload.rgb.shape == (6, 8, 3)


@pytest.mark.parametrize(
    ('make', 'expected'),
    [
        (lambda: calibrated_info(fx=0.0), 'CameraInfo: invalid camera'),
        (lambda: CameraInfo(width=8, height=6), 'k is all zeros (camera not calibrated)'),
        (lambda: calibrated_info(fx=float('nan')), 'CameraInfo: invalid camera'),
        (lambda: calibrated_info(width=0), 'CameraInfo: invalid camera'),
    ],
)
def test_a_bad_camera_info_is_refused_with_a_counted_warning(make, expected):
    rec = Recorder()
    assert rec.intake.camera_info(make()) is None
    assert rec.counts()[ps.BAD_INPUT_PREFIX + 'camera_info'] == 1
    assert expected in rec.warnings[0][1], rec.warnings
    assert rec.intake.camera_info(calibrated_info()).fx == 4.0


def test_camera_info_of_another_size_than_the_images_is_noted():
    rec = Recorder()
    rec.intake.camera_info(calibrated_info(width=640, height=480))
    assert rec.intake.image(good_image()) is not None
    assert rec.counts()[ps.INPUT_NOTE_PREFIX + 'camera_info_size'] == 1
    assert 'is 8 x 6 but CameraInfo width x height is 640 x 480' in rec.warnings[0][1]


def test_repeated_backward_jumping_and_future_stamps_are_noted_and_still_used():
    rec = Recorder(future_tolerance_s=60.0, jump_tolerance_s=1.0)
    ms = 1_000_000
    for stamp in (NOW_NS, NOW_NS, NOW_NS - 5 * ms, NOW_NS - 10_000 * ms, NOW_NS + 3_600_000 * ms):
        assert rec.intake.cloud(good_cloud(stamp)) is not None
    counts = rec.counts()
    assert counts[ps.INPUT_NOTE_PREFIX + 'stamp_repeated.points'] == 1
    assert counts[ps.INPUT_NOTE_PREFIX + 'stamp_out_of_order.points'] == 1
    assert counts[ps.INPUT_NOTE_PREFIX + 'stamp_jump_back.points'] == 1
    assert counts[ps.INPUT_NOTE_PREFIX + 'stamp_future.points'] == 1
    texts = ' | '.join(text for _, text in rec.warnings)
    for part in (
        'repeats the previous one',
        'is 5.0 ms before the previous one',
        'jumped back 9.995 s',
        '3600 s ahead',
    ):
        assert part in texts


def test_the_snapshot_reports_noted_input_and_assess_warns_about_it():
    rec = Recorder()
    rec.intake.cloud(cloud_with(fields=xyz_fields()))
    snap = rec.stats.snapshot()
    assert snap.input_notes == {'no_intensity': 1}
    level, message = ps.assess(snap, expected_rate_hz=0.0, max_latency_ms=1000.0)
    assert level == ps.WARN and 'suspicious input: no_intensity x1' in message


# --- fuzzing ----------------------------------------------------------------

FIELD_NAMES = st.sampled_from(['x', 'y', 'z', 'intensity', 'i', 'reflectivity', 'rgb', 'ring', ''])
POINT_FIELDS = st.builds(
    PointField,
    name=FIELD_NAMES,
    offset=st.integers(0, 40),
    datatype=st.integers(0, 12),
    count=st.integers(0, 3),
)


@st.composite
def clouds(draw) -> PointCloud2:
    width, height = draw(st.integers(0, 12)), draw(st.integers(0, 3))
    point_step = draw(st.integers(0, 40))
    row_step = draw(st.one_of(st.just(width * point_step), st.integers(0, 500)))
    needed = row_step * height
    size = draw(st.one_of(st.just(needed), st.integers(0, max(needed * 2, 8))))
    raw = draw(st.binary(min_size=size, max_size=size)) if size <= 64 else None
    data = raw if raw is not None else np.random.default_rng(draw(st.integers(0, 99))).bytes(size)
    fields = draw(st.one_of(st.lists(POINT_FIELDS, max_size=6), st.just(xyz_fields(draw(st.integers(1, 8))))))
    msg = PointCloud2(height=height, width=width, point_step=point_step, row_step=row_step)
    msg.header = header(draw(st.integers(0, 2**40)) * 1000, 'lidar')
    msg.fields = fields
    msg.is_bigendian = draw(st.booleans())
    msg.is_dense = draw(st.booleans())
    msg.data = data
    return msg


def assert_refused_or_usable(rec: Recorder, out, kind: str, before: int) -> None:
    refused = rec.stats.total(ps.BAD_INPUT_PREFIX + kind) - before
    if out is None:
        assert refused == 1 and rec.warnings and rec.warnings[-1][0] == kind
    else:
        assert refused == 0


@FUZZ
@given(msg=clouds())
def test_fuzzed_clouds_never_raise_and_give_finite_points_or_a_counted_refusal(msg):
    rec = Recorder()
    out = rec.intake.cloud(msg)
    assert_refused_or_usable(rec, out, 'points', 0)
    if out is not None:
        points = out.payload.points
        assert isinstance(out.payload, CloudFrame) and points.dtype == np.float32 and points.shape[1] == 4
        assert points.shape[0] > 0 and np.isfinite(points).all()
    assert rec.intake.cloud(good_cloud(NOW_NS + 10**9)) is not None, 'the next good cloud goes through'


@st.composite
def images(draw) -> Image:
    encoding = draw(st.sampled_from([*msg_codec.IMAGE_ENCODINGS, 'yuv422', '8UC3', '', 'RGB8', 'bayer_rggb8']))
    width, height = draw(st.integers(0, 16)), draw(st.integers(0, 16))
    step = draw(st.one_of(st.integers(0, 80), st.just(width * 3)))
    size = draw(st.one_of(st.just(step * height), st.integers(0, 300)))
    msg = Image(header=header(draw(st.integers(0, 2**40)) * 1000, 'camera'), width=width, height=height, step=step)
    msg.encoding = encoding
    msg.is_bigendian = draw(st.integers(0, 1))
    msg.data = draw(st.binary(min_size=size, max_size=size))
    return msg


@FUZZ
@given(msg=images())
def test_fuzzed_images_never_raise_and_give_rgb_or_a_counted_refusal(msg):
    rec = Recorder()
    out = rec.intake.image(msg)
    assert_refused_or_usable(rec, out, 'image', 0)
    if out is not None:
        rgb = out.payload.rgb
        assert (
            rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.shape[:2] == (msg.height, msg.width)
        )
    assert rec.intake.image(good_image(NOW_NS + 10**9)) is not None


@FUZZ
@given(data=st.binary(max_size=200), fmt=st.sampled_from(['jpeg', 'png', 'rgb8; jpeg compressed bgr8', '', 'x']))
def test_fuzzed_compressed_images_never_raise(data, fmt):
    rec = Recorder()
    msg = CompressedImage(header=header(), format=fmt)
    msg.data = data
    assert_refused_or_usable(rec, rec.intake.compressed_image(msg), 'compressed_image', 0)


FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -1.0, 1e308, 384.0]))


@FUZZ
@given(k=st.lists(FLOATS, min_size=9, max_size=9), width=st.integers(0, 5000), height=st.integers(0, 5000))
def test_fuzzed_camera_infos_never_raise_and_give_a_valid_camera_or_a_counted_refusal(k, width, height):
    rec = Recorder()
    info = CameraInfo(header=header(), width=width, height=height)
    info.k = k
    camera = rec.intake.camera_info(info)
    assert_refused_or_usable(rec, camera, 'camera_info', 0)
    if camera is not None:
        assert all(math.isfinite(v) for v in (camera.fx, camera.fy, camera.cx, camera.cy))
        assert camera.fx > 0 and camera.fy > 0 and camera.width > 0 and camera.height > 0


STAMPS = st.tuples(st.integers(0, 2**31 - 1), st.integers(0, 999_999_999))


@FUZZ
@given(events=st.lists(st.tuples(st.sampled_from(['points', 'image']), STAMPS), min_size=1, max_size=12))
def test_fuzzed_stamps_never_raise_and_every_cloud_is_accounted_for(events):
    rec = Recorder()
    sync = LidarDrivenSync(timeout_s=0.05, max_pending_clouds=3)
    for topic, (sec, nanosec) in events:
        stamp_ns = sec * 1_000_000_000 + nanosec
        if topic == 'points':
            out = rec.intake.cloud(good_cloud(stamp_ns, n=5))
            sync.add_points(out)
        else:
            sync.add_image(rec.intake.image(good_image(stamp_ns)))
    sync.poll(now_ns=2**62)
    counts = sync.counters()
    assert counts['pending'] == 0
    assert (
        counts['paired'] + counts['lidar_only'] + counts['skipped'] + counts['dropped_on_reset'] == counts['clouds_in']
    )
    assert rec.stats.total(ps.BAD_INPUT_PREFIX + 'points') == 0
