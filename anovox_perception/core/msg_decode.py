"""ROS 2 messages -> numpy arrays, without importing a ROS package.

The decoders read only the attributes of a message, so they take rclpy messages
(``data`` an ``array.array``), rosbags messages (``data`` a numpy array) and
hand-built objects alike: offline tools, training and tests decode bags without
the ROS 2 wheels. Buffers are read in place (``np.frombuffer`` plus strides), so
images come back as views of ``msg.data`` where the encoding allows: copy them
(or pass ``copy=True``) before writing into them.

The layouts read here (image encodings, PointField datatypes, the ground-truth
voxel record) are those the encoders write; they are defined once in ``msg_layout``.

Every malformed input raises :class:`~anovox_perception.core.errors.DecodeError` naming
the field, its value and what was expected; numpy never gets to raise first.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image as PILImage

from anovox_perception.core.errors import DecodeError, GeometryError
from anovox_perception.core.geometry import CameraModel, anovox_voxel_index
from anovox_perception.core.msg_layout import (
    IMAGE_ENCODINGS,
    MARKER_NAMESPACES,
    POINTFIELD_DATATYPES,
    VOXEL_DTYPE,
    point_fields_of,
)
from anovox_perception.core.stamps import stamp_to_ns

__all__ = [
    'IMAGE_ENCODINGS',
    'INTENSITY_FIELDS',
    'MARKER_NAMESPACES',
    'DecodedCloud',
    'camera_info_to_model',
    'compressed_to_rgb',
    'image_to_rgb',
    'pointcloud2_to_xyzi',
    'stamp_to_ns',
    'voxels_from_message',
]

# Names LiDAR drivers and tools give the return strength, in the order they are looked for:
# Velodyne/PCL, Livox/Hesai short form, Ouster, some Open3D and Leica exports, and Open3D's
# grey colours (AnoVox's benchmark clouds store intensity as r = g = b).
INTENSITY_FIELDS = ('intensity', 'i', 'reflectivity', 'reflectance', 'rgb')
_PACKED_COLOUR_FIELDS = ('rgb', 'rgba')


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


def image_to_rgb(msg: Any, copy: bool = False) -> np.ndarray:
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


def compressed_to_rgb(msg: Any) -> np.ndarray:
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
) -> np.ndarray | None:
    """The finite points of the common layout (x, y, z, intensity: consecutive little-endian float32), else None.

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
    return points


def pointcloud2_to_xyzi(msg: Any, intensity_field: str | None = None) -> DecodedCloud:
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
        if datatype not in POINTFIELD_DATATYPES:
            msg_ = f'PointCloud2: field {field.name!r} has datatype {datatype}; expected 1..8 (INT8..FLOAT64)'
            raise DecodeError(msg_)
        fmt = np.dtype(endian + POINTFIELD_DATATYPES[datatype])
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
        return DecodedCloud(packed, total, total - packed.shape[0], source, field_names)
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


# --- camera info, ground truth ---------------------------------------------


def camera_info_to_model(msg: Any, use_projection: bool = False) -> CameraModel:
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


def voxels_from_message(msg: Any) -> np.ndarray:
    """AnoVox voxels (M, 4) uint16 ``[ix, iy, iz, label]`` of a ground-truth voxel cloud.

    Accepts the layout of :data:`VOXEL_DTYPE` (what ``bag_messages.voxels_message`` writes),
    from a rosbags or an rclpy message.

    Raises:
        DecodeError: The cloud does not have that layout or its data is truncated.
    """
    layout = [(f.name, int(f.offset), int(f.datatype), int(f.count)) for f in msg.fields]
    expected = [(*field, 1) for field in point_fields_of(VOXEL_DTYPE)]
    if layout != expected or int(msg.point_step) != VOXEL_DTYPE.itemsize or bool(msg.is_bigendian):
        msg_text = (
            f'voxels_from_message: expected little-endian fields {expected} with point_step '
            f'{VOXEL_DTYPE.itemsize}, got {layout} with point_step {msg.point_step}'
        )
        raise DecodeError(msg_text)
    count = int(msg.width) * int(msg.height)
    data = _as_bytes(msg.data, 'voxels_from_message')
    if data.size < count * VOXEL_DTYPE.itemsize:
        msg_text = (
            f'voxels_from_message: data holds {data.size} bytes, {count} voxels need {count * VOXEL_DTYPE.itemsize}'
        )
        raise DecodeError(msg_text)
    records = data[: count * VOXEL_DTYPE.itemsize].view(VOXEL_DTYPE)
    xyz = np.stack([records['x'], records['y'], records['z']], axis=1).astype(np.float64)
    out = np.empty((count, 4), dtype=np.uint16)
    out[:, :3] = anovox_voxel_index(xyz)
    out[:, 3] = records['label']
    return out
