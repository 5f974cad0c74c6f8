"""Tiny AnoVox scenarios written by hand (PIL, numpy, text), independent of the generator.

Each builder writes one scenario folder and returns the arrays it wrote, in the
REP-103 LiDAR frame, so tests can compare what the reader returns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from anovox_perception.core.geometry import anovox_voxel_index
from anovox_training.data.labels import LABEL_COLORS
from anovox_training.data.pcd import encode_pcd

WIDTH, HEIGHT = 16, 12
PCD_HEADER = (
    '# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\nFIELDS {fields}\nSIZE {sizes}\nTYPE {types}\n'
    'COUNT {counts}\nWIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA {data}\n'
)


MOUNT = '(0, 0, 1.8)(0, 0, 0)'
CAMERA_FOLDERS_B = {
    'rgb': f'RGB-CAM{MOUNT}_111',
    'depth': f'DEPTH_CAM{MOUNT}_222',
    'semantic': f'SEMANTIC-CAM{MOUNT}_333',
    'instance': f'INSTANCE-CAM{MOUNT}_444',
}
LIDAR_FOLDERS_B = {'points': f'LIDAR{MOUNT}_555', 'semantic_points': f'SEMANTIC-LIDAR{MOUNT}_666'}
FOLDERS_A = {
    'rgb': 'RGB_IMG',
    'depth': 'DEPTH_IMG',
    'semantic': 'SEMANTIC_IMG',
    'points': 'PCD',
    'semantic_points': 'SEMANTIC_PCD',
    'voxels': 'VOXEL_GRID',
    'action': 'ACTION',
    'anomaly': 'ANOMALY',
}


@dataclass
class FrameTruth:
    rgb: np.ndarray
    depth_m: np.ndarray
    semantic: np.ndarray
    instance: np.ndarray
    points: np.ndarray
    semantic_points: np.ndarray
    voxels: np.ndarray
    timestamp_s: float
    lidar_matrix: np.ndarray


@dataclass
class ScenarioTruth:
    path: Path
    frames: dict[int, FrameTruth] = field(default_factory=dict)


def encode_carla_depth(depth_m: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 CARLA depth image of metres (R least significant)."""
    code = np.rint(depth_m / 1000.0 * (256**3 - 1)).astype(np.int64)
    return np.stack([code & 255, (code >> 8) & 255, (code >> 16) & 255], axis=-1).astype(np.uint8)


def make_frame(frame_id: int, seed: int = 0) -> FrameTruth:
    """Arrays of one frame: a small image set and a point cloud with an anomaly cluster ahead at x = 10 m."""
    rng = np.random.default_rng(seed + frame_id)
    rgb = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    depth = rng.uniform(1.0, 90.0, (HEIGHT, WIDTH))
    # Quantise as the encoding does, so decoded depth equals the truth to float32 precision.
    depth_code = np.rint(depth / 1000.0 * (256**3 - 1))
    depth_m = (depth_code * 1000.0 / (256**3 - 1)).astype(np.float32)
    semantic = rng.choice(np.array([1, 2, 7, 14, 24, 30], dtype=np.uint8), (HEIGHT, WIDTH))
    instance = rng.integers(0, 65536, (HEIGHT, WIDTH)).astype(np.int32)
    ground = np.column_stack([rng.uniform(-20, 40, 200), rng.uniform(-10, 10, 200), np.full(200, -1.8)])
    # Off-centre in y so a mirrored y convention would put it elsewhere.
    anomaly = rng.normal([10.0, 3.0, -1.2], 0.2, (40, 3))
    xyz = np.concatenate([ground, anomaly]).astype(np.float32)
    labels = np.concatenate([np.full(200, 1.0), np.full(40, 30.0)]).astype(np.float32)
    semantic_points = np.column_stack([xyz, labels]).astype(np.float32)
    points = np.column_stack([xyz, rng.uniform(0, 1, len(xyz))]).astype(np.float32)
    index = anovox_voxel_index(xyz)
    _, first = np.unique(index, axis=0, return_index=True)
    voxels = np.column_stack([index[first], labels[first].astype(np.int64)]).astype(np.uint16)
    lidar_matrix = np.eye(4)
    lidar_matrix[:3, 3] = [100.0 + frame_id, 50.0, 1.8]
    return FrameTruth(rgb, depth_m, semantic, instance, points, semantic_points, voxels, 0.1 * frame_id, lidar_matrix)


def _save_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _matrix_text(matrix: np.ndarray) -> str:
    return str([[float(v) for v in row] for row in matrix])


def write_action(path: Path, frame_id: int, truth: FrameTruth, style: str = 'b') -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if style == 'b':
        lines = [
            f'frame ; {frame_id}',
            f'timestamp ; {truth.timestamp_s}',
            'ego_location ; [100.0, 50.0, 0.0]',
            'ego_velocity ; [5.0, 0.0, 0.0]',
            f'camera_transformation ; {_matrix_text(truth.lidar_matrix)}',
            f'lidar_transformation ; {_matrix_text(truth.lidar_matrix)}',
            'weather ; ClearNoon',
        ]
    else:  # AnoVox's own generator: spaces in keys, Python reprs
        lines = [
            f'frame_id ; {frame_id}',
            'scenario_id ; abc',
            'speed ; 18.5',
            'hand_brake ; False',
            'center_of_mass ; (0.1, 0.0, -0.3)',
            "steering_curve ; ('0.0,1.0)', '(120.0/0.3')",
            f'camera transformation matrix ; {_matrix_text(truth.lidar_matrix)}',
            f'lidar transformation matrix ; {_matrix_text(truth.lidar_matrix)}',
        ]
    path.write_text('\n'.join(lines) + '\n')


def write_anomaly(path: Path, style: str = 'b', truth: FrameTruth | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if style == 'b':
        text = (
            'anomaly_id ; 7\ncategory ; animal\nlabel ; 30\nlocation ; [10.0, 3.0, -1.2]\n'
            'size ; [1.0, 0.5, 0.8]\nyaw_deg ; 15.0\ninstance_id ; 7\n'
        )
    elif style == 'none':
        text = 'anomaly_id ; -1\ncategory ; none\n'
    else:  # AnoVox: world location in CARLA axes (y right)
        assert truth is not None
        world = truth.lidar_matrix[:3, 3] + np.array([10.0, -3.0, -1.2])
        text = (
            'frame_id ; 1\nanomaly_id ; 4242\nanomaly_type_id ; static.prop.dog\nanomaly_is_alive ; True\n'
            f'semantic_tags ; [30]\nlocation ; ({world[0]}, {world[1]}, {world[2]})\n'
            'velocity ; (0.0, 0.0, 0.0)\nrole_name ; anomaly\n'
        )
    path.write_text(text)


def sensor_setup_b(style: str = 'carla') -> dict[str, dict[str, object]]:
    """sensor_setup.json content: 'carla' (the legacy generator output, CARLA blueprint ids) or 'anovox' (AnoVox's)."""
    setup: dict[str, dict[str, object]] = {}
    carla_types = {
        'rgb': 'sensor.camera.rgb',
        'depth': 'sensor.camera.depth',
        'semantic': 'sensor.camera.semantic_segmentation',
        'instance': 'sensor.camera.instance_segmentation',
        'points': 'sensor.lidar.ray_cast',
        'semantic_points': 'sensor.lidar.ray_cast_semantic',
    }
    anovox_types = {
        'rgb': 'RGB-CAM',
        'depth': 'DEPTH_CAM',
        'semantic': 'SEMANTIC-CAM',
        'instance': 'INSTANCE-CAM',
        'points': 'LIDAR',
        'semantic_points': 'SEMANTIC-LIDAR',
    }
    for kind, folder in {**CAMERA_FOLDERS_B, **LIDAR_FOLDERS_B}.items():
        camera = kind in CAMERA_FOLDERS_B
        if style == 'carla':
            args = {'image_size_x': str(WIDTH), 'image_size_y': str(HEIGHT), 'fov': '90'} if camera else {}
            entry = {'sensor_type': carla_types[kind], 'file_ending': 'png' if camera else 'npy'}
        else:
            args = {'image_height': HEIGHT, 'image_width': WIDTH, 'camera_fov': 90.0} if camera else {'range': 100.0}
            entry = {'sensor_type': anovox_types[kind], 'file_ending': '.png' if camera else '.npy', 'save_data': True}
        setup[folder] = {**entry, 'location': [0, 0, 1.8], 'rotation': [0, 0, 0], 'args': args}
    return setup


def write_layout_b(
    root: Path, name: str = 'Scenario_b', frame_ids: tuple[int, ...] = (100, 101), style: str = 'carla'
) -> ScenarioTruth:
    """A Layout B scenario; ``style`` 'carla' stores point y negated (legacy generator output), 'anovox' as AnoVox does.

    'anovox' also writes semantic images single-channel and the semantic LiDAR as
    float64, as AnoVox's generator does, and its csv dialect.
    """
    scenario = ScenarioTruth(root / name)
    base = scenario.path
    base.mkdir(parents=True)
    (base / 'sensor_setup.json').write_text(json.dumps(sensor_setup_b(style)))
    flip = np.array([1.0, -1.0, 1.0, 1.0], dtype=np.float32) if style == 'carla' else np.ones(4, np.float32)
    for frame_id in frame_ids:
        truth = make_frame(frame_id)
        scenario.frames[frame_id] = truth

        def path(folder: str, ext: str, frame_id: int = frame_id) -> Path:
            return base / folder / f'{folder}_{frame_id}.{ext}'

        _save_png(path(CAMERA_FOLDERS_B['rgb'], 'png'), truth.rgb)
        _save_png(path(CAMERA_FOLDERS_B['depth'], 'png'), encode_carla_depth(truth.depth_m))
        if style == 'carla':
            zeros = np.zeros_like(truth.semantic)
            _save_png(path(CAMERA_FOLDERS_B['semantic'], 'png'), np.stack([truth.semantic, zeros, zeros], -1))
        else:
            _save_png(path(CAMERA_FOLDERS_B['semantic'], 'png'), truth.semantic)
        inst = truth.instance
        instance_rgb = np.stack([truth.semantic, inst & 255, inst >> 8], -1).astype(np.uint8)
        _save_png(path(CAMERA_FOLDERS_B['instance'], 'png'), instance_rgb)
        for kind, folder in LIDAR_FOLDERS_B.items():
            stored = getattr(truth, kind) * flip
            if style != 'carla' and kind == 'semantic_points':
                stored = stored.astype(np.float64)
            path(folder, 'npy').parent.mkdir(parents=True, exist_ok=True)
            np.save(path(folder, 'npy'), stored)
        path('VOXEL_GRID', 'npy').parent.mkdir(parents=True, exist_ok=True)
        np.save(path('VOXEL_GRID', 'npy'), truth.voxels)
        write_action(path('ACTION', 'csv'), frame_id, truth, 'b' if style == 'carla' else 'anovox')
        write_anomaly(path('ANOMALY', 'csv'), 'b' if style == 'carla' else 'anovox', truth)
    return scenario


def colour_image(labels: np.ndarray) -> np.ndarray:
    lut = np.zeros((256, 3), dtype=np.uint8)
    for label, colour in LABEL_COLORS.items():
        lut[label] = colour
    return lut[labels]


def _structured(points: np.ndarray, fourth: str, dtype: str = 'f4') -> np.ndarray:
    cloud = np.zeros(len(points), dtype=[('x', 'f4'), ('y', 'f4'), ('z', 'f4'), (fourth, dtype)])
    for i, name in enumerate(('x', 'y', 'z')):
        cloud[name] = points[:, i]
    cloud[fourth] = points[:, 3]
    return cloud


def packed_rgb(labels: np.ndarray) -> np.ndarray:
    """float32 PCL-packed rgb values of label colours."""
    colours = colour_image(labels.astype(np.uint8)).astype(np.uint32)
    bits = (colours[:, 0] << 16) | (colours[:, 1] << 8) | colours[:, 2]
    return bits.astype(np.uint32).view(np.float32)


def write_layout_a(root: Path, name: str = 'Scenario_a', frame_ids: tuple[int, ...] = (7, 8)) -> ScenarioTruth:
    """A Layout A scenario: colour-coded semantics, ascii PCD, binary semantic PCD with packed rgb."""
    scenario = ScenarioTruth(root / name)
    base = scenario.path
    for frame_id in frame_ids:
        truth = make_frame(frame_id)
        scenario.frames[frame_id] = truth

        def path(kind: str, ext: str, frame_id: int = frame_id) -> Path:
            folder = FOLDERS_A[kind]
            return base / folder / f'{folder}_{frame_id}.{ext}'

        _save_png(path('rgb', 'png'), truth.rgb)
        _save_png(path('depth', 'png'), encode_carla_depth(truth.depth_m))
        _save_png(path('semantic', 'png'), colour_image(truth.semantic))
        path('points', 'pcd').parent.mkdir(parents=True, exist_ok=True)
        path('points', 'pcd').write_bytes(encode_pcd(_structured(truth.points, 'intensity'), data='ascii'))
        sem = truth.semantic_points.copy()
        cloud = _structured(sem, 'rgb')
        cloud['rgb'] = packed_rgb(sem[:, 3])
        path('semantic_points', 'pcd').parent.mkdir(parents=True, exist_ok=True)
        path('semantic_points', 'pcd').write_bytes(encode_pcd(cloud, data='binary'))
        path('voxels', 'npy').parent.mkdir(parents=True, exist_ok=True)
        np.save(path('voxels', 'npy'), truth.voxels)
        write_action(path('action', 'csv'), frame_id, truth, 'anovox')
        write_anomaly(path('anomaly', 'csv'), 'anovox', truth)
    return scenario


def lzf_literals(data: bytes) -> bytes:
    """A valid LZF stream made of literal runs only (control byte = run length - 1, at most 32)."""
    out = bytearray()
    for start in range(0, len(data), 32):
        chunk = data[start : start + 32]
        out.append(len(chunk) - 1)
        out += chunk
    return bytes(out)


def binary_compressed(cloud: np.ndarray) -> bytes:
    names = cloud.dtype.names
    header = PCD_HEADER.format(
        fields=' '.join(names),
        sizes=' '.join(str(cloud.dtype[n].itemsize) for n in names),
        types=' '.join({'f': 'F', 'u': 'U', 'i': 'I'}[cloud.dtype[n].kind] for n in names),
        counts=' '.join('1' for _ in names),
        n=len(cloud),
        data='binary_compressed',
    ).encode()
    raw = b''.join(np.ascontiguousarray(cloud[n]).tobytes() for n in names)  # field-major
    payload = lzf_literals(raw)
    sizes = np.array([len(payload), len(raw)], dtype='<u4').tobytes()
    return header + sizes + payload
