"""Read KITTI-format frames (Velodyne cloud, left colour image, calibration) as the runtime needs them.

Three folder layouts:

- one frame: ``points_xyzi.bin`` (or ``velodyne.bin``), ``image_2.png`` and ``calib.json`` (or
  ``calib.txt``) in one folder, e.g. ``real/kitti_000008``; the frame is named after the folder;
- the KITTI object benchmark: ``velodyne/<id>.bin`` (or ``velodyne_reduced/``), ``image_2/<id>.png``
  and ``calib/<id>.txt`` under one folder (e.g. ``training/``); frames are named by id;
- a folder of one-frame folders (e.g. ``real/``).

Velodyne files are float32 N x 4 (x, y, z, reflectance in 0..1), in the Velodyne frame, which is
already REP-103 (x forward, y left, z up): the points go to the detector unchanged. The detector grid
is relative to the LiDAR, which sits 1.73 m above the road on KITTI's car (2.0 m on AnoVox's).
See kitti_calib.py for the calibration and how P2's offset enters ``T_cam_lidar``.

Numpy (and PIL for PNG) only. Every error is a `DataError` naming the file and what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anovox_perception.core.errors import DataError, DecodeError
from anovox_perception.core.geometry import CameraModel
from anovox_training.data import decode
from anovox_training.data.kitti_calib import KittiCalib, load_calib

__all__ = ['KittiFolder', 'KittiFrame', 'KittiFrameFiles', 'read_image', 'read_velodyne']

FRAME_POINTS = ('points_xyzi.bin', 'velodyne.bin')
FRAME_IMAGE = 'image_2.png'
FRAME_CALIB = ('calib.json', 'calib.txt')
OBJECT_POINTS = ('velodyne', 'velodyne_reduced')
_POINT_BYTES = 16  # float32 x, y, z, reflectance

_LAYOUTS_HELP = (
    'expected a frame folder (points_xyzi.bin or velodyne.bin, image_2.png, calib.json or calib.txt), '
    'a KITTI object folder (velodyne/<id>.bin, image_2/<id>.png, calib/<id>.txt) or a folder of frame folders'
)


@dataclass(frozen=True)
class KittiFrameFiles:
    """Where one frame's files are."""

    name: str
    points: Path
    image: Path
    calib: Path


@dataclass(frozen=True)
class KittiFrame:
    """One KITTI frame, ready for the detector.

    Attributes:
        name: Frame name (folder name or KITTI id).
        points: (N, 4) float32 x, y, z, reflectance in the LiDAR frame (REP-103).
        rgb: (H, W, 3) uint8 image_2.
        camera: Pinhole model of image_2 (intrinsics of P2).
        T_cam_lidar: (4, 4) LiDAR -> image_2 optical frame, P2's camera offset included.
        calib: The calibration it came from.
        files: The files read.
    """

    name: str
    points: np.ndarray
    rgb: np.ndarray
    camera: CameraModel
    T_cam_lidar: np.ndarray
    calib: KittiCalib
    files: KittiFrameFiles


def read_velodyne(path: str | Path) -> np.ndarray:
    """(N, 4) float32 points of a KITTI Velodyne ``.bin`` (little-endian float32 x, y, z, reflectance).

    Raises:
        DataError: The file is missing, empty or not a whole number of 16-byte points.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        msg = f'{path}: cannot read the point cloud ({err})'
        raise DataError(msg) from err
    if not data or len(data) % _POINT_BYTES:
        msg = (
            f'{path}: {len(data)} bytes is not a positive whole number of {_POINT_BYTES}-byte points '
            '(float32 x, y, z, reflectance); the file is empty, truncated or not a KITTI Velodyne scan'
        )
        raise DataError(msg)
    return np.frombuffer(data, dtype='<f4').reshape(-1, 4).astype(np.float32)


def read_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file (RGBA drops alpha).

    Raises:
        DataError: The file is missing, not an image, or not 8-bit colour.
    """
    path = Path(path)
    try:
        return decode.rgb_from_image(decode.decode_image(path.read_bytes()))
    except OSError as err:
        msg = f'{path}: cannot read the image ({err})'
        raise DataError(msg) from err
    except DecodeError as err:
        msg = f'{path}: {err}; expected an 8-bit RGB image (KITTI image_2)'
        raise DataError(msg) from err


def _first_existing(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


def _is_frame_folder(folder: Path) -> bool:
    return (folder / FRAME_IMAGE).is_file() and _first_existing(folder, FRAME_POINTS) is not None


class KittiFolder:
    """The KITTI-format frames of a folder (see the module docstring for the layouts).

    Args:
        path: The folder.

    Raises:
        DataError: The folder does not exist or matches no layout.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            msg = f'{self.path}: not a folder; {_LAYOUTS_HELP}'
            raise DataError(msg)
        self._frame_folders: dict[str, Path] = {}
        self._points_dir = self.path
        points_dir = next((self.path / d for d in OBJECT_POINTS if (self.path / d).is_dir()), None)
        if _is_frame_folder(self.path):
            self.layout = 'frame'
            self._frame_folders = {self.path.name: self.path}
            self._names = [self.path.name]
        elif points_dir is not None:
            self.layout = 'object'
            self._points_dir = points_dir
            self._names = sorted(p.stem for p in points_dir.glob('*.bin'))
            if not self._names:
                msg = f'{points_dir}: no .bin scans; {_LAYOUTS_HELP}'
                raise DataError(msg)
        else:
            self.layout = 'frames'
            self._frame_folders = {p.name: p for p in sorted(self.path.iterdir()) if p.is_dir() and _is_frame_folder(p)}
            self._names = sorted(self._frame_folders)
            if not self._names:
                msg = f'{self.path}: no KITTI frames found; {_LAYOUTS_HELP}'
                raise DataError(msg)

    @property
    def frame_names(self) -> list[str]:
        """Frame names in sorted order."""
        return list(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def files(self, name: str) -> KittiFrameFiles:
        """The files of frame ``name``.

        Raises:
            DataError: No such frame, or one of its files is missing.
        """
        if name not in self._names:
            msg = f'{self.path}: no frame {name!r}; it has {self.frame_names[:10]}{" ..." if len(self) > 10 else ""}'
            raise DataError(msg)
        if self.layout == 'object':
            files = KittiFrameFiles(
                name,
                self._points_dir / f'{name}.bin',
                self.path / 'image_2' / f'{name}.png',
                self.path / 'calib' / f'{name}.txt',
            )
            for path in (files.image, files.calib):
                if not path.is_file():
                    msg = f'{path}: missing; frame {name} needs image_2/{name}.png and calib/{name}.txt'
                    raise DataError(msg)
            return files
        folder = self._frame_folders[name]
        points = _first_existing(folder, FRAME_POINTS)
        calib = _first_existing(folder, FRAME_CALIB)
        if points is None or calib is None:
            msg = f'{folder}: frame {name} needs one of {FRAME_POINTS} and one of {FRAME_CALIB}'
            raise DataError(msg)
        return KittiFrameFiles(name, points, folder / FRAME_IMAGE, calib)

    def read(self, name: str) -> KittiFrame:
        """Read frame ``name``.

        Raises:
            DataError: A file is missing or malformed, or the image size disagrees with the calibration.
        """
        files = self.files(name)
        calib = load_calib(files.calib)
        rgb = read_image(files.image)
        height, width = rgb.shape[:2]
        if calib.image_size is not None and calib.image_size != (width, height):
            msg = (
                f'{files.image}: image is {width}x{height} but {files.calib} states '
                f'{calib.image_size[0]}x{calib.image_size[1]}; the files belong to different cameras'
            )
            raise DataError(msg)
        return KittiFrame(
            name=name,
            points=read_velodyne(files.points),
            rgb=rgb,
            camera=calib.camera(width, height),
            T_cam_lidar=calib.T_cam_lidar,
            calib=calib,
            files=files,
        )
