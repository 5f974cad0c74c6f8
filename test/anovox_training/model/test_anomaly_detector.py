"""Detector: shapes, ranges, modality routing and ONNX exportability of the assembled model."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from anovox_perception.core.calibration import ScoreRule
from anovox_perception.core.errors import ConfigError
from anovox_training.model import INPUT_NAMES, OUTPUT_NAMES, ModelConfig, build_model
from anovox_training.model.head import anomaly_score, gate_by_lidar, smooth_scores

torch.set_num_threads(1)


def _model(**overrides):
    torch.manual_seed(0)
    return build_model(ModelConfig.tiny(**overrides)).eval()


@pytest.mark.parametrize('modality', ['fusion', 'lidar', 'camera'])
def test_every_variant_returns_probabilities_on_the_detector_grid(modality):
    model = _model(modality=modality)
    inputs = model.example_inputs(batch=2)
    assert tuple(inputs) == INPUT_NAMES == model.INPUT_NAMES
    assert model.OUTPUT_NAMES == OUTPUT_NAMES == ('occupancy', 'anomaly')
    with torch.no_grad():
        occupancy, anomaly = model(*inputs.values())
    assert occupancy.shape == anomaly.shape == (2, 32, 32, 8)
    for out in (occupancy, anomaly):
        assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_an_invalid_camera_makes_the_fusion_model_ignore_the_image():
    model = _model()
    inputs = model.example_inputs()
    inputs['camera_valid'].zero_()
    with torch.no_grad():
        first = model(*inputs.values())
        inputs['image'].normal_()
        second = model(*inputs.values())
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_valid_camera_lets_the_image_change_the_scores():
    model = _model()
    inputs = model.example_inputs()
    with torch.no_grad():
        first = model.logits(*inputs.values())
        inputs['image'].mul_(-1)
        second = model.logits(*inputs.values())
    for a, b in zip(first, second, strict=True):
        assert (a - b).abs().max() > 1e-5  # untrained weights: small but clearly non-zero


@pytest.mark.parametrize(('modality', 'ignored'), [('lidar', 'image'), ('camera', 'bev')])
def test_single_modality_variants_ignore_the_other_sensor(modality, ignored):
    model = _model(modality=modality)
    inputs = model.example_inputs()
    with torch.no_grad():
        first = model(*inputs.values())
        inputs[ignored].uniform_(-3, 3)
        second = model(*inputs.values())
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_anomaly_score_is_a_noisy_or_of_the_anomaly_probability_and_semantic_doubt():
    logit = torch.tensor([[0.0, 0.0]])  # (B=1, 2 voxels): anomaly probability 0.5 each
    # (B=1, K=2 classes, 2 voxels): the first voxel is confidently class 0, the second is a toss-up.
    semantic = torch.tensor([[[10.0, 0.0], [0.0, 0.0]]])
    score = anomaly_score(logit, semantic, semantic_weight=1.0)
    msp = torch.softmax(torch.tensor([10.0, 0.0]), 0).max()
    torch.testing.assert_close(score, torch.tensor([[1 - 0.5 * msp, 1 - 0.5 * 0.5]]))
    torch.testing.assert_close(anomaly_score(logit, semantic, semantic_weight=0.0), torch.full((1, 2), 0.5))
    # Temperature divides the anomaly logit before the sigmoid.
    two = torch.tensor([[2.0, -2.0]])
    torch.testing.assert_close(anomaly_score(two, semantic, 0.0, temperature=2.0), torch.sigmoid(two / 2))


def test_smoothing_is_a_sqrt_occupancy_weighted_mean_over_the_window_at_each_height():
    score = torch.zeros(1, 2, 3, 3)
    occupancy = torch.zeros(1, 2, 3, 3)
    score[0, 0] = torch.tensor([[0.9, 0.1, 0.0], [0.3, 0.5, 0.0], [0.0, 0.0, 0.7]])
    occupancy[0, 0] = torch.tensor([[1.0, 0.25, 0.0], [0.25, 1.0, 0.0], [0.0, 0.0, 0.0]])
    score[0, 1] = 1.0  # the slice above: only its own window counts
    occupancy[0, 1, 1, 1] = 1.0
    out = smooth_scores(score, occupancy, 3)
    centre = (0.9 * 1.0 + 0.1 * 0.5 + 0.3 * 0.5 + 0.5 * 1.0) / (1.0 + 0.5 + 0.5 + 1.0)  # weights sqrt(occupancy)
    assert out[0, 0, 1, 1].item() == pytest.approx(centre)
    # Corner (0, 0): its window holds (0, 0), (0, 1), (1, 0), (1, 1); the grid's edge adds nothing.
    assert out[0, 0, 0, 0].item() == pytest.approx(centre)
    # (2, 2) has no occupied neighbour but (1, 1): it takes that voxel's score ...
    assert out[0, 0, 2, 2].item() == pytest.approx(0.5)
    # ... and a voxel whose window carries no weight at all keeps its own score.
    occupancy[0, 0, 1, 1] = 0.0
    assert smooth_scores(score, occupancy, 3)[0, 0, 2, 2].item() == pytest.approx(0.7)
    occupancy.requires_grad_(True)
    smooth_scores(score, occupancy, 3).sum().backward()
    assert torch.isfinite(occupancy.grad).all()  # no infinite sqrt slope at zero occupancy
    torch.testing.assert_close(out[0, 1], torch.ones(3, 3))  # heights never mix
    assert smooth_scores(score, occupancy, 1) is score


def test_smoothing_keeps_scores_in_range_and_the_model_applies_its_window():
    plain, smoothed = _model(), _model()
    smoothed.load_state_dict(plain.state_dict())
    smoothed.set_score_rule(ScoreRule(score_smoothing=3))
    assert smoothed.score_rule == ScoreRule(1.0, 1.0, 3) and plain.score_rule == ScoreRule()
    inputs = plain.example_inputs(batch=2)
    with torch.no_grad():
        occupancy, raw = plain(*inputs.values())
        same_occupancy, score = smoothed(*inputs.values())
    torch.testing.assert_close(occupancy, same_occupancy, rtol=0, atol=0)
    expected = smooth_scores(raw.permute(0, 3, 1, 2), occupancy.permute(0, 3, 1, 2), 3).permute(0, 2, 3, 1)
    torch.testing.assert_close(score, expected)
    assert (score - raw).abs().max() > 1e-4 and score.min() >= 0 and score.max() <= 1
    with torch.no_grad():  # validation scores other windows through the same head
        _, overridden = smoothed.head.probabilities(smoothed.logits(*inputs.values()), score_smoothing=1)
    torch.testing.assert_close(overridden, raw, rtol=0, atol=0)


def test_lidar_gate_keeps_a_score_only_with_a_return_in_the_cube_around_its_voxel():
    nz = 4
    score = torch.full((1, nz, 7, 7), 0.8)
    bev = torch.zeros(1, nz + 4, 7, 7)
    bev[0, 1, 3, 3] = 1.0  # one voxel holds a return
    bev[0, nz, 0, 0] = 1.0  # a column feature is not a height slice: it never counts
    assert gate_by_lidar(score, bev, 0) is score
    own = gate_by_lidar(score, bev, 1)
    assert own[0, 1, 3, 3] == 0.8 and own.sum().item() == pytest.approx(0.8)
    cube = gate_by_lidar(score, bev, 3)
    kept = cube[0] > 0
    expected = torch.zeros(nz, 7, 7, dtype=torch.bool)
    expected[0:3, 2:5, 2:5] = True  # one cell either way in z, x and y
    assert torch.equal(kept, expected) and torch.all(cube[0][kept] == 0.8)


def test_the_model_applies_its_lidar_gate_after_smoothing_and_refuses_one_without_lidar():
    plain, gated = _model(), _model()
    gated.load_state_dict(plain.state_dict())
    gated.set_score_rule(ScoreRule(score_smoothing=3, lidar_support=3))
    plain.set_score_rule(ScoreRule(score_smoothing=3))
    assert gated.score_rule.lidar_support == 3
    inputs = plain.example_inputs(batch=2)
    with torch.no_grad():
        occupancy, smoothed = plain(*inputs.values())
        same_occupancy, score = gated(*inputs.values())
    torch.testing.assert_close(occupancy, same_occupancy, rtol=0, atol=0)
    expected = gate_by_lidar(smoothed.permute(0, 3, 1, 2), inputs['bev'], 3).permute(0, 2, 3, 1)
    torch.testing.assert_close(score, expected, rtol=0, atol=0)
    assert (score == 0).sum() > (smoothed == 0).sum() and (score > 0).any()
    with pytest.raises(ConfigError, match='camera-only variant'):
        _model(modality='camera').set_score_rule(ScoreRule(lidar_support=1))
    with pytest.raises(ConfigError, match='camera-only variant'):
        build_model(ModelConfig.tiny(modality='camera'), ScoreRule(lidar_support=3))
    with pytest.raises(ValueError, match='needs the BEV input'):
        gated.head.probabilities(gated.logits(*inputs.values()))


def _trained_refiner(model):
    """Give the refiner's zero-initialised output layer weights, as training would."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.head.refiner.out.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
    return model


def test_an_untrained_voxel_refiner_leaves_the_logits_of_the_same_weights_unchanged():
    plain, refined = _model(), _model(voxel_refine=8)
    missing, unexpected = refined.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith('head.refiner.') for k in missing)
    inputs = plain.example_inputs()
    with torch.no_grad():
        for a, b in zip(plain.logits(*inputs.values()), refined.logits(*inputs.values()), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_the_voxel_refiner_corrects_a_column_from_its_own_ground_height_only():
    refiner = _trained_refiner(_model(voxel_refine=8)).head.refiner
    nz = refiner.nz
    generator = torch.Generator().manual_seed(2)
    coarse = torch.randn(1, 2, nz, 6, 6, generator=generator)
    column = torch.randn(1, refiner.column.in_channels, 6, 6, generator=generator)
    bev = torch.zeros(1, nz + 4, 6, 6)
    bev[0, 3, 2, 2] = 1.0  # one point in slice 3 of column (2, 2): its highest and lowest point
    bev[0, nz + 2, 2, 2] = bev[0, nz + 3, 2, 2] = 3.5 / nz
    with torch.no_grad():
        before = refiner(coarse, column, bev)
        bev[0, nz + 3, 2, 2] = 0.5 / nz  # the column's ground three slices lower
        after = refiner(coarse, column, bev)
    changed = (before - after).abs().amax(dim=(0, 1, 2))
    assert changed[2, 2] > 1e-3
    changed[2, 2] = 0
    assert changed.max() == 0  # no other column moves


@pytest.mark.filterwarnings('ignore:You are using the legacy TorchScript-based ONNX export')
@pytest.mark.parametrize('refine', [0, 8])
def test_the_tiny_model_exports_to_onnx_opset_17_with_static_shapes(tmp_path, refine):
    model = _model(voxel_refine=refine)
    if refine:
        _trained_refiner(model)
    inputs = model.example_inputs()
    path = tmp_path / 'tiny.onnx'
    torch.onnx.export(
        model,
        tuple(inputs.values()),
        str(path),
        input_names=list(INPUT_NAMES),
        output_names=list(OUTPUT_NAMES),
        opset_version=17,
        dynamo=False,
    )
    graph = onnx.load(str(path)).graph
    for value in list(graph.input) + list(graph.output):
        assert all(d.dim_value > 0 for d in value.type.tensor_type.shape.dim), value.name
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    outputs = session.run(list(OUTPUT_NAMES), {k: v.numpy() for k, v in inputs.items()})
    with torch.no_grad():
        expected = model(*inputs.values())
    for got, want in zip(outputs, expected, strict=True):
        np.testing.assert_allclose(got, want.numpy(), atol=1e-5)
