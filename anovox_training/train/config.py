"""Training configuration: defaults, YAML loading, ``--set key=value`` overrides, validation, typed sections.

The YAML mirrors :data:`DEFAULTS` (``config/train.yaml`` documents every key with
units). Unknown keys, wrong types and out-of-range values fail with a message
naming the key and the file. The ``model`` section is a ``ModelConfig`` with an
optional ``preset`` (``base`` or ``tiny``) whose values the other keys override;
the resolved config stores the full model dict without ``preset``. The score rule
is not a model key: ``eval.semantic_weight``, ``eval.anomaly_temperature``,
``eval.score_smoothing`` and ``eval.lidar_support`` are the rule validation scores with
during training and the one kept when its candidate list (``eval.semantic_weights`` ...)
is empty.

:func:`training_config` turns the validated dict into a frozen :class:`TrainingConfig`
(one dataclass per section, the model section a ``ModelConfig``); its ``to_dict()`` is
that dict again, key for key: what checkpoints store and what recipe ids hash.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

from anovox_perception.core.calibration import CalibrationError, ScoreRule, is_smoothing_window, is_support_window
from anovox_perception.core.errors import AnovoxError, ConfigError
from anovox_training.data.cache import BAD_FRAME_POLICIES
from anovox_training.model.config import ModelConfig
from anovox_training.train.augment import check_mirrorable
from anovox_training.train.losses import LossWeights

__all__ = [
    'DEFAULTS',
    'DataConfig',
    'EvalConfig',
    'TrainConfig',
    'TrainingConfig',
    'configured_score_rule',
    'load_config',
    'parse_overrides',
    'resolve_config',
    'training_config',
]

DEFAULTS: dict[str, Any] = {
    'seed': 0,
    'out_dir': 'runs/fusion',
    'data': {
        'train': ['data/synth/train', 'data/synth/train2'],
        'val': ['data/synth/val'],
        'tune': [],
        'cache_dir': '.cache/samples',
        'cache_workers': 2,
        'on_bad_frame': 'skip',
    },
    'model': {'preset': 'base'},
    'train': {
        'epochs': 2,
        'batch_size': 2,
        'lr': 2.0e-3,
        'weight_decay': 1.0e-4,
        'warmup_steps': 50,
        'grad_clip_norm': 5.0,
        'camera_dropout': 0.2,
        'mirror': 0.0,
        'intensity_aug': 0.5,
        'intensity_drop': 0.1,
        'init_from': None,
        'threads': 2,
        'loader_workers': 0,
        'log_every_steps': 10,
        'checkpoint_every_steps': 100,
        'stop_at_step': None,
        'progress': True,
    },
    'loss': {
        'occupancy': 1.0,
        'occupancy_pos_weight': 4.0,
        'semantic': 0.5,
        'anomaly': 1.0,
        'anomaly_pos_weight': 10.0,
        'anomaly_focal_gamma': 2.0,
        'anomaly_class_balance': 0.0,
        'outlier_exposure': 0.5,
    },
    'eval': {
        'val_every_epochs': 1,
        'val_max_frames': 200,
        'tune_max_frames': 1000,
        'occupancy_threshold': 0.5,
        'min_coverage': 0.95,
        'calibrate_occupancy': True,
        'semantic_weight': 1.0,
        'anomaly_temperature': 1.0,
        'score_smoothing': 1,
        'lidar_support': 0,
        'semantic_weights': [0.0, 0.5, 1.0, 2.0, 4.0],
        'anomaly_temperatures': [1.0, 2.0, 3.0, 4.0, 6.0, 8.0],
        'score_smoothings': [1, 3, 5, 7],
        'lidar_supports': [],
        'max_false_alarms_per_frame': 0.2,
    },
}

# key path -> (kind, lower bound or None, upper bound or None); bounds inclusive.
_NUMERIC: dict[str, tuple[type, float | None, float | None]] = {
    'seed': (int, 0, None),
    'data.cache_workers': (int, 1, 64),
    'train.epochs': (int, 1, None),
    'train.batch_size': (int, 1, None),
    'train.lr': (float, 0.0, 10.0),
    'train.weight_decay': (float, 0.0, 1.0),
    'train.warmup_steps': (int, 0, None),
    'train.grad_clip_norm': (float, 0.0, None),
    'train.camera_dropout': (float, 0.0, 1.0),
    'train.mirror': (float, 0.0, 1.0),
    'train.intensity_aug': (float, 0.0, 1.0),
    'train.intensity_drop': (float, 0.0, 1.0),
    'train.threads': (int, 1, 256),
    'train.loader_workers': (int, 0, 64),
    'train.log_every_steps': (int, 1, None),
    'train.checkpoint_every_steps': (int, 1, None),
    'train.stop_at_step': (int, 1, None),
    'loss.occupancy': (float, 0.0, None),
    'loss.occupancy_pos_weight': (float, 1.0, None),
    'loss.semantic': (float, 0.0, None),
    'loss.anomaly': (float, 0.0, None),
    'loss.anomaly_pos_weight': (float, 1.0, None),
    'loss.anomaly_focal_gamma': (float, 0.0, 10.0),
    'loss.anomaly_class_balance': (float, 0.0, 2.0),
    'loss.outlier_exposure': (float, 0.0, None),
    'eval.val_every_epochs': (int, 1, None),
    'eval.val_max_frames': (int, 1, None),
    'eval.tune_max_frames': (int, 1, None),
    'eval.occupancy_threshold': (float, 0.0, 1.0),
    'eval.min_coverage': (float, 0.0, 1.0),
    'eval.max_false_alarms_per_frame': (float, 0.0, None),
}
_NULLABLE = {'train.stop_at_step'}
# key path -> allowed values.
_CHOICES: dict[str, tuple[str, ...]] = {'data.on_bad_frame': BAD_FRAME_POLICIES}
_PRESETS = {'base': ModelConfig.base, 'tiny': ModelConfig.tiny}


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``['train.lr=0.01', 'model.preset=tiny']`` -> nested dict; values parse as YAML scalars.

    Raises:
        ConfigError: On an item without ``=`` or an empty key.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition('=')
        if not sep or not key.strip():
            msg = f'--set {item!r}: expected key.path=value, e.g. train.lr=0.001'
            raise ConfigError(msg)
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as err:
            msg = f'--set {item!r}: value is not valid YAML ({err})'
            raise ConfigError(msg) from err
        node = out
        parts = key.strip().split('.')
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _merge(base: dict[str, Any], update: Mapping[str, Any], where: str, path: str = '') -> dict[str, Any]:
    for key, value in update.items():
        full = f'{path}{key}'
        if full == 'model':
            if not isinstance(value, Mapping):
                msg = f'{where}: model must be a mapping of ModelConfig keys'
                raise ConfigError(msg)
            base['model'] = {**base.get('model', {}), **value}
            continue
        if key not in base:
            msg = f'{where}: unknown key {full!r}; known keys here: {sorted(base)}'
            raise ConfigError(msg)
        if isinstance(base[key], dict):
            if not isinstance(value, Mapping):
                msg = f'{where}: {full} must be a mapping, got {value!r}'
                raise ConfigError(msg)
            _merge(base[key], value, where, f'{full}.')
        else:
            base[key] = value
    return base


def _get(config: Mapping[str, Any], path: str) -> Any:
    node: Any = config
    for part in path.split('.'):
        node = node[part]
    return node


def _set(config: dict[str, Any], path: str, value: Any) -> None:
    node = config
    parts = path.split('.')
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value


def _check_numbers(config: dict[str, Any], where: str) -> None:
    for path, (kind, lo, hi) in _NUMERIC.items():
        value = _get(config, path)
        if value is None and path in _NULLABLE:
            continue
        if isinstance(value, str):
            # YAML 1.1 reads '1e-3' (no dot) as a string; accept any numeric literal.
            with contextlib.suppress(ValueError):
                value = float(value)
        ok_type = isinstance(value, int | float) and not isinstance(value, bool)
        if kind is int and ok_type and float(value) != int(value):
            ok_type = False
        if not ok_type:
            msg = f'{where}: {path} must be {"an integer" if kind is int else "a number"}, got {value!r}'
            raise ConfigError(msg)
        value = kind(value)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            msg = f'{where}: {path}={value} is out of range [{lo}, {"inf" if hi is None else hi}]'
            raise ConfigError(msg)
        _set(config, path, value)


def _as_paths(value: Any, key: str, where: str, allow_empty: bool = False) -> list[str]:
    items = [value] if isinstance(value, str) else value
    ok = isinstance(items, list) and (items or allow_empty) and all(isinstance(v, str) and v for v in items)
    if not ok:
        kind = 'a list of paths' if allow_empty else 'a path or a non-empty list of paths'
        msg = f'{where}: {key} must be {kind}, got {value!r}'
        raise ConfigError(msg)
    return list(items)


def resolve_config(user: Mapping[str, Any], where: str = 'config', base_dir: Path | None = None) -> dict[str, Any]:
    """Defaults + ``user``, validated; model section expanded to a full ``ModelConfig`` dict.

    Args:
        user: Nested mapping (YAML content merged with overrides).
        where: Name used in error messages (the YAML file).
        base_dir: Relative data / output paths are resolved against it (None: leave them).

    Raises:
        ConfigError: On unknown keys, wrong types or out-of-range values.
    """
    config = _merge(copy.deepcopy(DEFAULTS), user, where)
    _check_numbers(config, where)
    for key in ('train', 'val', 'tune'):
        config['data'][key] = _as_paths(config['data'][key], f'data.{key}', where, allow_empty=key != 'train')
    for key in ('cache_dir', 'out_dir'):
        holder = config['data'] if key == 'cache_dir' else config
        if not isinstance(holder[key], str) or not holder[key]:
            msg = f'{where}: {key} must be a non-empty path string, got {holder[key]!r}'
            raise ConfigError(msg)
    init_from = config['train']['init_from']
    if init_from is not None and (not isinstance(init_from, str) or not init_from):
        msg = f'{where}: train.init_from must be a checkpoint path or null, got {init_from!r}'
        raise ConfigError(msg)
    for key, positive in (('semantic_weights', False), ('anomaly_temperatures', True)):
        values = config['eval'][key]
        if not isinstance(values, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and (v > 0 if positive else v >= 0) for v in values
        ):
            msg = f'{where}: eval.{key} must be a list of numbers {"> 0" if positive else ">= 0"}, got {values!r}'
            raise ConfigError(msg)
        config['eval'][key] = [float(v) for v in values]
    try:
        rule = configured_score_rule(config)
    except CalibrationError as err:
        msg = f'{where}: eval.{str(err).removeprefix("score_rule.")}'
        raise ConfigError(msg) from None
    config['eval'].update(rule.to_dict())
    smoothings = config['eval']['score_smoothings']
    if not isinstance(smoothings, list) or not all(is_smoothing_window(v) for v in smoothings):
        msg = f'{where}: eval.score_smoothings must be a list of odd integers >= 1 (1: none), got {smoothings!r}'
        raise ConfigError(msg)
    supports = config['eval']['lidar_supports']
    if not isinstance(supports, list) or not all(is_support_window(v) for v in supports):
        msg = f'{where}: eval.lidar_supports must be a list of 0 (no gate) or odd integers >= 1, got {supports!r}'
        raise ConfigError(msg)
    for path, choices in _CHOICES.items():
        if _get(config, path) not in choices:
            msg = f'{where}: {path} must be one of {list(choices)}, got {_get(config, path)!r}'
            raise ConfigError(msg)
    for path in ('train.progress', 'eval.calibrate_occupancy'):
        if not isinstance(_get(config, path), bool):
            msg = f'{where}: {path} must be true or false, got {_get(config, path)!r}'
            raise ConfigError(msg)
    if base_dir is not None:
        for key in ('train', 'val', 'tune'):
            config['data'][key] = [str(base_dir / p) for p in config['data'][key]]
        config['data']['cache_dir'] = str(base_dir / config['data']['cache_dir'])
        config['out_dir'] = str(base_dir / config['out_dir'])
        if init_from is not None:
            config['train']['init_from'] = str(base_dir / init_from)
    model = dict(config['model'])
    preset = model.pop('preset', None)
    try:
        if preset is not None:
            if preset not in _PRESETS:
                msg = f'{where}: model.preset must be one of {sorted(_PRESETS)}, got {preset!r}'
                raise ConfigError(msg)
            model = {**_PRESETS[preset]().to_dict(), **model}
        model_cfg = ModelConfig.from_dict(model)
        if config['train']['mirror'] > 0:
            check_mirrorable(model_cfg.grid)
        config['model'] = model_cfg.to_dict()
    except AnovoxError as err:
        if isinstance(err, ConfigError) and str(err).startswith(where):
            raise
        msg = f'{where}: model: {err}'
        raise ConfigError(msg) from err
    return config


def configured_score_rule(config: Mapping[str, Any]) -> ScoreRule:
    """The score rule a resolved training config sets (``eval.semantic_weight`` ...), before any is chosen."""
    evaluation = config['eval']
    return ScoreRule(
        evaluation['semantic_weight'],
        evaluation['anomaly_temperature'],
        evaluation['score_smoothing'],
        evaluation['lidar_support'],
    )


def load_config(
    path: str | Path, overrides: Sequence[str] = (), settings: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """Read a training YAML, apply ``settings``, then the ``key=value`` overrides, and validate.

    Relative paths in the file are taken relative to the current directory (the
    repository root for ``make``), as the CLI user expects.

    Args:
        path: The training YAML.
        overrides: ``--set`` items (``train.lr=0.001``), applied last, in order.
        settings: Nested mappings of typed values (``{'train': {'epochs': 1}}``), applied in
            order before ``overrides``: what a program sets (``make model``'s folders and variants).

    Raises:
        ConfigError: When the file is missing or not valid YAML, or the config is invalid.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding='utf-8')
    except OSError as err:
        msg = f'training config {path} cannot be read ({err})'
        raise ConfigError(msg) from err
    try:
        user = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        msg = f'training config {path} is not valid YAML: {err}'
        raise ConfigError(msg) from err
    if not isinstance(user, dict):
        msg = f'training config {path} must be a mapping at the top level'
        raise ConfigError(msg)
    merged = _merge(copy.deepcopy(DEFAULTS), user, str(path))
    for setting in settings:
        merged = _merge(merged, copy.deepcopy(setting), f'{path} (settings)')
    merged = _merge(merged, parse_overrides(overrides), f'{path} (--set)')
    return resolve_config(merged, where=str(path))


@dataclass(frozen=True)
class DataConfig:
    """``data``: the frame sources (folders, scenario folders or split files) and the sample cache.

    Attributes:
        train: Training sources.
        val: Per-epoch validation sources (empty: no validation).
        tune: Score-rule sources (empty: the validation frames).
        cache_dir: Sample cache root.
        cache_workers: Processes building missing cache entries.
        on_bad_frame: ``skip`` (count and warn) or ``stop`` on a frame whose files cannot be read.
    """

    train: tuple[str, ...]
    val: tuple[str, ...]
    tune: tuple[str, ...]
    cache_dir: str
    cache_workers: int
    on_bad_frame: str


@dataclass(frozen=True)
class TrainConfig:
    """``train``: optimisation, augmentation, logging and checkpoint cadence (``config/train.yaml`` has the units)."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_steps: int
    grad_clip_norm: float
    camera_dropout: float
    mirror: float
    intensity_aug: float
    intensity_drop: float
    init_from: str | None
    threads: int
    loader_workers: int
    log_every_steps: int
    checkpoint_every_steps: int
    stop_at_step: int | None
    progress: bool


@dataclass(frozen=True)
class EvalConfig:
    """``eval``: validation cadence and size, the occupancy calibration, the score rule and its candidates."""

    val_every_epochs: int
    val_max_frames: int
    tune_max_frames: int
    occupancy_threshold: float
    min_coverage: float
    calibrate_occupancy: bool
    semantic_weight: float
    anomaly_temperature: float
    score_smoothing: int
    lidar_support: int
    semantic_weights: tuple[float, ...]
    anomaly_temperatures: tuple[float, ...]
    score_smoothings: tuple[int, ...]
    lidar_supports: tuple[int, ...]
    max_false_alarms_per_frame: float

    @property
    def score_rule(self) -> ScoreRule:
        """The configured score rule: validation scores with it until one is chosen after training."""
        return ScoreRule(self.semantic_weight, self.anomaly_temperature, self.score_smoothing, self.lidar_support)


@dataclass(frozen=True)
class TrainingConfig:
    """A resolved training config, typed: one frozen section per YAML section (:func:`training_config` builds it)."""

    seed: int
    out_dir: str
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    loss: LossWeights
    eval: EvalConfig

    def to_dict(self) -> dict[str, Any]:
        """The resolved dict this was built from, key for key (what checkpoints store, what recipe ids hash)."""
        return {
            'seed': self.seed,
            'out_dir': self.out_dir,
            'data': _plain(self.data),
            'model': self.model.to_dict(),
            'train': _plain(self.train),
            'loss': _plain(self.loss),
            'eval': _plain(self.eval),
        }


_Section = TypeVar('_Section', DataConfig, TrainConfig, LossWeights, EvalConfig)


def _keys_match(data: Any, expected: Sequence[str], name: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        msg = f'training config: {name} must be a mapping, got {type(data).__name__}'
        raise ConfigError(msg)
    missing, unknown = [k for k in expected if k not in data], sorted(set(data) - set(expected))
    if missing or unknown:
        msg = (
            f'training config: {name} has missing keys {missing} and unknown keys {unknown}; '
            'build the config with load_config or resolve_config'
        )
        raise ConfigError(msg)
    return data


def _section(kind: type[_Section], data: Any, name: str) -> _Section:
    # Lists become tuples (the sections are frozen); values are kept as validated, so to_dict() gives them back.
    values = _keys_match(data, [f.name for f in fields(kind)], name)
    return kind(**{key: tuple(value) if isinstance(value, list) else value for key, value in values.items()})


def _plain(section: DataConfig | TrainConfig | LossWeights | EvalConfig) -> dict[str, Any]:
    out = {}
    for f in fields(section):
        value = getattr(section, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def training_config(config: Mapping[str, Any]) -> TrainingConfig:
    """The typed form of a resolved training config (the dict ``resolve_config`` and ``load_config`` return).

    ``training_config(config).to_dict() == config``.

    Raises:
        ConfigError: When a section or key is missing or unknown, or the model section is invalid.
    """
    top = _keys_match(config, [f.name for f in fields(TrainingConfig)], 'the top level')
    try:
        model = ModelConfig.from_dict(top['model'])
    except AnovoxError as err:
        msg = f'training config: model: {err}'
        raise ConfigError(msg) from err
    return TrainingConfig(
        seed=top['seed'],
        out_dir=top['out_dir'],
        data=_section(DataConfig, top['data'], 'data'),
        model=model,
        train=_section(TrainConfig, top['train'], 'train'),
        loss=_section(LossWeights, top['loss'], 'loss'),
        eval=_section(EvalConfig, top['eval'], 'eval'),
    )
