"""ModelConfig: presets, round trips and clear validation errors."""

from __future__ import annotations

import pytest

from anovox_perception.core.errors import ConfigError
from anovox_training.model import ModelConfig


def test_base_preset_is_resnet18_through_layer3_at_half_resolution_on_the_default_grid():
    cfg = ModelConfig.base()
    assert (cfg.image_width, cfg.image_height, cfg.image_layers) == (384, 256, 3)
    assert cfg.grid.shape == (160, 160, 16)
    spec = cfg.input_spec()
    assert spec.token_shape == (16, 24) and spec.query_shape == (40, 40)


def test_config_round_trips_through_a_plain_dict():
    for cfg in (
        ModelConfig.base(),
        ModelConfig.tiny(modality='camera'),
        ModelConfig.tiny(voxel_refine=8),
    ):
        assert ModelConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ('changes', 'message'),
    [
        ({'modality': 'radar'}, "modality must be one of .*'radar'"),
        ({'image_width': 100}, 'image_width must be a positive multiple of 32'),
        ({'image_layers': 4}, 'image_layers must be 2 or 3'),
        ({'embed_dim': 10, 'attention_heads': 4}, r'embed_dim \(10\) must be a positive multiple'),
        ({'bev_widths': [8]}, 'bev_widths needs >= 2'),
        ({'voxel_refine': -8}, 'voxel_refine must be an integer >= 0'),
        ({'voxel_refine': 2.5}, 'voxel_refine must be an integer'),
        ({'heads': 2}, r"unknown keys \['heads'\]"),
        ({'image_height': 64.5}, 'image_height must be an integer'),
        ({'grid': {'x_min_m': 0.25, 'x_max_m': 16.25}}, 'not on the AnoVox 0.5 m lattice'),
    ],
)
def test_invalid_config_values_fail_with_a_message_naming_the_key(changes, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig.from_dict({**ModelConfig.tiny().to_dict(), **changes})


def test_a_grid_not_divisible_by_the_bev_stride_is_rejected():
    with pytest.raises(ConfigError, match='not divisible by bev_stride=4'):
        ModelConfig.from_dict({**ModelConfig.tiny().to_dict(), 'grid': {'x_min_m': -4.0, 'x_max_m': 11.0}})


def test_a_config_written_before_the_voxel_refiner_existed_loads_without_one():
    old = ModelConfig.tiny().to_dict()
    del old['voxel_refine']
    assert ModelConfig.from_dict(old).voxel_refine == 0


@pytest.mark.parametrize('key', ['semantic_weight', 'anomaly_temperature', 'score_smoothing'])
def test_a_score_rule_key_is_refused_naming_where_it_went(key):
    # The score rule is the calibration's: a model config holding it predates that.
    with pytest.raises(ConfigError, match=rf'{key} is not a model key any more.*set eval.{key}.*upgrade_calibration'):
        ModelConfig.from_dict({**ModelConfig.tiny().to_dict(), key: 1})
