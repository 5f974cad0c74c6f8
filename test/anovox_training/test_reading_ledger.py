"""The test split is read once per recipe, and every reading is recorded."""

from __future__ import annotations

import json

import pytest

from anovox_perception.core.errors import ConfigError
from anovox_training import make_model
from anovox_training.evaluate.reading_ledger import Reading, ReadingLedger, headline, recipe_id, recipe_of_config
from anovox_training.evaluate.run import EvaluateOptions

CONFIG = {
    'seed': 0,
    'out_dir': 'runs/a',
    'data': {'train': ['d/train'], 'val': ['d/val'], 'tune': [], 'cache_dir': '.cache', 'cache_workers': 2},
    'train': {'lr': 2e-3, 'progress': True},
}
REPORT = {'variants': {'fusion': {'Anomalies_Only': {'AUROC': 0.9, 'AP': 0.5, 'FPR95': 0.2, 'voxels': 10}}}}


def _config(**train: object) -> dict:
    return {**CONFIG, 'train': {**CONFIG['train'], **train}}


def test_a_recipe_is_what_decides_the_weights_not_where_things_are():
    moved = {**CONFIG, 'out_dir': 'elsewhere', 'data': {**CONFIG['data'], 'train': ['/x/train'], 'cache_dir': 'c'}}
    assert recipe_id(recipe_of_config(moved)) == recipe_id(recipe_of_config(CONFIG))
    assert recipe_id(recipe_of_config(_config(progress=False))) == recipe_id(recipe_of_config(CONFIG))
    assert recipe_id(recipe_of_config(_config(lr=1e-3))) != recipe_id(recipe_of_config(CONFIG))
    assert recipe_id(recipe_of_config({**CONFIG, 'seed': 1})) != recipe_id(recipe_of_config(CONFIG))


def test_the_ledger_appends_and_finds_readings(tmp_path):
    ckpt = tmp_path / 'best.pt'
    ckpt.write_bytes(b'weights')
    ledger = ReadingLedger(tmp_path / 'models' / 'test_readings.jsonl')
    assert ledger.readings() == []
    recipe = {'variants': {'fusion': recipe_of_config(CONFIG)}}
    ledger.append(Reading.of(recipe, {'fusion': ckpt}, {'folder': 'test'}, REPORT))
    ledger.append(Reading.of(recipe, {'fusion': ckpt}, {'folder': 'test'}, REPORT, reason='new metric'))
    rows = ledger.readings_of(recipe_id(recipe))
    assert [r['reason'] for r in rows] == ['', 'new metric']
    assert rows[0]['figures'] == {'fusion': {'AUROC': 0.9, 'AP': 0.5, 'FPR95': 0.2}} == headline(REPORT)
    assert len(rows[0]['checkpoints']['fusion']) == 64 and ledger.readings_of('other') == []


def test_a_hand_edited_ledger_is_refused_with_the_line(tmp_path):
    path = tmp_path / 'test_readings.jsonl'
    path.write_text('{"recipe_id": "a"}\nnot json\n')
    with pytest.raises(ConfigError, match=r'test_readings.jsonl:2: not a JSON line'):
        ReadingLedger(path).readings()
    path.write_text('[1, 2]\n')
    with pytest.raises(ConfigError, match=r':1: not a test reading'):
        ReadingLedger(path).readings()


def _fake_evaluate(calls: list[EvaluateOptions]):
    def run(options: EvaluateOptions) -> dict:
        calls.append(options)
        options.out.mkdir(parents=True, exist_ok=True)
        (options.out / 'metrics.json').write_text(json.dumps(REPORT))
        (options.out / 'metrics.md').write_text('report\n')
        return REPORT

    return run


def test_make_model_reads_the_test_split_once_per_recipe(tmp_path, monkeypatch):
    calls: list[EvaluateOptions] = []
    monkeypatch.setattr(make_model, 'evaluate', _fake_evaluate(calls))
    monkeypatch.setattr(make_model, 'prebuild_cache', lambda *a: None)
    monkeypatch.setattr(make_model, '_test_data', lambda folder: {'folder': folder.name})
    ckpts = {}
    for name in ('fusion', 'lidar', 'camera'):
        ckpts[name] = tmp_path / name / 'best.pt'
        ckpts[name].parent.mkdir()
        ckpts[name].write_bytes(name.encode())
    ledger = ReadingLedger(tmp_path / 'models' / 'test_readings.jsonl')
    recipe = {'variants': {'fusion': recipe_of_config(CONFIG)}}
    eval_dir = tmp_path / 'eval'

    def read(reason: str = '') -> dict:
        return make_model.read_test_split_once(ledger, recipe, ckpts, tmp_path / 'test', eval_dir, reason, 1)

    assert read() == REPORT and len(calls) == 1
    # Every variant's checkpoint on the test split.
    first = calls[0]
    assert (first.checkpoint, first.lidar_only, first.camera_only) == (ckpts['fusion'], ckpts['lidar'], ckpts['camera'])
    assert first.data == (tmp_path / 'test',) and first.split == 'test' and first.out == eval_dir
    # The same recipe again: its report is reused, the test split is not read.
    assert read() == REPORT and len(calls) == 1 and len(ledger.readings()) == 1
    # Its report gone (another machine): refused, naming the earlier reading; a reason reads it again.
    (eval_dir / 'metrics.json').unlink()
    with pytest.raises(ConfigError, match=r'already read for recipe .*--reread-test'):
        read()
    assert read('added the object-level metrics') == REPORT and len(calls) == 2
    assert [r['reason'] for r in ledger.readings()] == ['', 'added the object-level metrics']
    # Another recipe is a first reading.
    recipe = {'variants': {'fusion': recipe_of_config(_config(lr=1e-3))}}
    assert read() == REPORT and len(calls) == 3
