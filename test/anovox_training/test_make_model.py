"""make model: the whole pipeline (data, three variants, evaluation, export) on its quick plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from anovox_training import make_model
from anovox_training.evaluate.reading_ledger import recipe_id, recipe_of_config
from anovox_training.train.config import load_config

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
    # The exported model checked on the real frame (an evaluation; nothing is chosen on it).
    real = report['real']['kitti_000008']
    assert set(real) >= {'markers', 'share_above_fpr95_threshold', 'occupied_voxels'}
    share = real['share_above_fpr95_threshold']
    assert real['markers'] >= 0 and real['occupied_voxels'] >= 0
    # The quick test split holds too few anomaly voxels for an FPR95 threshold: the share is undefined, and says why.
    assert (share is None and 'threshold' in real['note']) or 0.0 <= share <= 1.0
    # The INT8 variant's cost, measured on the same test frames through ONNX Runtime beside the FP32 export.
    int8 = report['int8']
    assert int8['models'] == {'fp32': 'quick.onnx', 'int8_s8': 'quick_int8_s8.onnx'}
    for name in ('fp32', 'int8_s8'):
        assert int8['test'][name]['frames'] == 3 and 0.0 <= int8['test'][name]['AP'] <= 1.0
    assert int8['int8_minus_fp32']['AP'] == pytest.approx(int8['test']['int8_s8']['AP'] - int8['test']['fp32']['AP'])
    # Which inputs chose what: validation for every choice, the test split read once and recorded.
    for variant in ('fusion', 'lidar', 'camera'):
        chosen = report['selection'][variant]
        assert chosen['checkpoint']['chosen_on'] == chosen['occupancy_threshold']['chosen_on'] == ['val']
        # The quick run has no score-rule candidates: its rule is the configured one, chosen on no data.
        assert chosen['score_rule'] == {
            'semantic_weight': 1.0,
            'anomaly_temperature': 1.0,
            'score_smoothing': 1,
            'lidar_support': 0,
            'chosen_on': [],
        }
        # The operating point is chosen on the validation frames (the quick plan's tune split is val).
        point = chosen['operating_point']
        assert point['chosen_on'] == ['val'] and 0.0 <= point['anomaly_threshold'] <= 1.0
        assert point['min_component_points'] >= 0 and 'false alarms per frame' in point['rule']
    readings = [json.loads(line) for line in (out / 'test_readings.jsonl').read_text().splitlines()]
    assert len(readings) == 1 and report['test_reading'] == {
        'recipe_id': readings[0]['recipe_id'],
        'readings': 1,
        'ledger': 'test_readings.jsonl',
    }
    for variant in ('fusion', 'lidar', 'camera'):
        ckpt = torch.load(tmp_path / 'runs' / variant / 'last.pt', weights_only=True)
        assert ckpt['config']['model']['modality'] == variant and ckpt['epoch'] == 1
        assert ckpt['config']['data']['train'] == [str(tmp_path / 'data' / 'train'), str(tmp_path / 'data' / 'train2')]
        assert ckpt['config']['data']['val'] == ckpt['config']['data']['tune'] == [str(tmp_path / 'data' / 'val')]
    # The two training folders hold different scenarios (the second starts at index 1000).
    first, second = (sorted(p.name for p in (tmp_path / 'data' / f).glob('Scenario_*')) for f in ('train', 'train2'))
    assert len(first) == len(second) == 1 and first != second
    # A second run finds everything done: it reuses the one test reading and re-exports.
    before = (tmp_path / 'runs' / 'fusion' / 'last.pt').stat().st_mtime_ns
    assert make_model.main([*argv, '--name', 'quick', '--no-export']) == 0
    assert (tmp_path / 'runs' / 'fusion' / 'last.pt').stat().st_mtime_ns == before
    assert len((out / 'test_readings.jsonl').read_text().splitlines()) == 1


def test_the_score_rule_is_chosen_on_more_validation_scenarios_than_each_epoch_checks():
    val = make_model.split_folders(Path('d'), make_model.DATA_PLAN, 'val')
    tune = make_model.split_folders(Path('d'), make_model.DATA_PLAN, 'val', 'tune')
    assert val == [Path('d/val')] and tune == [Path('d/val'), Path('d/val_large')]
    plans = {p.folder_name: p for p in make_model.DATA_PLAN}
    # Same category mix as validation, other scenarios (every folder has its own seed).
    assert plans['val_large'].split == 'val' and plans['val_large'].scenarios > plans['val'].scenarios
    assert len({p.seed for p in make_model.DATA_PLAN}) == len(make_model.DATA_PLAN)


# The --set items make model gave `python -m anovox_training.train` before it built typed configs itself.
_COMMAND_LINE_VARIANTS = {
    'fusion': ['model.modality=fusion'],
    'lidar': ['model.modality=lidar'],
    'camera': ['model.modality=camera', 'train.camera_dropout=0.0'],
}
_COMMAND_LINE_QUICK = [
    'model.preset=tiny',
    'train.epochs=1',
    'train.progress=false',
    'eval.semantic_weights=[]',
    'eval.anomaly_temperatures=[]',
    'eval.score_smoothings=[]',
    'eval.lidar_supports=[]',
]


def _command_line_config(data, runs, name, plans, cache_dir, user):
    roots = {
        role: ','.join(str(p) for p in make_model.split_folders(data, plans, *roles))
        for role, roles in (('train', ('train',)), ('val', ('val',)), ('tune', ('val', 'tune')))
    }
    items = [f'out_dir={runs / name}', *(f'data.{role}=[{folders}]' for role, folders in roots.items())]
    items += _COMMAND_LINE_VARIANTS[name]
    if cache_dir is not None:
        items.append(f'data.cache_dir={cache_dir}')
    items += [*(_COMMAND_LINE_QUICK if cache_dir is not None else []), *user]
    return load_config(REPO / 'config' / 'train.yaml', items)


@pytest.mark.parametrize('quick', [False, True], ids=['full', 'quick'])
def test_each_variant_trains_with_the_config_and_recipe_id_the_command_line_gave(tmp_path, monkeypatch, quick):
    trained = {}

    class RecordingTrainer:
        """Stands in for training: records the config and writes a finished last.pt with it."""

        def __init__(self, config, dist):
            self.config = config

        def fit(self, resume):
            assert resume
            config = self.config.to_dict()
            last = Path(config['out_dir']) / 'last.pt'
            trained[last.parent.name] = config
            last.parent.mkdir(parents=True)
            torch.save({'epoch': config['train']['epochs'], 'config': config}, last)
            return last

    monkeypatch.setattr(make_model, 'Trainer', RecordingTrainer)
    data, runs = tmp_path / 'data', tmp_path / 'runs'
    plans = make_model.QUICK_PLAN if quick else make_model.DATA_PLAN
    cache_dir = runs / 'cache' if quick else None
    settings = [make_model.QUICK_SETTINGS] if quick else []
    user = ['train.lr=0.001', 'model.modality=fusion'] if quick else ['train.epochs=3']
    config = REPO / 'config' / 'train.yaml'
    checkpoints = make_model.train_variants(config, data, runs, user, False, cache_dir, plans, settings)
    assert set(checkpoints) == set(trained) == {'fusion', 'lidar', 'camera'}
    for name, ours in trained.items():
        before = _command_line_config(data, runs, name, plans, cache_dir, user)
        assert ours == before and json.dumps(ours) == json.dumps(before)
        assert recipe_id(recipe_of_config(ours)) == recipe_id(recipe_of_config(before))
    # The --set items come last: here one makes every quick variant a fusion model.
    assert {c['model']['modality'] for c in trained.values()} == (
        {'fusion'} if quick else {'fusion', 'lidar', 'camera'}
    )
