"""Training under faults: SIGKILL mid-run, corrupt checkpoints, unreadable frames, re-tuned checkpoints."""

from __future__ import annotations

import copy
import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml
from tiny_data import make_split, tiny_config

import anovox_training
from anovox_perception.core.calibration import ScoreRule
from anovox_perception.core.errors import DataError
from anovox_training.data.check import main as check_main
from anovox_training.data.reader import ScenarioReader
from anovox_training.export.upgrade_calibration import main as upgrade_main
from anovox_training.model.checkpoint import (
    checkpoint_calibration,
    model_config_of,
    previous_path,
    read_checkpoint,
    save_checkpoint,
)
from anovox_training.train.config import training_config
from anovox_training.train.trainer import DistContext, TrainingError, _prepare_data, train

torch.set_num_threads(1)

# 8 frames, batch 2: 4 steps per epoch, 8 in all. Every random choice of training is on
# (camera dropout, mirroring, intensity gain/gamma and drop), and a train_log row every 3
# steps, so a resume must restore each of them and the half-filled log window.
RUN = {'mirror': 0.5, 'intensity_aug': 0.5, 'intensity_drop': 0.3, 'log_every_steps': 3, 'checkpoint_every_steps': 1}
REPO = Path(anovox_training.__file__).resolve().parents[1]

# Run by a subprocess: train, but hang halfway through writing the checkpoint of step HANG_STEP,
# so the test can SIGKILL it there (after the mid-epoch checkpoint of the step before was written).
_KILLABLE = """
import io, sys, time
from pathlib import Path
import torch

config, marker, hang_step = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
real_save = torch.save


def save_half_then_hang(obj, f, *args, **kwargs):
    if isinstance(obj, dict) and obj.get('step') == hang_step:
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        f.write(buffer.getvalue()[: buffer.tell() // 2])
        f.flush()
        marker.touch()
        time.sleep(600)
    return real_save(obj, f, *args, **kwargs)


torch.save = save_half_then_hang
from anovox_training.train.trainer import main

sys.exit(main(['--config', config]))
"""


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_split(tmp_path_factory.mktemp('tiny') / 'train', 'train', scenarios=1, frames=8, seed=5)


@pytest.fixture(scope='module')
def uninterrupted(data, tmp_path_factory):
    """The reference run: no interruption."""
    tmp = tmp_path_factory.mktemp('whole')
    return train(tiny_config(tmp, data, **RUN)).parent


def _assert_same_run(reference: Path, resumed: Path) -> None:
    a, b = (torch.load(d / 'last.pt', weights_only=True) for d in (reference, resumed))
    assert a['step'] == b['step'] == 8 and a['epoch'] == b['epoch'] == 2
    for key in a['model']:
        torch.testing.assert_close(a['model'][key], b['model'][key], rtol=0, atol=0, msg=key)
    states_a, states_b = (sorted(c['optimizer']['state'].items()) for c in (a, b))
    for (_, sa), (_, sb) in zip(states_a, states_b, strict=True):
        for name in ('exp_avg', 'exp_avg_sq', 'step'):
            torch.testing.assert_close(sa[name], sb[name], rtol=0, atol=0, msg=name)
    assert a['scheduler'] == b['scheduler']
    torch.testing.assert_close(a['rng_state']['torch'], b['rng_state']['torch'], rtol=0, atol=0)
    rows_a, rows_b = (_log_rows(d / 'train_log.csv') for d in (reference, resumed))
    assert [r['step'] for r in rows_a] == ['3', '4', '6', '8']
    assert rows_a == rows_b


def _log_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline='') as fh:
        return [{k: v for k, v in row.items() if k != 'samples_per_s'} for row in csv.DictReader(fh)]


def _write_yaml(config: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def _cli(*args: str) -> subprocess.Popen:
    # CPU only: the reference run is on the CPU, and CUDA kernels need not be bit-reproducible.
    env = {**os.environ, 'PYTHONPATH': str(REPO), 'CUDA_VISIBLE_DEVICES': ''}
    return subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_a_run_killed_while_writing_a_checkpoint_resumes_bit_exact_from_the_last_one(data, uninterrupted, tmp_path):
    config = _write_yaml(tiny_config(tmp_path, data, **RUN), tmp_path / 'train.yaml')
    run = tmp_path / 'run'
    marker = tmp_path / 'writing'
    script = tmp_path / 'killable.py'
    script.write_text(_KILLABLE)
    process = _cli(str(script), str(config), str(marker), '6')
    deadline = time.monotonic() + 300  # a guard against a hang, not a measurement
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), process.communicate()[0].decode()
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    # Killed halfway through writing step 6: step 5 (epoch 1, mid-epoch) is intact, the rest is a stray temporary.
    assert read_checkpoint(run / 'last.pt')['step'] == 5 and read_checkpoint(run / 'last.pt')['batch_index'] == 1
    assert list(run.glob('.last.pt.*.tmp'))
    resumed = _cli('-m', 'anovox_training.train', '--config', str(config), '--resume')
    output = resumed.communicate(timeout=300)[0].decode()
    assert resumed.returncode == 0, output
    assert not list(run.glob('.*.tmp'))
    _assert_same_run(uninterrupted, run)


def test_a_corrupt_last_checkpoint_is_detected_and_the_previous_one_resumes_bit_exact(data, uninterrupted, tmp_path):
    config = tiny_config(tmp_path, data, **RUN, stop_at_step=6)
    train(config)
    run = tmp_path / 'run'
    assert read_checkpoint(previous_path(run / 'last.pt'))['step'] == 5
    last = run / 'last.pt'
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 3])  # as a disk that lost the tail
    resume = copy.deepcopy(config)
    resume['train']['stop_at_step'] = None
    with pytest.warns(
        RuntimeWarning, match=r'last.pt cannot be read.*using the previous checkpoint .*last.prev.pt \(step 5\)'
    ):
        train(resume, resume=True)
    _assert_same_run(uninterrupted, run)


def test_a_checkpoint_with_flipped_bytes_fails_its_checksum_and_resume_uses_the_previous_one(data, tmp_path):
    config = tiny_config(tmp_path, data, epochs=1, checkpoint_every_steps=1)
    last = train(config)
    state = read_checkpoint(last)['model']
    weight = state[max(state, key=lambda k: state[k].numel())]
    raw = bytearray(last.read_bytes())
    at = raw.find(weight.numpy().tobytes()[:64])
    assert at > 0
    raw[at + 8] ^= 0xFF
    last.write_bytes(bytes(raw))
    torch.load(last, weights_only=True)  # torch itself does not notice
    with pytest.raises(DataError, match='fails its checksum'):
        read_checkpoint(last)
    config['train']['epochs'] = 2
    with pytest.warns(RuntimeWarning, match=r'fails its checksum.*using the previous checkpoint .* \(step 4\)'):
        assert read_checkpoint(train(config, resume=True))['step'] == 8


def test_a_checkpoint_re_tuned_after_training_resumes_with_more_epochs(data, tmp_path):
    config = tiny_config(tmp_path, data, epochs=1)
    last = train(config)
    state = read_checkpoint(last)
    # As the score-rule choice after training writes it.
    tuned = replace(checkpoint_calibration(state, last), score_rule=ScoreRule(2.0, 4.0, 3))
    save_checkpoint(last, {**state, 'calibration': tuned.to_dict()})
    more = copy.deepcopy(config)
    more['train']['epochs'] = 2
    resumed = read_checkpoint(train(more, resume=True))
    assert resumed['step'] == 8
    # More epochs: new weights, so the rule is the configured one again until a choice is made on them.
    assert checkpoint_calibration(resumed, last).score_rule == ScoreRule()
    other = copy.deepcopy(more)
    other['train']['epochs'] = 3
    other['model']['bev_widths'] = [8, 16, 32]
    with pytest.raises(TrainingError, match=r'another model config \(model.bev_widths differ\)'):
        train(other, resume=True)


def test_a_checkpoint_of_the_previous_version_resumes_after_its_upgrade(data, tmp_path):
    config = tiny_config(tmp_path, data, epochs=1)
    last = train(config)
    state = read_checkpoint(last)
    # The previous version's layout: the threshold beside the config, the score rule in the model config.
    old = {k: v for k, v in state.items() if k != 'calibration'}
    old['occupancy_threshold'] = 0.5
    old['config'] = copy.deepcopy(state['config'])
    old['config']['model'].update({'semantic_weight': 1.0, 'anomaly_temperature': 1.0, 'score_smoothing': 1})
    save_checkpoint(last, old)
    more = copy.deepcopy(config)
    more['train']['epochs'] = 2
    with pytest.raises(DataError, match=rf'{last} has no calibration section .*upgrade_calibration {last}'):
        train(more, resume=True)
    assert upgrade_main([str(last)]) == 0
    upgraded = read_checkpoint(last)
    assert upgraded['config'] == state['config'] and checkpoint_calibration(upgraded, last) == checkpoint_calibration(
        state, last
    )
    assert read_checkpoint(train(more, resume=True))['step'] == 8


@pytest.fixture
def one_bad_frame(data, tmp_path):
    """A copy of the tiny split whose second frame's LiDAR file is cut short; returns (root, bad file)."""
    root = tmp_path / 'data'
    shutil.copytree(data, root)
    scenario = next(p for p in root.iterdir() if p.name.startswith('Scenario_'))
    reader = ScenarioReader(scenario)
    bad = reader.file('points', reader.frame_ids[1])
    bad.write_bytes(bad.read_bytes()[:200])
    return root, bad


def test_an_unreadable_frame_is_reported_by_the_check_and_skipped_or_fatal_in_training(one_bad_frame, tmp_path, capsys):
    root, bad = one_bad_frame
    assert check_main([str(root), '--no-consistency']) == 1
    assert bad.name in capsys.readouterr().out
    config = tiny_config(tmp_path, root)
    spec = model_config_of(config).input_spec()
    paths = _prepare_data(training_config(config), spec, DistContext())
    assert len(paths.train) == 7 and all(p.is_file() for p in paths.train)
    err = capsys.readouterr().err
    assert 'train: warning: skipped 1 of 8 training frames that cannot be read' in err and bad.name in err
    config['data']['on_bad_frame'] = 'stop'
    with pytest.raises(DataError, match=rf'{re.escape(bad.name)}: not a readable \.npy.*data.on_bad_frame: skip'):
        _prepare_data(training_config(config), spec, DistContext())
