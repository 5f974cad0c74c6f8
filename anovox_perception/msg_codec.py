"""ROS 2 messages <-> numpy arrays, without cv_bridge or sensor_msgs_py.

Decoding reads the message buffer in place (``np.frombuffer`` plus strides), so
images come back as views of ``msg.data`` where the encoding allows: copy them
(or pass ``copy=True``) before writing into them. Messages from rclpy (``data`` an
``array.array``) and from rosbags (``data`` a numpy array) are both accepted;
only the attributes of the message are used.

Every malformed input raises :class:`~anovox_perception.errors.DecodeError` naming
the field, its value and what was expected; numpy never gets to raise first.
"""

from __future__ import annotations

import array
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from builtin_interfaces.msg import Duration, Time
from nav_msgs.msg import OccupancyGrid
from PIL import Image as PILImage
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from anovox_perception.errors import DecodeError, GeometryError
from anovox_perception.geometry import CameraModel, GridSpec
from anovox_perception.tracker import MarkerSpec

__all__ = [
    'IMAGE_ENCODINGS',
    'INTENSITY_FIELDS',
    'MARKER_NAMESPACES',
    'DecodedCloud',
    'array_to_pointcloud2',
    'camera_info_to_model',
    'compressed_to_rgb',
    'image_to_rgb',
    'make_occupancy_grid',
    'markers_to_msg',
    'ns_to_stamp',
    'pointcloud2_to_xyzi',
    'rgb_to_image',
    'stamp_to_ns',
    'xyzi_to_pointcloud2',
]

# encoding -> (channels, bytes per channel, channel order)
IMAGE_ENCODINGS: dict[str, tuple[int, int, str]] = {
    'rgb8': (3, 1, 'rgb'),
    'bgr8': (3, 1, 'bgr'),
    'rgba8': (4, 1, 'rgb'),
    'bgra8': (4, 1, 'bgr'),
    'mono8': (1, 1, 'mono'),
    'rgb16': (3, 2, 'rgb'),
    'bgr16': (3, 2, 'bgr'),
    'rgba16': (4, 2, 'rgb'),
    'bgra16': (4, 2, 'bgr'),
    'mono16': (1, 2, 'mono'),
}

# sensor_msgs/PointField datatype -> numpy type code (endianness added per message).
_FIELD_TYPES: dict[int, str] = {
    PointField.INT8: 'i1',
    PointField.UINT8: 'u1',
    PointField.INT16: 'i2',
    PointField.UINT16: 'u2',
    PointField.INT32: 'i4',
    PointField.UINT32: 'u4',
    PointField.FLOAT32: 'f4',
    PointField.FLOAT64: 'f8',
}
_NUMPY_TO_FIELD: dict[str, int] = {np.dtype(code).str[1:]: dt for dt, code in _FIELD_TYPES.items()}

# Names LiDAR drivers and tools give the return strength, in the order they are looked for:
# Velodyne/PCL, Livox/Hesai short form, Ouster, some Open3D and Leica exports, and Open3D's
# grey colours (AnoVox's benchmark clouds store intensity as r = g = b).
INTENSITY_FIELDS = ('intensity', 'i', 'reflectivity', 'reflectance', 'rgb')
_PACKED_COLOUR_FIELDS = ('rgb', 'rgba')

MARKER_NAMESPACES = {'box': 'anomaly_boxes', 'text': 'anomaly_labels'}
_NS_PER_S = 1_000_000_000


def stamp_to_ns(stamp: Any) -> int:
    """Nanoseconds of a ``builtin_interfaces/Time`` (anything with ``sec`` and ``nanosec``)."""
    return int(stamp.sec) * _NS_PER_S + int(stamp.nanosec)


def ns_to_stamp(stamp_ns: int) -> Time:
    """A ``builtin_interfaces/Time`` from nanoseconds."""
    sec, nanosec = divmod(int(stamp_ns), _NS_PER_S)
    return Time(sec=sec, nanosec=nanosec)


def _as_bytes(data: Any, where: str) -> np.ndarray:
    """A flat uint8 view of a message's ``data`` (array.array, bytes, numpy array or list)."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:
        pass
    try:
        # A plain sequence of ints (e.g. a message built by hand): one copy.
        return np.asarray(data, dtype=np.uint8).reshape(-1)
    except (TypeError, ValueError, OverflowError) as err:
        msg = f'{where}: data of type {type(data).__name__} is not a byte buffer or a sequence of values 0..255'
        raise DecodeError(msg) from err


def _to_uint8_array(values: np.ndarray) -> array.array:
    """The ``array.array('B')`` rclpy stores for ``uint8[]`` fields (assigned without per-item checks)."""
    out = array.array('B')
    out.frombytes(np.ascontiguousarray(values).reshape(-1).view(np.uint8))
    return out


def _dims(msg: Any, where: str, *names: str) -> list[int]:
    out = []
    for name in names:
        value = int(getattr(msg, name))
        if value < 0:
            msg_ = f'{where}: {name}={value} must be >= 0'
            raise DecodeError(msg_)
        out.append(value)
    return out


# --- images ---------------------------------------------------------------


def image_to_rgb(msg: Image, copy: bool = False) -> np.ndarray:
    """Decode a ``sensor_msgs/Image`` to RGB.

    Args:
        msg: the image; encodings in :data:`IMAGE_ENCODINGS`. Row padding (``step``)
            and ``is_bigendian`` (16-bit encodings) are honoured.
        copy: return a C-contiguous copy instead of a view where one is possible.

    Returns:
        (H, W, 3) uint8. For 8-bit encodings without ``copy`` this is a view of
        ``msg.data`` (read-only when the buffer is). 16-bit values keep their
        high byte.

    Raises:
        DecodeError: unknown encoding, empty image, ``step`` too small, data too short.
    """
    encoding = str(msg.encoding).strip().lower()
    if encoding not in IMAGE_ENCODINGS:
        msg_ = f'Image: encoding {msg.encoding!r} is not supported; expected one of {sorted(IMAGE_ENCODINGS)}'
        raise DecodeError(msg_)
    channels, depth, order = IMAGE_ENCODINGS[encoding]
    height, width, step = _dims(msg, 'Image', 'height', 'width', 'step')
    if height == 0 or width == 0:
        msg_ = f'Image: empty image (width={width}, height={height})'
        raise DecodeError(msg_)
    pixel_bytes = channels * depth
    if step < width * pixel_bytes:
        msg_ = (
            f'Image: step={step} is smaller than width * bytes per pixel = {width} * {pixel_bytes} = '
            f'{width * pixel_bytes} for encoding {encoding!r}'
        )
        raise DecodeError(msg_)
    buf = _as_bytes(msg.data, 'Image')
    if buf.size < step * height:
        msg_ = f'Image: data has {buf.size} bytes; expected step * height = {step} * {height} = {step * height}'
        raise DecodeError(msg_)
    dtype = np.dtype(np.uint8) if depth == 1 else np.dtype('>u2' if msg.is_bigendian else '<u2')
    # Rows are `step` bytes apart: a strided view handles padding without copying.
    pixels = np.ndarray((height, width, channels), dtype=dtype, buffer=buf, strides=(step, pixel_bytes, depth))
    if order == 'rgb':
        rgb = pixels[..., :3]
    elif order == 'bgr':
        rgb = pixels[..., 2::-1]
    else:
        rgb = np.broadcast_to(pixels, (height, width, 3))
    if depth == 2:
        return (rgb >> 8).astype(np.uint8)
    return np.array(rgb, copy=True, order='C') if copy else rgb


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` (JPEG, PNG or anything Pillow reads) to (H, W, 3) uint8 RGB.

    Raises:
        DecodeError: empty data, a compressedDepth image, or bytes Pillow cannot decode.
    """
    fmt = str(msg.format)
    if 'compresseddepth' in fmt.lower():
        msg_ = f'CompressedImage: format {fmt!r} is a depth image; expected a colour JPEG or PNG'
        raise DecodeError(msg_)
    buf = _as_bytes(msg.data, 'CompressedImage')
    if buf.size == 0:
        msg_ = f'CompressedImage: data is empty (format {fmt!r})'
        raise DecodeError(msg_)
    try:
        with PILImage.open(io.BytesIO(buf.tobytes())) as img:
            return np.asarray(img.convert('RGB'))
    except (OSError, SyntaxError, ValueError, PILImage.DecompressionBombError) as err:
        msg_ = f'CompressedImage: cannot decode {buf.size} bytes of format {fmt!r}: {err}'
        raise DecodeError(msg_) from err


def rgb_to_image(rgb: np.ndarray, header: Header, encoding: str = 'rgb8') -> Image:
    """Encode an (H, W, 3) uint8 RGB array (or (H, W) for ``mono8``) as a ``sensor_msgs/Image``.

    Raises:
        DecodeError: wrong shape or dtype, or an encoding other than rgb8, bgr8, mono8.
    """
    rgb = np.asarray(rgb)
    expected = {'rgb8': 3, 'bgr8': 3, 'mono8': None}
    if encoding not in expected:
        msg_ = f'rgb_to_image: encoding {encoding!r} is not supported; expected one of {sorted(expected)}'
        raise DecodeError(msg_)
    want_3 = expected[encoding] == 3
    if rgb.dtype != np.uint8 or rgb.ndim != (3 if want_3 else 2) or (want_3 and rgb.shape[2] != 3):
        msg_ = f'rgb_to_image: got {rgb.dtype} array of shape {rgb.shape}; {encoding} needs uint8 ' + (
            '(H, W, 3)' if want_3 else '(H, W)'
        )
        raise DecodeError(msg_)
    if encoding == 'bgr8':
        rgb = rgb[..., ::-1]
    out = Image(header=header, height=rgb.shape[0], width=rgb.shape[1], encoding=encoding, is_bigendian=0)
    out.step = rgb.shape[1] * (3 if want_3 else 1)
    out.data = _to_uint8_array(rgb)
    return out


# --- point clouds ---------------------------------------------------------


@dataclass(frozen=True)
class DecodedCloud:
    """Result of :func:`pointcloud2_to_xyzi`.

    Attributes:
        points: (N, 4) float32 x, y, z, intensity (0 when the cloud has none);
            points with a non-finite coordinate removed, row-major order kept.
        total_points: width * height of the message.
        nonfinite_points: points dropped for a NaN or infinite x, y or z.
        intensity_field: the field the intensity was read from, or None when the cloud has none.
        fields: the names of the message's fields, in order.
    """

    points: np.ndarray
    total_points: int
    nonfinite_points: int
    intensity_field: str | None = None
    fields: tuple[str, ...] = ()

    @property
    def has_intensity(self) -> bool:
        """Whether an intensity field was present."""
        return self.intensity_field is not None


def _packed_xyzi(
    buf: np.ndarray,
    names: list[str],
    formats: list[np.dtype],
    offsets: list[int],
    shape: tuple[int, int],
    strides: tuple[int, int],
) -> DecodedCloud | None:
    """The decode of the common layout (x, y, z, intensity: consecutive little-endian float32), else None.

    Each point's 16 bytes are gathered as one opaque item straight from the buffer,
    finite points only: several times faster than the per-field copy plus row filter
    of the general path, with the same result.
    """
    if names != ['x', 'y', 'z', 'i'] or any(fmt != np.dtype('<f4') for fmt in formats):
        return None
    if offsets != list(range(offsets[0], offsets[0] + 16, 4)) or np.dtype('<f4') != np.dtype('=f4'):
        return None
    floats = np.ndarray((*shape, 4), dtype=np.float32, buffer=buf, offset=offsets[0], strides=(*strides, 4))
    finite = np.isfinite(floats[..., 0]) & np.isfinite(floats[..., 1]) & np.isfinite(floats[..., 2])
    records = np.ndarray(shape, dtype=np.dtype((np.void, 16)), buffer=buf, offset=offsets[0], strides=strides)
    points = records[finite].view(np.float32).reshape(-1, 4)
    bad_intensity = ~np.isfinite(points[:, 3])
    if bad_intensity.any():
        points[bad_intensity, 3] = 0.0
    total = shape[0] * shape[1]
    return DecodedCloud(points, total, total - points.shape[0], True)


def pointcloud2_to_xyzi(msg: PointCloud2, intensity_field: str | None = None) -> DecodedCloud:
    """Decode x, y, z and intensity from any ``sensor_msgs/PointCloud2`` layout.

    Any field order, offsets and padding, ``point_step``, ``row_step`` (organised
    clouds, padded rows), ``is_bigendian`` and all PointField datatypes are
    read through one strided numpy structured view. For fields with
    ``count > 1`` the first element is used. Non-finite intensities become 0.

    Args:
        msg: the cloud.
        intensity_field: name of the field holding the intensity; None takes the
            first present of :data:`INTENSITY_FIELDS`. A packed colour (``rgb``,
            ``rgba``) gives the mean of its red, green and blue / 255 (grey = intensity).

    Returns:
        A :class:`DecodedCloud`; an empty cloud gives zero points (not an error).

    Raises:
        DecodeError: x, y or z missing, unknown datatype, a field beyond
            ``point_step``, ``row_step`` smaller than a row, data too short, or a
            packed colour field that is not 4 bytes wide.
    """
    height, width, point_step, row_step = _dims(msg, 'PointCloud2', 'height', 'width', 'point_step', 'row_step')
    fields: dict[str, Any] = {}
    for field in msg.fields:
        fields.setdefault(str(field.name), field)  # first of duplicated names wins
    missing = [name for name in ('x', 'y', 'z') if name not in fields]
    if missing:
        msg_ = f'PointCloud2: required field(s) {missing} missing; fields present: {list(fields)}'
        raise DecodeError(msg_)
    wanted = {'x': fields['x'], 'y': fields['y'], 'z': fields['z']}
    names_tried = INTENSITY_FIELDS if intensity_field is None else (intensity_field,)
    source = next((name for name in names_tried if name in fields), None)
    if source is not None:
        wanted['i'] = fields[source]
    packed_colour = source in _PACKED_COLOUR_FIELDS
    endian = '>' if msg.is_bigendian else '<'
    names, formats, offsets = [], [], []
    for key, field in wanted.items():
        datatype, offset, count = int(field.datatype), int(field.offset), int(field.count)
        if datatype not in _FIELD_TYPES:
            msg_ = f'PointCloud2: field {field.name!r} has datatype {datatype}; expected 1..8 (INT8..FLOAT64)'
            raise DecodeError(msg_)
        fmt = np.dtype(endian + _FIELD_TYPES[datatype])
        if key == 'i' and packed_colour:
            if fmt.itemsize != 4:
                msg_ = f'PointCloud2: packed colour field {field.name!r} has {fmt.itemsize}-byte values; expected 4'
                raise DecodeError(msg_)
            fmt = np.dtype(endian + 'u4')  # PCL packs 0x00RRGGBB into the bits of a float32
        # count 0 appears in some old drivers for scalar fields; treat it as 1.
        end = offset + fmt.itemsize * max(count, 1)
        if offset < 0 or end > point_step:
            msg_ = (
                f'PointCloud2: field {field.name!r} (offset {offset}, {end - offset} bytes) does not fit in '
                f'point_step={point_step}'
            )
            raise DecodeError(msg_)
        names.append(key)
        formats.append(fmt)
        offsets.append(offset)
    if row_step < width * point_step:
        msg_ = (
            f'PointCloud2: row_step={row_step} is smaller than width * point_step = {width} * {point_step} = '
            f'{width * point_step}'
        )
        raise DecodeError(msg_)
    buf = _as_bytes(msg.data, 'PointCloud2')
    if buf.size < row_step * height:
        msg_ = (
            f'PointCloud2: data has {buf.size} bytes; expected row_step * height = {row_step} * {height} = '
            f'{row_step * height}'
        )
        raise DecodeError(msg_)
    total = width * height
    field_names = tuple(fields)
    if total == 0:
        return DecodedCloud(np.zeros((0, 4), np.float32), 0, 0, source, field_names)

    packed = _packed_xyzi(buf, names, formats, offsets, (height, width), (row_step, point_step))
    if packed is not None:
        return packed
    layout = np.dtype({'names': names, 'formats': formats, 'offsets': offsets, 'itemsize': point_step})
    view = np.ndarray((height, width), dtype=layout, buffer=buf, strides=(row_step, point_step))
    out = np.empty((height, width, 4), dtype=np.float32)
    with np.errstate(over='ignore'):  # float64 beyond float32 range -> inf -> dropped below
        for column, key in enumerate(('x', 'y', 'z')):
            out[..., column] = view[key]
        if source is None:
            out[..., 3] = 0.0
        elif packed_colour:
            out[..., 3] = _grey_from_packed(view['i'])
        else:
            out[..., 3] = view['i']
    points = out.reshape(total, 4)
    nonfinite = 0
    if any(fmt.kind == 'f' for fmt in formats):
        # Column by column: numpy reduces a 3-wide innermost axis slowly.
        finite_xyz = np.isfinite(points[:, 0]) & np.isfinite(points[:, 1]) & np.isfinite(points[:, 2])
        nonfinite = total - int(np.count_nonzero(finite_xyz))
        if nonfinite:
            points = points[finite_xyz]
        bad_intensity = ~np.isfinite(points[:, 3])
        if bad_intensity.any():
            points[bad_intensity, 3] = 0.0
    return DecodedCloud(points, total, nonfinite, source, field_names)


def _grey_from_packed(bits: np.ndarray) -> np.ndarray:
    """Mean of red, green and blue / 255 of packed 0x(AA)RRGGBB colours: the intensity of a grey cloud."""
    bits = bits.astype(np.uint32)
    total = ((bits >> 16) & 0xFF) + ((bits >> 8) & 0xFF) + (bits & 0xFF)
    return total.astype(np.float32) / np.float32(3 * 255)


def array_to_pointcloud2(fields: Mapping[str, np.ndarray], header: Header) -> PointCloud2:
    """Pack 1-D arrays of equal length as an unorganised little-endian ``sensor_msgs/PointCloud2``.

    Args:
        fields: field name -> (N,) array of int8/uint8/int16/uint16/int32/uint32/float32/float64,
            packed in the mapping's order without padding.
        header: the message header (frame and stamp).

    Raises:
        DecodeError: no fields, arrays of different lengths or dimensions, or an unsupported dtype.
    """
    if not fields:
        msg_ = 'array_to_pointcloud2: at least one field is required'
        raise DecodeError(msg_)
    arrays = {name: np.asarray(values) for name, values in fields.items()}
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        got = {name: a.shape for name, a in arrays.items()}
        msg_ = f'array_to_pointcloud2: fields must be 1-D arrays of equal length, got shapes {got}'
        raise DecodeError(msg_)
    n = next(iter(shapes))[0]
    point_fields, formats, offsets, offset = [], [], [], 0
    for name, values in arrays.items():
        key = values.dtype.str[1:]
        if key not in _NUMPY_TO_FIELD:
            msg_ = f'array_to_pointcloud2: field {name!r} has dtype {values.dtype}; expected one of ' + ', '.join(
                str(np.dtype(c)) for c in _FIELD_TYPES.values()
            )
            raise DecodeError(msg_)
        fmt = np.dtype('<' + key)
        point_fields.append(PointField(name=name, offset=offset, datatype=_NUMPY_TO_FIELD[key], count=1))
        formats.append(fmt)
        offsets.append(offset)
        offset += fmt.itemsize
    layout = np.dtype({'names': list(arrays), 'formats': formats, 'offsets': offsets, 'itemsize': offset})
    packed = np.empty(n, dtype=layout)
    for name, values in arrays.items():
        packed[name] = values
    dense = all(np.isfinite(a).all() for a in arrays.values() if a.dtype.kind == 'f')
    return _cloud_msg(header, point_fields, offset, n, packed.view(np.uint8), dense)


def xyzi_to_pointcloud2(points: np.ndarray, header: Header, value_name: str = 'intensity') -> PointCloud2:
    """Encode (N, 4) x, y, z, value as a float32 ``sensor_msgs/PointCloud2`` (16-byte points).

    Args:
        points: (N, 4) array, converted to float32.
        header: the message header.
        value_name: name of the fourth field (``'intensity'``, ``'score'``...).

    Raises:
        DecodeError: ``points`` is not (N, 4).
    """
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] != 4:
        msg_ = f'xyzi_to_pointcloud2: points must be (N, 4), got shape {pts.shape}'
        raise DecodeError(msg_)
    pts = np.ascontiguousarray(pts, dtype='<f4')
    point_fields = [
        PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=1)
        for i, name in enumerate(('x', 'y', 'z', value_name))
    ]
    return _cloud_msg(header, point_fields, 16, pts.shape[0], pts, bool(np.isfinite(pts).all()))


def _cloud_msg(
    header: Header, fields: list[PointField], point_step: int, n: int, payload: np.ndarray, dense: bool
) -> PointCloud2:
    out = PointCloud2(header=header, height=1, width=n, is_bigendian=False, is_dense=dense)
    out.fields = fields
    out.point_step = point_step
    out.row_step = point_step * n
    out.data = _to_uint8_array(payload)
    return out


# --- camera info, grids, markers ------------------------------------------


def camera_info_to_model(msg: CameraInfo, use_projection: bool = False) -> CameraModel:
    """The pinhole model of a ``sensor_msgs/CameraInfo``.

    Distortion (``d``) is ignored: the detector assumes undistorted images.

    Args:
        msg: the camera info.
        use_projection: read fx, fy, cx, cy from ``p`` (rectified images) instead of ``k``.

    Raises:
        DecodeError: wrong matrix size, an uncalibrated (all-zero) matrix, or invalid values.
    """
    name, values, size = ('p', msg.p, 12) if use_projection else ('k', msg.k, 9)
    matrix = np.asarray(values, dtype=np.float64).reshape(-1)
    if matrix.size != size:
        msg_ = f'CameraInfo: {name} has {matrix.size} values; expected {size}'
        raise DecodeError(msg_)
    if not matrix.any():
        msg_ = f'CameraInfo: {name} is all zeros (camera not calibrated)'
        raise DecodeError(msg_)
    m = matrix.reshape(3, -1)
    try:
        return CameraModel(
            int(msg.width), int(msg.height), float(m[0, 0]), float(m[1, 1]), float(m[0, 2]), float(m[1, 2])
        )
    except GeometryError as err:
        msg_ = f'CameraInfo: invalid camera ({err})'
        raise DecodeError(msg_) from err


def make_occupancy_grid(data: np.ndarray, grid: GridSpec, header: Header, z_m: float = 0.0) -> OccupancyGrid:
    """Wrap a (ny, nx) int8 array (e.g. ``postprocess.score_grid``) as a ``nav_msgs/OccupancyGrid``.

    Args:
        data: (ny, nx) int8, row ``iy`` along y, column ``ix`` along x; -1 = unknown.
        grid: the detector grid (resolution and origin ``(x_min_m, y_min_m)``).
        header: frame and stamp (also used as ``info.map_load_time``).
        z_m: height at which RViz draws the map.

    Raises:
        DecodeError: ``data`` is not int8 of shape (ny, nx).
    """
    data = np.asarray(data)
    if data.shape != (grid.ny, grid.nx) or data.dtype != np.int8:
        msg_ = (
            f'make_occupancy_grid: data is {data.dtype} {data.shape}; expected int8 (ny, nx) = ({grid.ny}, {grid.nx})'
        )
        raise DecodeError(msg_)
    out = OccupancyGrid(header=header)
    out.info.map_load_time = header.stamp
    out.info.resolution = float(grid.cell_m)
    out.info.width, out.info.height = grid.nx, grid.ny
    out.info.origin.position.x = float(grid.x_min_m)
    out.info.origin.position.y = float(grid.y_min_m)
    out.info.origin.position.z = float(z_m)
    out.info.origin.orientation.w = 1.0
    payload = array.array('b')
    payload.frombytes(np.ascontiguousarray(data).view(np.uint8).reshape(-1))
    out.data = payload
    return out


def _duration(seconds: float) -> Duration:
    sec, nanosec = divmod(round(float(seconds) * _NS_PER_S), _NS_PER_S)
    return Duration(sec=sec, nanosec=nanosec)


def markers_to_msg(specs: Iterable[MarkerSpec], header: Header, delete_all_first: bool = False) -> MarkerArray:
    """Turn marker specs (``tracker.MarkerTracker``) into a ``visualization_msgs/MarkerArray``.

    Boxes go to namespace ``anomaly_boxes`` as CUBE markers, texts to
    ``anomaly_labels`` as TEXT_VIEW_FACING; a spec's ``id`` is the marker id in
    both. Re-publishing an id replaces the marker in RViz (no flicker); deletes
    remove one at once; ``lifetime`` expires anything not refreshed.

    Args:
        specs: the specs, in publishing order.
        header: frame and stamp for every marker.
        delete_all_first: prepend a DELETEALL (clears every namespace, e.g. after a reset).

    """
    markers = []
    if delete_all_first:
        markers.append(Marker(header=header, action=Marker.DELETEALL))
    for spec in specs:
        marker = Marker(header=header, ns=MARKER_NAMESPACES[spec.kind], id=int(spec.id))
        if spec.action == 'delete':
            marker.action = Marker.DELETE
            markers.append(marker)
            continue
        marker.action = Marker.ADD
        marker.type = Marker.CUBE if spec.kind == 'box' else Marker.TEXT_VIEW_FACING
        p, q = marker.pose.position, marker.pose.orientation
        p.x, p.y, p.z = (float(v) for v in spec.position_m)
        q.x, q.y, q.z, q.w = (float(v) for v in spec.orientation_xyzw)
        s = marker.scale
        s.x, s.y, s.z = (float(v) for v in spec.scale_m)
        c = marker.color
        c.r, c.g, c.b, c.a = (float(v) for v in spec.color_rgba)
        marker.text = spec.text
        marker.lifetime = _duration(spec.lifetime_s)
        marker.frame_locked = False
        markers.append(marker)
    return MarkerArray(markers=markers)
