"""Mirror augmentation: a mirrored sample is exactly the sample of the mirrored scene and rig."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anovox_perception.core.errors import ConfigError
from anovox_perception.core.geometry import CameraModel, GridSpec, make_transform, rotation_from_rpy
from anovox_perception.core.preprocess import INPUT_NAMES, build_inputs, points_to_bev
from anovox_training.model import ModelConfig
from anovox_training.train.augment import check_mirrorable, intensity_channel, jitter_intensity, mirror_mask, mirror_y

LIDAR_MIRROR = np.diag([1.0, -1.0, 1.0, 1.0])  # y -> -y in the LiDAR frame
OPTICAL_MIRROR = np.diag([-1.0, 1.0, 1.0, 1.0])  # x (image right) -> -x in the camera optical frame


def _scene(seed: int = 0):
    rng = np.random.default_rng(seed)
    spec = ModelConfig.tiny().input_spec()
    # An asymmetric rig: off-centre principal point, yawed and shifted camera.
    camera = CameraModel(spec.image_width, spec.image_height, 80.0, 80.0, 41.3, 30.0)
    optical_from_body = np.array([[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=float)
    body_from_camera = make_transform(rotation_from_rpy(0.0, 0.05, 0.2), np.array([0.3, 0.4, 0.1]))
    t_cam_lidar = optical_from_body @ np.linalg.inv(body_from_camera)
    points = np.column_stack(
        [rng.uniform(-4, 12, 4000), rng.uniform(-8, 8, 4000), rng.uniform(-2.9, 0.9, 4000), rng.uniform(0, 1, 4000)]
    )
    image = rng.integers(0, 256, (spec.image_height, spec.image_width, 3), dtype=np.uint8)
    return spec, camera, t_cam_lidar, points, image


def _batch(inputs, labels):
    batch = {name: torch.from_numpy(inputs[name]) for name in INPUT_NAMES}
    batch['labels'] = torch.from_numpy(labels)[None]
    return batch


def test_mirroring_equals_preprocessing_the_mirrored_scene_seen_by_the_mirrored_rig():
    spec, camera, t_cam_lidar, points, image = _scene()
    nx, ny, nz = spec.grid.shape
    labels = np.random.default_rng(1).integers(0, 30, (nx, ny, nz), dtype=np.uint8)
    original = _batch(build_inputs(spec, image, points, camera, t_cam_lidar), labels)

    mirrored_points = points * np.array([1.0, -1.0, 1.0, 1.0])
    mirrored_camera = CameraModel(
        camera.width, camera.height, camera.fx, camera.fy, camera.width - camera.cx, camera.cy
    )
    mirrored_rig = OPTICAL_MIRROR @ t_cam_lidar @ LIDAR_MIRROR
    expected = _batch(
        build_inputs(spec, image[:, ::-1].copy(), mirrored_points, mirrored_camera, mirrored_rig),
        labels[:, ::-1].copy(),
    )
    got = mirror_y(original, torch.tensor([True]))
    for name in (*INPUT_NAMES, 'labels'):
        torch.testing.assert_close(got[name], expected[name], atol=1e-5, rtol=0, msg=name)
    # And mirroring twice gives the sample back.
    twice = mirror_y(got, torch.tensor([True]))
    for name in (*INPUT_NAMES, 'labels'):
        torch.testing.assert_close(twice[name], original[name], atol=0, rtol=0)


def test_only_the_selected_samples_of_a_batch_are_mirrored():
    spec, camera, t_cam_lidar, points, image = _scene()
    nx, ny, nz = spec.grid.shape
    one = _batch(build_inputs(spec, image, points, camera, t_cam_lidar), np.zeros((nx, ny, nz), np.uint8))
    batch = {k: torch.cat([v, v]) for k, v in one.items()}
    got = mirror_y(batch, torch.tensor([False, True]))
    flipped = mirror_y(one, torch.tensor([True]))
    for name, value in got.items():
        torch.testing.assert_close(value[:1], one[name], atol=0, rtol=0)
        torch.testing.assert_close(value[1:], flipped[name], atol=0, rtol=0)
    assert not torch.equal(got['bev'][0], got['bev'][1])


def test_mirror_choices_are_seeded_and_follow_the_probability():
    a = mirror_mask(4000, 0.5, seed=3, step=10, rank=0)
    assert torch.equal(a, mirror_mask(4000, 0.5, seed=3, step=10, rank=0))
    assert not torch.equal(a, mirror_mask(4000, 0.5, seed=3, step=11, rank=0))
    assert 0.45 < a.float().mean() < 0.55
    assert not mirror_mask(8, 0.0, seed=3, step=10, rank=0).any()


def test_a_grid_not_symmetric_in_y_cannot_be_mirrored():
    check_mirrorable(GridSpec())
    with pytest.raises(ConfigError, match='symmetric in y'):
        check_mirrorable(GridSpec(y_min_m=-40.0, y_max_m=30.0))


def _bev_batch(batch: int = 64):
    spec = ModelConfig.tiny().input_spec()
    rng = np.random.default_rng(3)
    bevs = []
    for _ in range(batch):
        points = np.column_stack(
            [rng.uniform(-4, 12, 500), rng.uniform(-8, 8, 500), rng.uniform(-2.9, 0.9, 500), rng.uniform(0, 1, 500)]
        )
        bevs.append(points_to_bev(points, spec))
    return spec, torch.from_numpy(np.stack(bevs))


def test_intensity_jitter_remaps_only_the_intensity_channel_monotonically_or_drops_it():
    spec, bev = _bev_batch()
    channel = intensity_channel(spec.grid)
    out = jitter_intensity(bev, channel, p_jitter=0.5, p_drop=0.25, seed=0, step=4, rank=0)
    assert torch.equal(out, jitter_intensity(bev, channel, 0.5, 0.25, seed=0, step=4, rank=0))
    assert not torch.equal(out, jitter_intensity(bev, channel, 0.5, 0.25, seed=0, step=5, rank=0))
    others = [c for c in range(bev.shape[1]) if c != channel]
    assert torch.equal(out[:, others], bev[:, others])
    x, y = bev[:, channel], out[:, channel]
    dropped = (y == 0).flatten(1).all(1)
    changed = (y != x).flatten(1).any(1) & ~dropped
    assert 8 <= int(dropped.sum()) <= 24 and int(changed.sum()) >= 16  # 64 samples: about 16 dropped, 24 jittered
    assert torch.all((y >= 0) & (y <= 1)) and torch.all(y[x == 0] == 0)  # empty columns stay empty
    for i in torch.nonzero(changed).flatten().tolist():  # gain and gamma keep the order of intensities
        order = torch.argsort(x[i].flatten(), stable=True)
        assert torch.all(torch.diff(y[i].flatten()[order]) >= 0)


def test_a_dropped_intensity_is_the_bev_of_a_cloud_without_intensity_and_zero_probabilities_change_nothing():
    spec, bev = _bev_batch(4)
    channel = intensity_channel(spec.grid)
    assert jitter_intensity(bev, channel, 0.0, 0.0, seed=0, step=0, rank=0) is bev
    dropped = jitter_intensity(bev, channel, 0.0, 1.0, seed=0, step=0, rank=0)
    assert not dropped[:, channel].any()
    torch.testing.assert_close(dropped[:, :channel], bev[:, :channel], rtol=0, atol=0)
