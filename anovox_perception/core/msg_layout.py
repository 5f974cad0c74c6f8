"""Wire layouts of the messages this package reads and writes, without importing a ROS package.

One definition for the decoder (``msg_decode``) and both encoders (``msg_encode`` for
rclpy, ``bag_messages`` for rosbags): image encodings, PointField datatypes, the
point and ground-truth voxel records, marker namespaces, and the checked payload
of an image or a cloud. The encoders only wrap a payload in their target's
message classes, so a message written to a bag and one published by the node
are validated and laid out the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from anovox_perception.core.errors import DecodeError

__all__ = [
    'IMAGE_ENCODINGS',
    'MARKER_NAMESPACES',
    'POINTFIELD_DATATYPES',
    'POINT_DTYPE',
    'VOXEL_DTYPE',
    'CloudPayload',
    'ImagePayload',
    'cloud_payload',
    'image_payload',
    'point_fields_of',
    'records_of_columns',
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
# The encodings an encoder writes, with their channel count (None: a single-channel (H, W) array).
_WRITABLE_ENCODINGS: dict[str, int | None] = {'rgb8': 3, 'bgr8': 3, 'mono8': None}

#: sensor_msgs/PointField datatype (INT8 = 1 .. FLOAT64 = 8) -> numpy type code (endianness added per message).
POINTFIELD_DATATYPES: dict[int, str] = {1: 'i1', 2: 'u1', 3: 'i2', 4: 'u2', 5: 'i4', 6: 'u4', 7: 'f4', 8: 'f8'}
_DATATYPE_OF_CODE: dict[str, int] = {code: datatype for datatype, code in POINTFIELD_DATATYPES.items()}

#: Marker namespace of each marker kind the node publishes.
MARKER_NAMESPACES = {'box': 'anomaly_boxes', 'text': 'anomaly_labels'}

#: LiDAR clouds in bags: float32 x, y, z, intensity, 16-byte points.
POINT_DTYPE = np.dtype({'names': ['x', 'y', 'z', 'intensity'], 'formats': ['<f4'] * 4, 'offsets': [0, 4, 8, 12]})

#: Ground-truth voxel clouds: one point per AnoVox voxel, x, y, z float32 (voxel centre in the LiDAR
#: frame, m) and label uint16, two bytes of padding. Every centre is a multiple of 0.25 m inside
#: +-250 m, so float32 holds it exactly and the AnoVox index is recovered without rounding error.
VOXEL_DTYPE = np.dtype(
    {
        'names': ['x', 'y', 'z', 'label'],
        'formats': ['<f4', '<f4', '<f4', '<u2'],
        'offsets': [0, 4, 8, 12],
        'itemsize': 16,
    }
)


def _supported_dtypes() -> str:
    return ', '.join(str(np.dtype(code)) for code in POINTFIELD_DATATYPES.values())


def point_fields_of(records: np.dtype) -> list[tuple[str, int, int]]:
    """The PointField ``(name, offset, datatype)`` of each field of a little-endian record dtype.

    Raises:
        DecodeError: A field is not a little-endian scalar of a PointField datatype.
    """
    out = []
    for name in records.names:
        fmt, offset = records.fields[name][:2]
        code = fmt.str[1:]
        if code not in _DATATYPE_OF_CODE or fmt.shape or fmt.byteorder == '>':
            expected = _supported_dtypes()
            msg = f'PointCloud2 field {name!r} has dtype {fmt}; expected a little-endian scalar of {expected}'
            raise DecodeError(msg)
        out.append((name, int(offset), _DATATYPE_OF_CODE[code]))
    return out


def records_of_columns(columns: Mapping[str, np.ndarray], where: str) -> np.ndarray:
    """Pack 1-D arrays of equal length as little-endian point records, in the mapping's order, without padding.

    Raises:
        DecodeError: No columns, arrays of different lengths or dimensions, or an unsupported dtype.
    """
    if not columns:
        msg = f'{where}: at least one field is required'
        raise DecodeError(msg)
    arrays = {name: np.asarray(values) for name, values in columns.items()}
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        got = {name: a.shape for name, a in arrays.items()}
        msg = f'{where}: fields must be 1-D arrays of equal length, got shapes {got}'
        raise DecodeError(msg)
    formats = []
    for name, values in arrays.items():
        code = values.dtype.str[1:]
        if code not in _DATATYPE_OF_CODE:
            msg = f'{where}: field {name!r} has dtype {values.dtype}; expected one of {_supported_dtypes()}'
            raise DecodeError(msg)
        formats.append(np.dtype('<' + code))
    offsets = np.cumsum([0] + [fmt.itemsize for fmt in formats]).tolist()
    layout = np.dtype({'names': list(arrays), 'formats': formats, 'offsets': offsets[:-1], 'itemsize': offsets[-1]})
    records = np.empty(next(iter(shapes))[0], dtype=layout)
    for name, values in arrays.items():
        records[name] = values
    return records


@dataclass(frozen=True)
class CloudPayload:
    """An unorganised little-endian ``sensor_msgs/PointCloud2`` without its header.

    Attributes:
        fields: ``(name, offset, datatype)`` per PointField (count 1).
        point_step: Bytes per point.
        width: Number of points (height is 1).
        data: The points, flat uint8.
        is_dense: No point has a non-finite x, y or z (the points a decoder would drop).
    """

    fields: tuple[tuple[str, int, int], ...]
    point_step: int
    width: int
    data: np.ndarray
    is_dense: bool

    @property
    def row_step(self) -> int:
        """Bytes per row: the whole cloud."""
        return self.point_step * self.width


def cloud_payload(records: np.ndarray) -> CloudPayload:
    """The PointCloud2 payload of a 1-D array of point records (any little-endian layout, padding kept).

    Raises:
        DecodeError: ``records`` is not a 1-D record array, or a field is not a PointField datatype.
    """
    if records.dtype.names is None or records.ndim != 1:
        msg = f'PointCloud2 payload: expected a 1-D record array, got {records.dtype} of shape {records.shape}'
        raise DecodeError(msg)
    fields = tuple(point_fields_of(records.dtype))
    coordinates = [n for n in ('x', 'y', 'z') if n in records.dtype.names and records.dtype[n].kind == 'f']
    dense = all(bool(np.isfinite(records[n]).all()) for n in coordinates)
    data = np.ascontiguousarray(records).view(np.uint8).reshape(-1)
    return CloudPayload(fields, records.dtype.itemsize, len(records), data, dense)


@dataclass(frozen=True)
class ImagePayload:
    """A ``sensor_msgs/Image`` without its header: tightly packed rows.

    Attributes:
        height: Rows.
        width: Columns.
        encoding: ``rgb8``, ``bgr8`` or ``mono8``.
        step: Bytes per row.
        data: The pixels, flat uint8.
    """

    height: int
    width: int
    encoding: str
    step: int
    data: np.ndarray


def image_payload(rgb: np.ndarray, encoding: str = 'rgb8') -> ImagePayload:
    """The Image payload of an (H, W, 3) uint8 RGB array (or (H, W) for ``mono8``).

    Raises:
        DecodeError: Wrong shape or dtype, or an encoding other than rgb8, bgr8, mono8.
    """
    rgb = np.asarray(rgb)
    if encoding not in _WRITABLE_ENCODINGS:
        msg = f'Image: encoding {encoding!r} cannot be written; expected one of {sorted(_WRITABLE_ENCODINGS)}'
        raise DecodeError(msg)
    channels = _WRITABLE_ENCODINGS[encoding]
    if rgb.dtype != np.uint8 or rgb.ndim != (2 if channels is None else 3) or (channels and rgb.shape[2] != channels):
        shape = '(H, W)' if channels is None else f'(H, W, {channels})'
        msg = f'Image: got {rgb.dtype} array of shape {rgb.shape}; {encoding} needs uint8 {shape}'
        raise DecodeError(msg)
    if encoding == 'bgr8':
        rgb = rgb[..., ::-1]
    height, width = rgb.shape[:2]
    data = np.ascontiguousarray(rgb).reshape(-1)
    return ImagePayload(height, width, encoding, width * (channels or 1), data)
