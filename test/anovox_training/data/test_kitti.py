"""KITTI-format reader: the shipped real frame, both calibration formats, all three folder layouts, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anovox_perception.core.errors import DataError
from anovox_perception.core.geometry import transform_points
from anovox_training.data.kitti import KittiFolder, read_velodyne
from anovox_training.data.kitti_calib import load_calib

FRAME_DIR = Path(__file__).resolve().parents[3] / 'real' / 'kitti_000008'
CAR = 2


@pytest.fixture(scope='module')
def frame():
    return KittiFolder(FRAME_DIR).read('kitti_000008')


@pytest.fixture(scope='module')
def calib_json():
    return json.loads((FRAME_DIR / 'calib.json').read_text())


def kitti_calib_txt(calib_json: dict) -> str:
    """An object-benchmark calib file with the frame's matrices, printed as KITTI prints them."""

    def row(key: str, matrix) -> str:
        return f'{key}: ' + ' '.join(f'{v:.12e}' for v in np.asarray(matrix).reshape(-1))

    p2 = np.asarray(calib_json['cam2img_P2'])[:3]
    p0 = p2.copy()
    p0[:, 3] = 0.0
    return '\n'.join(
        [
            row('P0', p0),
            row('P1', p0),
            row('P2', p2),
            row('P3', p2),
            row('R0_rect', np.asarray(calib_json['R0_rect'])[:3, :3]),
            row('Tr_velo_to_cam', np.asarray(calib_json['Tr_velo_to_cam'])[:3]),
            row('Tr_imu_to_velo', np.eye(4)[:3]),
        ]
    )


def points_in_camera_box(points_rect: np.ndarray, box) -> np.ndarray:
    """Mask of rectified-camera points inside a KITTI box (x, y, z bottom centre, l, h, w, ry about camera y)."""
    x, y, z, length, height, width, ry = box
    d = points_rect - [x, y, z]
    c, s = np.cos(ry), np.sin(ry)
    along, across = c * d[:, 0] - s * d[:, 2], s * d[:, 0] + c * d[:, 2]
    return (np.abs(along) <= length / 2) & (np.abs(across) <= width / 2) & (d[:, 1] <= 0) & (d[:, 1] >= -height)


def test_the_shipped_frame_reads_as_the_runtime_needs_it(frame):
    assert frame.points.shape == (17238, 4) and frame.points.dtype == np.float32
    assert frame.rgb.shape == (375, 1242, 3) and frame.rgb.dtype == np.uint8
    assert (frame.camera.width, frame.camera.height) == (1242, 375)
    camera = frame.camera
    assert (camera.fx, camera.fy, camera.cx, camera.cy) == (721.5377, 721.5377, 609.5593, 172.854)  # P2's K
    assert np.isfinite(frame.points).all() and 0.0 <= frame.points[:, 3].min() <= frame.points[:, 3].max() <= 1.0
    assert KittiFolder(FRAME_DIR).layout == 'frame'


def test_camera_and_extrinsic_reproduce_kittis_projection_p2_offset_included(frame, calib_json):
    lidar2img = np.asarray(calib_json['lidar2img'])[:3]
    np.testing.assert_allclose(frame.camera.matrix @ frame.T_cam_lidar[:3], lidar2img, rtol=0, atol=1e-9)
    # The offset of camera 2 (about 6 cm along x) is in the extrinsic, not lost.
    offset = frame.T_cam_lidar[:3, 3] - frame.calib.lidar2cam_rect[:3, 3]
    assert 0.05 < offset[0] < 0.07
    r = frame.T_cam_lidar[:3, :3]
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-6)


def test_lidar_points_of_each_car_project_inside_its_image_box(frame):
    objects = json.loads((FRAME_DIR / 'objects.json').read_text())['instances']
    cars = [o for o in objects if o['label_3d'] == CAR and o['num_lidar_pts'] >= 50]
    assert len(cars) >= 5
    rect = transform_points(frame.calib.lidar2cam_rect, frame.points)
    for car in cars:
        inside = points_in_camera_box(rect, car['bbox_3d_camera_xyz_lhw_ry'])
        # The box holds about as many points as the annotation counted: the LiDAR -> camera chain is right.
        assert abs(inside.sum() - car['num_lidar_pts']) <= 0.15 * car['num_lidar_pts']
        uv, visible = frame.camera.project(transform_points(frame.T_cam_lidar, frame.points[inside]))
        x1, y1, x2, y2 = car['bbox_2d_xyxy']
        in_box = visible & (uv[:, 0] >= x1) & (uv[:, 0] <= x2) & (uv[:, 1] >= y1) & (uv[:, 1] <= y2)
        assert in_box.mean() >= 0.9, car


def test_raw_calib_txt_and_json_give_the_same_matrices(tmp_path, frame, calib_json):
    path = tmp_path / '000008.txt'
    path.write_text(kitti_calib_txt(calib_json))
    calib = load_calib(path)
    np.testing.assert_allclose(calib.P2, frame.calib.P2, rtol=1e-11, atol=0)
    np.testing.assert_allclose(calib.lidar2cam_rect, frame.calib.lidar2cam_rect, rtol=0, atol=1e-6)
    np.testing.assert_allclose(calib.T_cam_lidar, frame.T_cam_lidar, rtol=0, atol=1e-6)
    assert calib.image_size is None and frame.calib.image_size == (1242, 375)


def test_json_without_lidar2cam_rect_composes_r0_rect_and_tr_velo_to_cam(tmp_path, frame, calib_json):
    reduced = {k: v for k, v in calib_json.items() if k not in ('lidar2cam_rect', 'lidar2img')}
    path = tmp_path / 'calib.json'
    path.write_text(json.dumps(reduced))
    np.testing.assert_allclose(load_calib(path).T_cam_lidar, frame.T_cam_lidar, atol=1e-6)


def write_object_layout(root: Path, calib_json: dict, ids: tuple[str, ...]) -> Path:
    for sub in ('velodyne', 'image_2', 'calib'):
        (root / sub).mkdir(parents=True)
    for frame_id in ids:
        shutil.copy(FRAME_DIR / 'points_xyzi.bin', root / 'velodyne' / f'{frame_id}.bin')
        shutil.copy(FRAME_DIR / 'image_2.png', root / 'image_2' / f'{frame_id}.png')
        (root / 'calib' / f'{frame_id}.txt').write_text(kitti_calib_txt(calib_json))
    return root


def test_kitti_object_layout_is_read_frame_by_id(tmp_path, frame, calib_json):
    folder = KittiFolder(write_object_layout(tmp_path / 'training', calib_json, ('000008', '000002')))
    assert folder.layout == 'object' and folder.frame_names == ['000002', '000008']
    read = folder.read('000008')
    np.testing.assert_array_equal(read.points, frame.points)
    np.testing.assert_array_equal(read.rgb, frame.rgb)
    assert read.camera == frame.camera
    np.testing.assert_allclose(read.T_cam_lidar, frame.T_cam_lidar, atol=1e-6)


def test_folder_of_frame_folders_lists_each_frame(tmp_path):
    for name in ('b_frame', 'a_frame'):
        shutil.copytree(FRAME_DIR, tmp_path / name)
    (tmp_path / 'notes').mkdir()
    folder = KittiFolder(tmp_path)
    assert folder.layout == 'frames' and folder.frame_names == ['a_frame', 'b_frame']
    assert folder.read('b_frame').points.shape == (17238, 4)
    with pytest.raises(DataError, match="no frame 'notes'"):
        folder.read('notes')


@pytest.mark.parametrize(
    ('size', 'match'),
    [(0, r'points_xyzi.bin: 0 bytes is not a positive whole number'), (17, r'17 bytes .* truncated')],
)
def test_velodyne_file_of_the_wrong_size_is_refused(tmp_path, size, match):
    path = tmp_path / 'points_xyzi.bin'
    path.write_bytes(b'\0' * size)
    with pytest.raises(DataError, match=match):
        read_velodyne(path)


def replace_line(text: str, key: str, line: str | None) -> str:
    """``text`` with the ``key:`` line replaced by ``line`` (removed when None)."""
    lines = [line if x.startswith(f'{key}:') else x for x in text.splitlines()]
    return '\n'.join(x for x in lines if x is not None)


@pytest.mark.parametrize(
    ('edit', 'match'),
    [
        (lambda t: replace_line(t, 'Tr_velo_to_cam', None), r"000008.txt: missing \['Tr_velo_to_cam'\]"),
        (lambda t: replace_line(t, 'P2', 'P2: 1 2 3'), r'P2 must hold 12 numbers \(3x4\), got 3'),
        (lambda t: replace_line(t, 'R0_rect', 'R0_rect: 1 0 0 0 1 0 0 0 one'), r'line 5 \(R0_rect\)'),
        (lambda t: t + '\nno colon here', r'line 8: expected "key: numbers"'),
        (lambda t: t + '\nP2: ' + ' '.join(['1'] * 12), r"line 8: key 'P2' appears twice"),
        (lambda t: replace_line(t, 'R0_rect', 'R0_rect: 2 0 0 0 1 0 0 0 1'), 'not a rigid transform'),
        (
            lambda t: replace_line(t, 'P2', 'P2: 700 5 600 0 0 700 170 0 0 0 1 0'),
            r'P2 has skew 5\.0',
        ),
    ],
)
def test_malformed_calib_txt_names_the_file_and_the_problem(tmp_path, calib_json, edit, match):
    path = tmp_path / '000008.txt'
    path.write_text(edit(kitti_calib_txt(calib_json)))
    with pytest.raises(DataError, match=match):
        load_calib(path)


@pytest.mark.parametrize(
    ('edit', 'match'),
    [
        (lambda c: {k: v for k, v in c.items() if k != 'cam2img_P2'}, 'calib.json: missing cam2img_P2'),
        (
            lambda c: {k: v for k, v in c.items() if k not in ('lidar2cam_rect', 'R0_rect')},
            r'missing lidar2cam_rect \(or R0_rect and Tr_velo_to_cam\)',
        ),
        (lambda c: {**c, 'lidar2img': np.eye(4).tolist()}, 'lidar2img disagrees with cam2img_P2 @ lidar2cam_rect'),
        (lambda c: {**c, 'R0_rect': np.eye(4).tolist()}, 'lidar2cam_rect disagrees with R0_rect @ Tr_velo_to_cam'),
        (lambda c: {**c, 'cam2img_P2': [[1, 2], [3, 4]]}, r'cam2img_P2 must be 3x4 .* got shape \(2, 2\)'),
        (lambda c: {**c, 'image_width': 'wide'}, 'image_width and image_height must both be integers'),
        (lambda c: [1, 2], 'expected a JSON object'),
    ],
)
def test_malformed_calib_json_names_the_file_and_the_problem(tmp_path, calib_json, edit, match):
    path = tmp_path / 'calib.json'
    path.write_text(json.dumps(edit(calib_json)))
    with pytest.raises(DataError, match=match):
        load_calib(path)


def test_calib_json_that_is_not_json_says_where_parsing_stopped(tmp_path):
    path = tmp_path / 'calib.json'
    path.write_text('{"cam2img_P2": [1, 2,\n')
    with pytest.raises(DataError, match=r'calib.json: invalid JSON at line 2'):
        load_calib(path)


def test_image_that_disagrees_with_the_calibration_size_is_refused(tmp_path):
    shutil.copytree(FRAME_DIR, tmp_path / 'frame')
    Image.new('RGB', (640, 480)).save(tmp_path / 'frame' / 'image_2.png')
    with pytest.raises(DataError, match=r'image_2.png: image is 640x480 but .*calib.json states 1242x375'):
        KittiFolder(tmp_path / 'frame').read('frame')


def test_image_that_is_not_an_image_is_refused(tmp_path):
    shutil.copytree(FRAME_DIR, tmp_path / 'frame')
    (tmp_path / 'frame' / 'image_2.png').write_bytes(b'not a png')
    with pytest.raises(DataError, match=r'image_2.png: not a readable image'):
        KittiFolder(tmp_path / 'frame').read('frame')


def test_object_layout_frame_without_calibration_names_the_missing_file(tmp_path, calib_json):
    root = write_object_layout(tmp_path / 'training', calib_json, ('000008',))
    (root / 'calib' / '000008.txt').unlink()
    with pytest.raises(DataError, match=r'calib/000008.txt: missing'):
        KittiFolder(root).read('000008')


def test_folder_with_no_frames_says_which_layouts_it_accepts(tmp_path):
    with pytest.raises(DataError, match='no KITTI frames found; expected a frame folder'):
        KittiFolder(tmp_path)
    with pytest.raises(DataError, match='not a folder'):
        KittiFolder(tmp_path / 'absent')
