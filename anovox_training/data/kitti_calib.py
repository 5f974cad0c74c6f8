"""KITTI calibration: the object benchmark's ``calib/<frame>.txt`` and mmdetection3d-style ``calib.json``.

KITTI's chain from a Velodyne point ``x_velo`` (homogeneous) to a pixel of the left colour camera:

    pixel ~ P2 @ R0_rect @ Tr_velo_to_cam @ x_velo

``Tr_velo_to_cam`` maps the Velodyne frame into the unrectified reference camera (camera 0),
``R0_rect`` rotates it into the rectified frame shared by all four cameras, and ``P2`` (3x4)
projects rectified points into image_2. ``P2 = K2 @ [I | b2]``: it is not a bare intrinsic matrix,
its last column ``K2 @ b2`` holds camera 2's offset ``b2`` (about 6 cm along x) from camera 0.
The runtime's :class:`~anovox_perception.core.geometry.CameraModel` has no such term, so
:meth:`KittiCalib.T_cam_lidar` moves the offset into the extrinsic: ``T_cam_lidar =
[I | b2] @ lidar2cam_rect``, ``b2 = K2^-1 @ P2[:, 3]``. Then ``K2 @ T_cam_lidar`` equals KITTI's
``P2 @ R0_rect @ Tr_velo_to_cam`` exactly, and the transform stays rigid.

Numpy only. Every error is a `DataError` naming the file and what is wrong in it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from anovox_perception.core.errors import DataError
from anovox_perception.core.geometry import CameraModel, make_transform

__all__ = ['KittiCalib', 'load_calib', 'parse_calib_json', 'parse_calib_txt']

# Keys of the object benchmark's calib .txt and how many numbers each holds (row-major).
TXT_SHAPES: dict[str, tuple[int, int]] = {'P2': (3, 4), 'R0_rect': (3, 3), 'Tr_velo_to_cam': (3, 4)}
_RIGID_TOLERANCE = 1e-4  # KITTI prints its matrices to about 7 significant digits
_AGREEMENT_TOLERANCE = 1e-4  # between redundant matrices of one calib.json (relative to their scale)


@dataclass(frozen=True)
class KittiCalib:
    """The calibration of one KITTI frame, as the runtime needs it.

    Attributes:
        P2: (3, 4) projection of rectified camera coordinates into image_2 (pixels).
        lidar2cam_rect: (4, 4) Velodyne -> rectified camera transform (``R0_rect`` folded into
            ``Tr_velo_to_cam``).
        source: The file it was read from (for messages).
        image_size: (width, height) the file states, or None (the .txt does not say).
    """

    P2: np.ndarray
    lidar2cam_rect: np.ndarray
    source: Path
    image_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        k = self.P2[:, :3]
        if not (k[1, 0] == 0.0 and k[2, 0] == 0.0 and k[2, 1] == 0.0 and abs(k[2, 2] - 1.0) < 1e-9):
            msg = f'{self.source}: P2 {self.P2.tolist()} is not K @ [I | t] with K upper triangular and K[2, 2] = 1'
            raise DataError(msg)
        if abs(k[0, 1]) > 1e-9 or not (k[0, 0] > 0 and k[1, 1] > 0):
            msg = f'{self.source}: P2 has skew {k[0, 1]} or non-positive focal lengths ({k[0, 0]}, {k[1, 1]})'
            raise DataError(msg)
        r = self.lidar2cam_rect[:3, :3]
        rigid = np.allclose(r @ r.T, np.eye(3), atol=_RIGID_TOLERANCE) and np.linalg.det(r) > 0
        if not (rigid and np.allclose(self.lidar2cam_rect[3], [0, 0, 0, 1])):
            msg = (
                f'{self.source}: R0_rect @ Tr_velo_to_cam is not a rigid transform '
                '(orthonormal rotation, det +1, last row 0 0 0 1); check R0_rect and Tr_velo_to_cam'
            )
            raise DataError(msg)

    @property
    def K(self) -> np.ndarray:
        """(3, 3) intrinsic matrix of image_2."""
        return self.P2[:, :3].copy()

    @property
    def camera_offset_m(self) -> np.ndarray:
        """(3,) camera 2's position term ``b2 = K^-1 @ P2[:, 3]`` in the rectified frame (metres)."""
        return np.linalg.solve(self.K, self.P2[:, 3])

    @property
    def T_cam_lidar(self) -> np.ndarray:
        """(4, 4) LiDAR -> image_2 optical frame: ``[I | b2] @ lidar2cam_rect`` (P2's offset folded in)."""
        return make_transform(np.eye(3), self.camera_offset_m) @ self.lidar2cam_rect

    def camera(self, width: int, height: int) -> CameraModel:
        """The pinhole model of image_2 for an image of ``width`` x ``height`` pixels."""
        return CameraModel.from_matrix(self.K, width, height)


def _matrix(values: Any, shape: tuple[int, int], key: str, source: Path) -> np.ndarray:
    """``values`` as a finite float64 matrix of ``shape``; flat lists and the homogeneous 4x4 form are accepted."""
    rows, cols = shape
    try:
        matrix = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        msg = f'{source}: {key} is not numeric ({str(values)[:80]!r})'
        raise DataError(msg) from err
    if matrix.ndim == 1 and matrix.size == rows * cols:
        matrix = matrix.reshape(shape)
    if matrix.shape == (4, 4) and shape != (4, 4):
        # Homogeneous form: the padding must be that of a transform, or the file means something else.
        if not (np.array_equal(matrix[3], [0, 0, 0, 1]) and (cols == 4 or not matrix[:3, 3].any())):
            msg = f'{source}: {key} is 4x4 but not the homogeneous form of a {rows}x{cols} matrix'
            raise DataError(msg)
        matrix = matrix[:rows, :cols]
    if matrix.shape != shape:
        msg = f'{source}: {key} must be {rows}x{cols} (or its homogeneous 4x4 form), got shape {matrix.shape}'
        raise DataError(msg)
    if not np.isfinite(matrix).all():
        msg = f'{source}: {key} holds non-finite values'
        raise DataError(msg)
    return matrix


def _homogeneous(matrix: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[: matrix.shape[0], : matrix.shape[1]] = matrix
    return out


def parse_calib_txt(text: str, source: Path) -> KittiCalib:
    """Parse an object-benchmark calib file (``P0: ...`` .. ``Tr_imu_to_velo: ...`` lines).

    Only ``P2``, ``R0_rect`` and ``Tr_velo_to_cam`` are used; other keys are ignored.

    Raises:
        DataError: A line is not ``key: numbers``, a key repeats, or a needed key is missing or has the
            wrong number of values.
    """
    values: dict[str, list[float]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, colon, rest = line.partition(':')
        key = key.strip()
        if not colon or not key:
            msg = f'{source}, line {number}: expected "key: numbers", got {line[:80]!r}'
            raise DataError(msg)
        try:
            numbers = [float(v) for v in rest.split()]
        except ValueError as err:
            msg = f'{source}, line {number} ({key}): {err}'
            raise DataError(msg) from err
        if key in values:
            msg = f'{source}, line {number}: key {key!r} appears twice'
            raise DataError(msg)
        values[key] = numbers
    missing = [k for k in TXT_SHAPES if k not in values]
    if missing:
        msg = (
            f'{source}: missing {missing} (has {sorted(values)}); expected a KITTI object-benchmark calib file '
            'with P0..P3, R0_rect and Tr_velo_to_cam lines'
        )
        raise DataError(msg)
    for key, (rows, cols) in TXT_SHAPES.items():
        if len(values[key]) != rows * cols:
            msg = f'{source}: {key} must hold {rows * cols} numbers ({rows}x{cols}), got {len(values[key])}'
            raise DataError(msg)
    p2 = _matrix(values['P2'], TXT_SHAPES['P2'], 'P2', source)
    r0 = _matrix(values['R0_rect'], TXT_SHAPES['R0_rect'], 'R0_rect', source)
    tr = _matrix(values['Tr_velo_to_cam'], TXT_SHAPES['Tr_velo_to_cam'], 'Tr_velo_to_cam', source)
    return KittiCalib(P2=p2, lidar2cam_rect=_homogeneous(r0) @ _homogeneous(tr), source=source)


def _agree(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.abs(a - b).max() <= _AGREEMENT_TOLERANCE * max(1.0, float(np.abs(b).max())))


def parse_calib_json(data: Mapping[str, Any], source: Path) -> KittiCalib:
    """Parse an mmdetection3d-style calibration mapping.

    Keys: ``cam2img_P2`` (3x4 or 4x4) and ``lidar2cam_rect`` (4x4), or ``R0_rect`` and
    ``Tr_velo_to_cam`` in its place; optional ``image_width`` / ``image_height``. Redundant
    matrices that are present (``lidar2img``, ``R0_rect`` with ``Tr_velo_to_cam`` next to
    ``lidar2cam_rect``) must agree with the others.

    Raises:
        DataError: A needed key is missing, a matrix has the wrong shape, or redundant matrices disagree.
    """
    if not isinstance(data, Mapping):
        msg = f'{source}: expected a JSON object with cam2img_P2 and lidar2cam_rect, got {type(data).__name__}'
        raise DataError(msg)
    if 'cam2img_P2' not in data:
        msg = f'{source}: missing cam2img_P2 (has {sorted(data)})'
        raise DataError(msg)
    p2 = _matrix(data['cam2img_P2'], (3, 4), 'cam2img_P2', source)
    composed = None
    if 'R0_rect' in data and 'Tr_velo_to_cam' in data:
        r0 = _homogeneous(_matrix(data['R0_rect'], (3, 3), 'R0_rect', source))
        composed = r0 @ _homogeneous(_matrix(data['Tr_velo_to_cam'], (3, 4), 'Tr_velo_to_cam', source))
    if 'lidar2cam_rect' in data:
        lidar2cam = _homogeneous(_matrix(data['lidar2cam_rect'], (3, 4), 'lidar2cam_rect', source))
        if composed is not None and not _agree(composed, lidar2cam):
            msg = f'{source}: lidar2cam_rect disagrees with R0_rect @ Tr_velo_to_cam; the file is inconsistent'
            raise DataError(msg)
    elif composed is not None:
        lidar2cam = composed
    else:
        msg = f'{source}: missing lidar2cam_rect (or R0_rect and Tr_velo_to_cam); has {sorted(data)}'
        raise DataError(msg)
    if 'lidar2img' in data:
        lidar2img = _matrix(data['lidar2img'], (3, 4), 'lidar2img', source)
        if not _agree(p2 @ lidar2cam, lidar2img):
            msg = f'{source}: lidar2img disagrees with cam2img_P2 @ lidar2cam_rect; the file is inconsistent'
            raise DataError(msg)
    size = None
    if 'image_width' in data or 'image_height' in data:
        try:
            size = (int(data['image_width']), int(data['image_height']))
        except (KeyError, TypeError, ValueError) as err:
            msg = f'{source}: image_width and image_height must both be integers ({err!r})'
            raise DataError(msg) from err
    return KittiCalib(P2=p2, lidar2cam_rect=lidar2cam, source=source, image_size=size)


def load_calib(path: str | Path) -> KittiCalib:
    """Read a calibration file: ``.json`` (mmdetection3d style) or anything else as the KITTI ``.txt`` format.

    Raises:
        DataError: The file is missing, unreadable or malformed.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding='utf-8')
    except (OSError, UnicodeDecodeError) as err:
        msg = f'{path}: cannot read the calibration ({err})'
        raise DataError(msg) from err
    if path.suffix.lower() != '.json':
        return parse_calib_txt(text, path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        msg = f'{path}: invalid JSON at line {err.lineno} column {err.colno}: {err.msg}'
        raise DataError(msg) from err
    return parse_calib_json(data, path)
