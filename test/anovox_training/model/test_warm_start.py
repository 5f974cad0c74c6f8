"""Warm start: matching weights are copied; a LiDAR-only source makes the fusion model start near it."""

from __future__ import annotations

import pytest
import torch

from anovox_perception.core.errors import ConfigError, DataError
from anovox_training.model import ModelConfig, build_model, save_checkpoint
from anovox_training.model.warm_start import warm_start

torch.set_num_threads(1)


def _trained_like(cfg: ModelConfig, seed: int):
    """A model whose weights and batch-norm statistics are far from a fresh initialisation."""
    torch.manual_seed(seed)
    model = build_model(cfg)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
        model.train()
        for _ in range(2):  # moves every batch norm's running statistics
            model(*model.example_inputs(batch=2).values())
    return model.eval()


def _save(model, cfg, path):
    state = {'model': model.state_dict(), 'config': {'model': cfg.to_dict()}, 'input_spec': cfg.input_spec().to_dict()}
    return save_checkpoint(path, state)


def _outputs(model, inputs):
    with torch.no_grad():
        return model.eval()(*inputs.values())


def test_a_fusion_model_warm_started_from_a_lidar_only_checkpoint_starts_with_about_its_outputs(tmp_path):
    lidar_cfg = ModelConfig.from_dict({**ModelConfig.tiny().to_dict(), 'modality': 'lidar'})
    lidar = _trained_like(lidar_cfg, seed=1)
    path = _save(lidar, lidar_cfg, tmp_path / 'lidar.pt')
    torch.manual_seed(2)
    fusion = build_model(ModelConfig.tiny())
    inputs = fusion.example_inputs(batch=2)
    assert float(inputs['camera_valid'].min()) == 1.0  # the camera branch is live
    before = _outputs(fusion, inputs)
    report = warm_start(fusion, path)
    assert report.fusion_identity and not report.mismatched
    assert set(report.loaded) == set(lidar.state_dict())
    assert report.fresh and all(n.startswith(('backbones.image.', 'fusion.')) for n in report.fresh)
    after = _outputs(fusion, inputs)
    for got, want, old in zip(after, _outputs(lidar, inputs), before, strict=True):
        gap, fresh_gap = float((got - want).abs().max()), float((old - want).abs().max())
        assert gap < 1e-3 and fresh_gap > 50 * gap  # the check is not vacuous
    assert 'fusion stage starts near the identity' in report.summary()


def test_the_camera_branch_of_a_near_identity_fusion_stage_still_receives_gradients():
    fusion = build_model(ModelConfig.tiny())
    fusion.fusion.start_near_identity()
    occupancy, anomaly = fusion.train()(*fusion.example_inputs(batch=2).values())
    (occupancy.mean() + anomaly.mean()).backward()
    assert float(fusion.fusion.out[1].weight.grad.abs().sum()) > 0


def test_a_same_model_warm_start_copies_everything_and_keeps_the_fusion_stage(tmp_path):
    cfg = ModelConfig.tiny()
    source = _trained_like(cfg, seed=3)
    path = _save(source, cfg, tmp_path / 'fusion.pt')
    torch.manual_seed(4)
    model = build_model(cfg)
    report = warm_start(model, path)
    assert not report.fusion_identity and not report.fresh and len(report.loaded) == len(source.state_dict())
    inputs = model.example_inputs()
    for got, want in zip(_outputs(model, inputs), _outputs(source, inputs), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_tensors_of_another_shape_stay_fresh_and_are_named(tmp_path):
    cfg = ModelConfig.tiny()
    other = ModelConfig.from_dict({**cfg.to_dict(), 'grid': {**cfg.to_dict()['grid'], 'z_max_m': 7.0}})
    source = build_model(other)
    path = _save(source, other, tmp_path / 'other_grid.pt')
    model = build_model(cfg)
    report = warm_start(model, path)
    assert report.mismatched and report.loaded
    assert set(report.mismatched).isdisjoint(report.loaded)
    assert report.mismatched[0] in report.summary()


def test_a_checkpoint_with_nothing_that_fits_and_a_missing_one_are_refused(tmp_path):
    cfg = ModelConfig.tiny()
    model = build_model(cfg)
    renamed = {f'other.{k}': v for k, v in model.state_dict().items()}
    state = {'model': renamed, 'config': {'model': cfg.to_dict()}, 'input_spec': cfg.input_spec().to_dict()}
    path = save_checkpoint(tmp_path / 'renamed.pt', state)
    with pytest.raises(ConfigError, match=r'train.init_from: no weight of .*renamed.pt fits this model'):
        warm_start(model, path)
    with pytest.raises(DataError, match='does not exist'):
        warm_start(model, tmp_path / 'nope.pt')
