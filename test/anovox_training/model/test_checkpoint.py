"""Checkpoints: atomic writes, faithful reloads, clear errors on bad files."""

from __future__ import annotations

import pytest
import torch
from torchvision.models import resnet18

from anovox_perception.core.calibration import Calibration, ChosenOn, ScoreRule
from anovox_perception.core.errors import ConfigError, DataError
from anovox_training.model import ModelConfig, build_model, load_checkpoint, save_checkpoint
from anovox_training.model.checkpoint import (
    checkpoint_calibration,
    previous_path,
    read_checkpoint,
    read_latest_checkpoint,
    remove_stale_temporaries,
    state_checksum,
)

torch.set_num_threads(1)


UNTUNED = Calibration(occupancy_threshold=0.5)


def _state(model, cfg, calibration=UNTUNED):
    return {
        'model': model.state_dict(),
        'config': {'model': cfg.to_dict()},
        'input_spec': cfg.input_spec().to_dict(),
        'calibration': calibration.to_dict(),
    }


def test_a_saved_checkpoint_reloads_into_a_model_with_identical_outputs(tmp_path):
    cfg = ModelConfig.tiny()
    torch.manual_seed(1)
    rule = ScoreRule(semantic_weight=2.0, anomaly_temperature=3.0, score_smoothing=3)
    model = build_model(cfg, rule).eval()
    calibration = Calibration(0.3, rule, ChosenOn(('val',), 'ab12'), ChosenOn(('val',), 'ab12'))
    path = save_checkpoint(tmp_path / 'ckpt' / 'last.pt', {**_state(model, cfg, calibration), 'epoch': 3})
    assert [p.name for p in path.parent.iterdir()] == ['last.pt']  # no temporary file left behind
    loaded, config, ckpt = load_checkpoint(path)
    assert config == {'model': cfg.to_dict()} and ckpt['epoch'] == 3 and not loaded.training
    assert loaded.score_rule == rule and checkpoint_calibration(ckpt, path) == calibration
    inputs = model.example_inputs()
    with torch.no_grad():
        for a, b in zip(model(*inputs.values()), loaded(*inputs.values()), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_saving_without_required_keys_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"lacks \['config', 'input_spec'\]"):
        save_checkpoint(tmp_path / 'x.pt', {'model': {}})


def test_missing_and_corrupt_checkpoints_raise_data_errors(tmp_path):
    with pytest.raises(DataError, match='does not exist'):
        load_checkpoint(tmp_path / 'nope.pt')
    bad = tmp_path / 'bad.pt'
    bad.write_bytes(b'not a checkpoint')
    with pytest.raises(DataError, match='cannot be read'):
        load_checkpoint(bad)


def test_a_checkpoint_without_calibration_is_refused_with_the_upgrade_command(tmp_path):
    cfg = ModelConfig.tiny()
    state = _state(build_model(cfg), cfg)
    del state['calibration']
    path = save_checkpoint(tmp_path / 'old.pt', state)
    with pytest.raises(DataError, match=rf'checkpoint {path} has no calibration section .*upgrade_calibration {path}'):
        load_checkpoint(path)


def test_weights_that_do_not_fit_the_config_are_reported(tmp_path):
    cfg = ModelConfig.tiny()
    state = _state(build_model(cfg.__class__.tiny(modality='lidar')), cfg)
    path = save_checkpoint(tmp_path / 'x.pt', state)
    with pytest.raises(DataError, match='weights do not fit its model config'):
        load_checkpoint(path)


def test_image_trunk_loads_a_local_resnet18_state_dict_and_rejects_a_missing_file(tmp_path):
    torch.manual_seed(2)
    reference = resnet18(weights=None)
    weights = tmp_path / 'resnet18.pth'
    torch.save(reference.state_dict(), weights)
    model = build_model(ModelConfig.tiny(image_weights=str(weights)))
    torch.testing.assert_close(model.backbones.image.trunk[0].weight, reference.conv1.weight)
    with pytest.raises(ConfigError, match='does not exist'):
        build_model(ModelConfig.tiny(image_weights=str(tmp_path / 'missing.pth')))


def _tiny_state(step):
    cfg = ModelConfig.tiny()
    torch.manual_seed(step)
    return {**_state(build_model(cfg), cfg), 'step': step}


def test_keeping_the_previous_checkpoint_rotates_it_and_a_bad_latest_falls_back_to_it_with_a_warning(tmp_path):
    last = tmp_path / 'last.pt'
    assert read_latest_checkpoint(last) is None
    save_checkpoint(last, _tiny_state(1), keep_previous=True)
    save_checkpoint(last, _tiny_state(2), keep_previous=True)
    assert previous_path(last) == tmp_path / 'last.prev.pt'
    assert read_checkpoint(previous_path(last))['step'] == 1
    ckpt, source = read_latest_checkpoint(last)
    assert (ckpt['step'], source) == (2, last) and 'checksum' not in ckpt
    last.write_bytes(last.read_bytes()[:1000])
    with pytest.warns(RuntimeWarning, match=r'last.pt cannot be read .*using the previous checkpoint .* \(step 1\)'):
        ckpt, source = read_latest_checkpoint(last)
    assert (ckpt['step'], source) == (1, previous_path(last))
    previous_path(last).write_bytes(b'')
    with pytest.raises(DataError, match='no usable checkpoint: checkpoint .*last.pt cannot be read.*last.prev.pt'):
        read_latest_checkpoint(last)


def test_the_checksum_covers_every_entry_and_checkpoints_without_one_still_load(tmp_path):
    state = _tiny_state(3)
    assert state_checksum(state) == state_checksum(read_checkpoint(save_checkpoint(tmp_path / 'a.pt', state)))
    changed = {**state, 'model': {**state['model']}}
    key = next(iter(changed['model']))
    changed['model'][key] = changed['model'][key].clone()
    changed['model'][key].view(-1)[0] += 1
    assert state_checksum(changed) != state_checksum(state)
    assert state_checksum({**state, 'step': 4}) != state_checksum(state)
    torch.save(state, tmp_path / 'old.pt')  # written before checkpoints had checksums
    assert read_checkpoint(tmp_path / 'old.pt')['step'] == 3


def test_stale_temporaries_of_a_killed_write_are_removed_and_nothing_else(tmp_path):
    last = tmp_path / 'last.pt'
    save_checkpoint(last, _tiny_state(1))
    stale = [tmp_path / '.last.pt.abc123.tmp', tmp_path / '.last.prev.pt.link.tmp']
    for path in stale:
        path.write_bytes(b'half')
    other = tmp_path / '.best.pt.xyz.tmp'
    other.write_bytes(b'not ours')
    assert sorted(remove_stale_temporaries(last)) == sorted(stale)
    assert last.is_file() and other.is_file() and not any(p.exists() for p in stale)
