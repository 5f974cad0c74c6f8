"""make model: the whole pipeline (data, three variants, evaluation, export) on its quick plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from anovox_training import make_model

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_make_model_trains_evaluates_and_exports_every_artifact(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.chdir(REPO)
    out = tmp_path / 'models'
    argv = ['--quick', '--data', str(tmp_path / 'data'), '--runs', str(tmp_path / 'runs'), '--out', str(out)]
    assert make_model.main([*argv, '--name', 'quick', '--workers', '1']) == 0
    report = json.loads((out / 'quick.metrics.json').read_text())
    assert set(report['variants']) == {'fusion', 'lidar_only', 'camera_only', 'geometric'}
    assert report['frames'] == 3 and report['split'] == 'test'
    assert (out / 'quick.onnx').stat().st_size > 0 and (out / 'quick.metrics.md').is_file()
    for variant in ('fusion', 'lidar', 'camera'):
        ckpt = torch.load(tmp_path / 'runs' / variant / 'last.pt', weights_only=True)
        assert ckpt['config']['model']['modality'] == variant and ckpt['epoch'] == 1
        assert ckpt['config']['data']['train'] == [str(tmp_path / 'data' / 'train'), str(tmp_path / 'data' / 'train2')]
    # The two training folders hold different scenarios (the second starts at index 1000).
    first, second = (sorted(p.name for p in (tmp_path / 'data' / f).glob('Scenario_*')) for f in ('train', 'train2'))
    assert len(first) == len(second) == 1 and first != second
    # A second run finds everything done and only re-evaluates and re-exports.
    before = (tmp_path / 'runs' / 'fusion' / 'last.pt').stat().st_mtime_ns
    assert make_model.main([*argv, '--name', 'quick', '--no-export']) == 0
    assert (tmp_path / 'runs' / 'fusion' / 'last.pt').stat().st_mtime_ns == before
