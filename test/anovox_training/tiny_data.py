"""Tiny synthetic AnoVox data for training and evaluation tests (seconds to generate)."""

from __future__ import annotations

from pathlib import Path

from anovox_training.data.synth.generate import GenerateConfig, generate

TINY_IMAGE = (96, 64)


def make_split(out: Path, split: str, scenarios: int, frames: int, seed: int) -> Path:
    """Generate ``scenarios`` x ``frames`` tiny frames of ``split`` under ``out``; return ``out``."""
    cfg = GenerateConfig(
        out=out,
        split=split,
        scenarios=scenarios,
        frames=frames,
        seed=seed,
        width=TINY_IMAGE[0],
        height=TINY_IMAGE[1],
        lidar_azimuth_steps=256,
        normal_share=0.0,
    )
    generate(cfg)
    return out


def tiny_config(tmp: Path, train: Path, val: Path | None = None, **train_overrides: object) -> dict:
    """A resolved training config for the tiny model on tiny data."""
    from anovox_training.train.config import resolve_config

    user = {
        'out_dir': str(tmp / 'run'),
        'data': {
            'train': [str(train)],
            'val': [str(val)] if val else [],
            'cache_dir': str(tmp / 'cache'),
            'cache_workers': 1,
        },
        'model': {'preset': 'tiny'},
        'train': {
            'epochs': 2,
            'batch_size': 2,
            'threads': 1,
            'progress': False,
            'log_every_steps': 1,
            'warmup_steps': 2,
            'intensity_aug': 0.0,
            'intensity_drop': 0.0,
            **train_overrides,
        },
    }
    return resolve_config(user, where='test')
