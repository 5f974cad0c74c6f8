"""numpy arrays -> rclpy ROS 2 messages: what the node publishes, without cv_bridge or sensor_msgs_py.

The layouts and their checks come from ``msg_layout``, shared with the rosbags
encoder (``bag_messages``), so a cloud or an image is laid out and validated the
same way whichever target it is written for. Decoding is ``msg_decode``, which
imports no ROS package; this module needs the ROS 2 message packages.
"""

from __future__ import annotations

import array
from collections.abc import Iterable, Mapping

import numpy as np
from builtin_interfaces.msg import Duration, Time
from nav_msgs.msg import OccupancyGrid
from sensor_msgs.msg import Image, PointCloud2, PointField
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from anovox_perception.core.errors import DecodeError
from anovox_perception.core.geometry import GridSpec
from anovox_perception.core.msg_layout import (
    MARKER_NAMESPACES,
    CloudPayload,
    cloud_payload,
    image_payload,
    records_of_columns,
)
from anovox_perception.core.stamps import sec_nanosec, seconds_to_ns
from anovox_perception.core.tracker import MarkerSpec

__all__ = [
    'array_to_pointcloud2',
    'header',
    'make_occupancy_grid',
    'markers_to_msg',
    'ns_to_stamp',
    'rgb_to_image',
    'xyzi_to_pointcloud2',
]


def ns_to_stamp(stamp_ns: int) -> Time:
    """A ``builtin_interfaces/Time`` from nanoseconds."""
    sec, nanosec = sec_nanosec(stamp_ns)
    return Time(sec=sec, nanosec=nanosec)


def header(stamp_ns: int, frame_id: str) -> Header:
    """A ``std_msgs/Header`` with a stamp in nanoseconds."""
    return Header(stamp=ns_to_stamp(stamp_ns), frame_id=frame_id)


def _to_uint8_array(values: np.ndarray) -> array.array:
    """The ``array.array('B')`` rclpy stores for ``uint8[]`` fields (assigned without per-item checks)."""
    out = array.array('B')
    out.frombytes(np.ascontiguousarray(values).reshape(-1).view(np.uint8))
    return out


# --- images ---------------------------------------------------------------


def rgb_to_image(rgb: np.ndarray, header: Header, encoding: str = 'rgb8') -> Image:
    """Encode an (H, W, 3) uint8 RGB array (or (H, W) for ``mono8``) as a ``sensor_msgs/Image``.

    Raises:
        DecodeError: Wrong shape or dtype, or an encoding other than rgb8, bgr8, mono8.
    """
    payload = image_payload(rgb, encoding)
    out = Image(header=header, height=payload.height, width=payload.width, encoding=encoding, is_bigendian=0)
    out.step = payload.step
    out.data = _to_uint8_array(payload.data)
    return out


# --- point clouds ---------------------------------------------------------


def array_to_pointcloud2(fields: Mapping[str, np.ndarray], header: Header) -> PointCloud2:
    """Pack 1-D arrays of equal length as an unorganised little-endian ``sensor_msgs/PointCloud2``.

    Args:
        fields: Field name -> (N,) array of int8/uint8/int16/uint16/int32/uint32/float32/float64,
            packed in the mapping's order without padding.
        header: The message header (frame and stamp).

    Raises:
        DecodeError: No fields, arrays of different lengths or dimensions, or an unsupported dtype.
    """
    return _cloud_msg(header, cloud_payload(records_of_columns(fields, 'array_to_pointcloud2')))


def xyzi_to_pointcloud2(points: np.ndarray, header: Header, value_name: str = 'intensity') -> PointCloud2:
    """Encode (N, 4) x, y, z, value as a float32 ``sensor_msgs/PointCloud2`` (16-byte points).

    Args:
        points: (N, 4) array, converted to float32.
        header: The message header.
        value_name: Name of the fourth field (``'intensity'``, ``'score'``...).

    Raises:
        DecodeError: ``points`` is not (N, 4).
    """
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] != 4:
        msg_ = f'xyzi_to_pointcloud2: points must be (N, 4), got shape {pts.shape}'
        raise DecodeError(msg_)
    layout = np.dtype({'names': ['x', 'y', 'z', value_name], 'formats': ['<f4'] * 4, 'offsets': [0, 4, 8, 12]})
    # The rows of a C-contiguous float32 array are already the records: a view, no per-field copy.
    records = np.ascontiguousarray(pts, dtype='<f4').view(layout).reshape(-1)
    return _cloud_msg(header, cloud_payload(records))


def _cloud_msg(header: Header, payload: CloudPayload) -> PointCloud2:
    out = PointCloud2(header=header, height=1, width=payload.width, is_bigendian=False, is_dense=payload.is_dense)
    out.fields = [
        PointField(name=name, offset=offset, datatype=datatype, count=1) for name, offset, datatype in payload.fields
    ]
    out.point_step = payload.point_step
    out.row_step = payload.row_step
    out.data = _to_uint8_array(payload.data)
    return out


# --- grids, markers -------------------------------------------------------


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
    sec, nanosec = sec_nanosec(seconds_to_ns(seconds))
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
