"""Distributed training through torchrun: two gloo processes on CPU."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import yaml
from tiny_data import make_split


@pytest.mark.slow
def test_torchrun_with_two_cpu_processes_trains_and_writes_one_checkpoint(tmp_path):
    data = make_split(tmp_path / 'train', 'train', scenarios=1, frames=4, seed=5)
    config = tmp_path / 'train.yaml'
    config.write_text(
        yaml.safe_dump(
            {
                'out_dir': str(tmp_path / 'run'),
                'data': {'train': [str(data)], 'val': [], 'cache_dir': str(tmp_path / 'cache'), 'cache_workers': 1},
                'model': {'preset': 'tiny'},
                'train': {'epochs': 2, 'batch_size': 1, 'threads': 1, 'progress': False, 'warmup_steps': 1},
            }
        )
    )
    cmd = [
        sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
        '-m', 'anovox_training.train', '--config', str(config),
    ]  # fmt: skip
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'CUDA_VISIBLE_DEVICES': ''}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    ckpt = torch.load(tmp_path / 'run' / 'last.pt', weights_only=True)
    # 4 frames over 2 ranks with 1 frame each per step: 2 steps per epoch.
    assert ckpt['step'] == 4 and ckpt['epoch'] == 2
    # Rank 0 alone writes: the checkpoint and the one before it, no per-rank copies.
    assert sorted(p.name for p in (tmp_path / 'run').glob('*.pt')) == ['last.prev.pt', 'last.pt']
