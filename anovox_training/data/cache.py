"""Preprocessed-sample cache: one compressed ``.npz`` per frame, so training is not starved by decoding.

Decoding PNGs and point clouds and building the BEV costs far more than a
training step of a small model on 2 CPU cores, and is the same every epoch.
Each frame is preprocessed once into ``<cache_dir>/<spec key>/<scenario>/<frame>.npz``:

- ``image`` (H, W, 3) uint8 at the model size, or (0, 0, 3) without a camera
  frame, and ``bev`` (C, nx, ny) float32 (mostly zeros: compresses well): the
  frame's :class:`~anovox_perception.core.preprocess.FrameEncoding`, made by the same
  ``encode_frame`` the node runs;
- ``camera`` (6,) float64 [width, height, fx, fy, cx, cy] and ``T_cam_lidar`` (4, 4),
  NaN where the frame has none;
- ``gt_index`` (M,) int64 flat cell indices and ``gt_label`` (M,) uint8 labels of
  the ground-truth voxels inside the grid;
- ``anomalies`` (K, 7) float64 [x, y, z, l, w, h, label] of the frame's anomaly objects;
- ``fingerprint``: sizes and mtimes of the source files; a changed source is rebuilt.

Loading turns these back into the model inputs with
:func:`~anovox_perception.core.preprocess.assemble_inputs`, the function that also
finishes the node's preprocessing, so a training sample holds exactly the inputs
the node would build for that frame (normalisation, ``camera_valid`` and the
camera-geometry inputs are not cached: they are cheap, and the geometry is cached
per rig in memory).

The spec key hashes the ``InputSpec`` and the cache format version, so a model
with other inputs never reads stale samples (a model that ignores LiDAR intensity
caches its own BEVs).

A frame whose files cannot be read or decoded is a :class:`BadFrame`:
:meth:`SampleCache.build` reports it (``on_bad_frame='skip'``) or raises
(``'stop'``), whether it was built here or in a worker process; a worker that
dies outright is reported with the frames it may have been building.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from anovox_perception.core.atomic_file import atomic_writer
from anovox_perception.core.errors import ConfigError, DataError, DecodeError, GeometryError
from anovox_perception.core.geometry import CameraModel
from anovox_perception.core.preprocess import FrameEncoding, InputSpec, assemble_inputs, encode_frame
from anovox_training.data.frame import AnoVoxFrame
from anovox_training.data.reader import ScenarioReader
from anovox_training.data.targets import SparseTargets, sparse_targets

__all__ = [
    'BAD_FRAME_POLICIES',
    'CACHE_VERSION',
    'BadFrame',
    'CacheBuild',
    'CachedFrame',
    'FrameRef',
    'SampleCache',
    'evenly_spread',
    'frame_refs',
    'load_cached',
    'sample_arrays',
    'spec_key',
]

CACHE_VERSION = 1
SENSORS_USED = ('rgb', 'points', 'voxels', 'anomaly')
# What a cache build does with a frame it cannot read: leave it out (and report it) or raise.
BAD_FRAME_POLICIES = ('skip', 'stop')


@dataclass(frozen=True)
class FrameRef:
    """One source frame: its scenario folder and frame id."""

    scenario_dir: Path
    frame_id: int

    @property
    def scenario(self) -> str:
        return self.scenario_dir.name


@dataclass(frozen=True)
class BadFrame:
    """A source frame that cannot be made into a sample, and why."""

    ref: FrameRef
    problem: str

    def __str__(self) -> str:
        return self.problem


@dataclass(frozen=True)
class CacheBuild:
    """What :meth:`SampleCache.build` made: the usable frames' files and the frames it left out."""

    refs: list[FrameRef] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    bad: list[BadFrame] = field(default_factory=list)

    def summary(self, what: str, shown: int = 5) -> str:
        """One line: how many of ``what`` were left out, and the first ``shown`` reasons."""
        total = len(self.refs) + len(self.bad)
        reasons = '; '.join(str(b) for b in self.bad[:shown])
        more = f'; and {len(self.bad) - shown} more' if len(self.bad) > shown else ''
        return f'skipped {len(self.bad)} of {total} {what} that cannot be read: {reasons}{more}'


@dataclass(frozen=True)
class CachedFrame:
    """A cached frame, loaded: model inputs (batch dim 1), sparse ground truth and anomaly objects."""

    scenario: str
    frame_id: int
    inputs: dict[str, np.ndarray]
    targets: SparseTargets
    anomalies: np.ndarray


def spec_key(spec: InputSpec) -> str:
    """Short hash of the input spec and cache version (the cache sub-folder name)."""
    text = json.dumps({'spec': spec.to_dict(), 'version': CACHE_VERSION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def frame_refs(scenario_dirs: Iterable[Path]) -> list[FrameRef]:
    """Every frame with LiDAR points and voxels of the given scenarios, in order."""
    refs = []
    for folder in scenario_dirs:
        reader = ScenarioReader(folder)
        if 'points' not in reader.sources or 'voxels' not in reader.sources:
            continue
        for frame_id in reader.frame_ids:
            if not {'points', 'voxels'} & set(reader.missing_sensors(frame_id)):
                refs.append(FrameRef(Path(folder), frame_id))
    return refs


def evenly_spread(refs: Sequence[FrameRef], limit: int) -> list[FrameRef]:
    """At most ``limit`` of ``refs``, spread evenly over all of them (every scenario, not the first ones)."""
    if len(refs) <= limit:
        return list(refs)
    return [refs[i] for i in np.linspace(0, len(refs) - 1, limit).round().astype(int)]


def _fingerprint(reader: ScenarioReader, frame_id: int) -> str:
    parts = []
    for kind in SENSORS_USED:
        if kind in reader.sources and frame_id in reader.sources[kind].files:
            st = reader.file(kind, frame_id).stat()
            parts.append(f'{kind}:{st.st_size}:{st.st_mtime_ns}')
    return ';'.join(parts)


def sample_arrays(frame: AnoVoxFrame, spec: InputSpec) -> dict[str, np.ndarray]:
    """The arrays cached for one frame (see module docstring).

    Raises:
        DataError: When the frame has no points or no voxels.
    """
    where = f'{frame.scenario} frame {frame.frame_id}'
    if frame.points is None or frame.voxels is None:
        msg = f'{where}: needs LiDAR points and a voxel grid to make a training sample'
        raise DataError(msg)
    # An image without its camera model or extrinsics cannot be placed: the sample is LiDAR-only.
    has_camera = frame.rgb is not None and frame.camera is not None and frame.T_cam_lidar is not None
    encoding = encode_frame(spec, frame.rgb if has_camera else None, frame.points)
    image = encoding.image if encoding.image is not None else np.zeros((0, 0, 3), np.uint8)
    cam = frame.camera
    camera = (
        np.array([cam.width, cam.height, cam.fx, cam.fy, cam.cx, cam.cy], dtype=np.float64)
        if cam is not None
        else np.full(6, np.nan)
    )
    t = np.asarray(frame.T_cam_lidar, dtype=np.float64) if frame.T_cam_lidar is not None else np.full((4, 4), np.nan)
    targets = sparse_targets(frame.voxels, spec.grid, where)
    anomalies = np.array([[*a.location_m, *a.size_m, a.label] for a in frame.anomalies], dtype=np.float64).reshape(
        -1, 7
    )
    return {
        'image': image,
        'bev': encoding.bev,
        'camera': camera,
        'T_cam_lidar': t,
        'gt_index': targets.index,
        'gt_label': targets.label,
        'anomalies': anomalies,
    }


def load_cached(path: Path, spec: InputSpec) -> CachedFrame:
    """Load a cache file into model inputs (batch dim 1) and sparse targets.

    Raises:
        DataError: When the file is unreadable or incomplete.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        msg = f'cache file {path} is unreadable ({err}); delete it to rebuild'
        raise DataError(msg) from err
    needed = ('image', 'bev', 'camera', 'T_cam_lidar', 'gt_index', 'gt_label', 'anomalies', 'scenario', 'frame_id')
    missing = [k for k in needed if k not in arrays]
    if missing:
        msg = f'cache file {path} lacks {missing}; delete it to rebuild'
        raise DataError(msg)
    encoding = FrameEncoding(image=arrays['image'] if arrays['image'].size else None, bev=arrays['bev'])
    # The rig only where both parts were stored (NaN marks a frame without them), as sample_arrays wrote it.
    rig_stored = bool(np.all(np.isfinite(arrays['camera']))) and bool(np.all(np.isfinite(arrays['T_cam_lidar'])))
    try:
        camera = _camera_model(arrays['camera']) if rig_stored else None
        inputs = assemble_inputs(spec, encoding, camera, arrays['T_cam_lidar'] if rig_stored else None)
    except (DecodeError, GeometryError) as err:
        msg = f'cache file {path} does not match the input spec ({err}); delete it to rebuild'
        raise DataError(msg) from err
    return CachedFrame(
        scenario=str(arrays['scenario']),
        frame_id=int(arrays['frame_id']),
        inputs=inputs,
        targets=SparseTargets(index=arrays['gt_index'].astype(np.int64), label=arrays['gt_label'].astype(np.uint8)),
        anomalies=arrays['anomalies'],
    )


def _camera_model(stored: np.ndarray) -> CameraModel:
    """The camera model of a cache file's ``camera`` array [width, height, fx, fy, cx, cy]."""
    w, h, fx, fy, cx, cy = stored
    return CameraModel(int(w), int(h), float(fx), float(fy), float(cx), float(cy))


# One reader per scenario per worker process: indexing a scenario lists its folders.
_READERS: dict[Path, ScenarioReader] = {}


def _reader(folder: Path) -> ScenarioReader:
    reader = _READERS.get(folder)
    if reader is None:
        reader = _READERS[folder] = ScenarioReader(folder)
    return reader


def _stored_fingerprint(path: Path) -> str | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            return str(data['fingerprint']) if 'fingerprint' in data.files else None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return None


def _build_one(job: tuple[Path, int, Path, dict[str, Any]]) -> Path | str:
    """Cache one frame; its path, or the problem (a string) when the frame's files are unreadable.

    Data problems come back as values, not exceptions, so a worker process reports
    them in a form that always crosses the process boundary and names the file.
    """
    folder, frame_id, out, spec_dict = job
    spec = InputSpec.from_dict(spec_dict)
    try:
        reader = _reader(folder)
        fingerprint = _fingerprint(reader, frame_id)
        if out.is_file() and _stored_fingerprint(out) == fingerprint:
            return out
        sensors = [s for s in SENSORS_USED if s in reader.sources]
        arrays = sample_arrays(reader.read(frame_id, sensors), spec)
    except (DataError, OSError) as err:
        text = str(err)
        return text if folder.name in text else f'{folder.name} frame {frame_id}: {text}'
    with atomic_writer(out) as fh:
        np.savez_compressed(fh, scenario=reader.name, frame_id=frame_id, fingerprint=fingerprint, **arrays)
    return out


class SampleCache:
    """The cache folder for one input spec.

    Args:
        root: Cache root folder (created on demand).
        spec: Input specification; its hash names the sub-folder.
    """

    def __init__(self, root: str | os.PathLike[str], spec: InputSpec) -> None:
        self.spec = spec
        self.dir = Path(root) / spec_key(spec)

    def path(self, ref: FrameRef) -> Path:
        return self.dir / ref.scenario / f'{ref.frame_id}.npz'

    def ensure(self, refs: Sequence[FrameRef], workers: int = 1) -> list[Path]:
        """Build every missing or stale entry; return the cache files in ``refs`` order.

        Args:
            refs: Frames to cache.
            workers: Processes to build with (1: in this process).

        Raises:
            DataError: When a source frame cannot be read.
        """
        return self.build(refs, workers=workers, on_bad_frame='stop').paths

    def build(self, refs: Sequence[FrameRef], workers: int = 1, on_bad_frame: str = 'skip') -> CacheBuild:
        """Build every missing or stale entry; the usable frames' files and the unreadable frames.

        Args:
            refs: Frames to cache.
            workers: Processes to build with (1: in this process).
            on_bad_frame: ``'skip'``: leave unreadable frames out and list them in
                :attr:`CacheBuild.bad`; ``'stop'``: raise on the first one.

        Raises:
            DataError: On an unreadable frame with ``'stop'``, or when a worker process died
                (the message names the frames it may have been building).
            ConfigError: On an unknown ``on_bad_frame``.
        """
        if on_bad_frame not in BAD_FRAME_POLICIES:
            msg = f'SampleCache.build: on_bad_frame must be one of {BAD_FRAME_POLICIES}, got {on_bad_frame!r}'
            raise ConfigError(msg)
        jobs = [(r.scenario_dir, r.frame_id, self.path(r), self.spec.to_dict()) for r in refs]
        if workers <= 1 or len(jobs) < 2:
            results = [_build_one(job) for job in jobs]
        else:
            results = _build_in_pool(jobs, refs, workers)
        build = CacheBuild()
        for ref, result in zip(refs, results, strict=True):
            if isinstance(result, Path):
                build.refs.append(ref)
                build.paths.append(result)
                continue
            if on_bad_frame == 'stop':
                msg = f'{result} (set data.on_bad_frame: skip to train without such frames)'
                raise DataError(msg)
            build.bad.append(BadFrame(ref, result))
        return build

    def load(self, ref: FrameRef) -> CachedFrame:
        return load_cached(self.path(ref), self.spec)


def _build_in_pool(jobs: list[tuple[Path, int, Path, dict[str, Any]]], refs: Sequence[FrameRef], workers: int) -> list:
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_build_one, job) for job in jobs]
        try:
            return [future.result() for future in futures]
        except BrokenProcessPool as err:
            # A worker died (killed, out of memory, a crash in a decoder): name what was in flight.
            unfinished = [
                f'{r.scenario} frame {r.frame_id}' for r, f in zip(refs, futures, strict=True) if not _succeeded(f)
            ]
            shown = ', '.join(unfinished[:8]) + (f' and {len(unfinished) - 8} more' if len(unfinished) > 8 else '')
            msg = (
                f'a sample-cache worker process died ({err}) while building one of {len(unfinished)} frames: {shown}; '
                'find the bad file with python -m anovox_training.data.check, or build with data.cache_workers: 1'
            )
            raise DataError(msg) from err


def _succeeded(future: Any) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


def data_hash(paths: Sequence[Path]) -> str:
    """Hash of the source fingerprints of cached samples: identifies the training data."""
    digest = hashlib.sha256()
    for path in paths:
        with np.load(path, allow_pickle=False) as data:
            digest.update(f'{data["scenario"]}/{int(data["frame_id"])}/{data["fingerprint"]}\n'.encode())
    return digest.hexdigest()[:16]


__all__ += ['data_hash']
