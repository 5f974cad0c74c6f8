"""Train the fusion detector.

    python -m anovox_training.train --config config/train.yaml [--set train.lr=0.001 ...] [--resume]
    torchrun --nproc_per_node 2 -m anovox_training.train --config config/train.yaml   # DDP

Frames are preprocessed once into the sample cache (``anovox_training.data.cache``);
frames whose files cannot be read are left out with a counted warning, or stop the
run, as ``data.on_bad_frame`` says. Training is deterministic: the data order of
epoch ``e`` is a permutation seeded by ``(seed, e)``, camera dropout, mirroring and
the intensity augmentation draw from generators seeded by ``(seed, step, rank)``,
and checkpoints hold model, optimiser, scheduler, step, position in the epoch, the
open log window and RNG states, so ``--resume`` continues bit-for-bit where
``out_dir/last.pt`` left off, even after a SIGKILL. Checkpoints are written
atomically, with a checksum, by rank 0; the one before keeps as ``last.prev.pt``
and a resume falls back to it, with a warning, when ``last.pt`` fails its checks.
SIGTERM / SIGINT save one at the next step boundary before exiting.

Per validation pass (rank 0) the model is scored on the validation split with
the AnoVox protocol, with the configured score rule (``eval.semantic_weight``,
``eval.anomaly_temperature``, ``eval.score_smoothing``); ``best.pt`` keeps the best
Anomalies_Only AP, and every checkpoint's ``calibration`` records the occupancy
threshold calibrated on validation (the largest of :data:`THRESHOLD_GRID` reaching
``eval.min_coverage``) with the validation data it was chosen on. After the last
epoch the score rule (``anovox_training.calibrate.score_tuning``) is chosen on the ``data.tune``
frames (the validation frames when empty) and written into the calibration of
``best.pt`` and ``last.pt``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import os
import random
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from anovox_perception.core.calibration import Calibration, ChosenOn
from anovox_perception.core.errors import AnovoxError, ConfigError, DataError
from anovox_perception.core.preprocess import INPUT_NAMES, InputSpec
from anovox_training.calibrate.score_tuning import tune_checkpoints
from anovox_training.data.cache import CachedFrame, SampleCache, data_hash, evenly_spread, frame_refs, load_cached
from anovox_training.data.dataset import resolve_scenarios
from anovox_training.data.targets import EVAL_IGNORED_LABELS, dense_labels
from anovox_training.evaluate.run import VariantAccumulator, model_scorer
from anovox_training.model.checkpoint import (
    checkpoint_calibration,
    model_config_of,
    read_latest_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)
from anovox_training.model.config import ModelConfig
from anovox_training.model.detector import AnomalyDetector, build_model
from anovox_training.model.warm_start import warm_start
from anovox_training.train.augment import intensity_channel, jitter_intensity, mirror_mask, mirror_y
from anovox_training.train.config import configured_score_rule, load_config
from anovox_training.train.losses import LOSS_TERMS, DetectorLoss, LossWeights

__all__ = [
    'THRESHOLD_GRID',
    'CachedDataset',
    'TrainingError',
    'TrainingInterrupted',
    'calibrate_threshold',
    'epoch_batches',
    'get_args_parser',
    'main',
    'train',
]

# Occupancy thresholds tried by the calibration, highest first.
THRESHOLD_GRID = (0.5, 0.4, 0.3, 0.2, 0.15, 0.1, 0.05, 0.02, 0.01)
_IGNORED = np.zeros(256, dtype=bool)
_IGNORED[sorted(EVAL_IGNORED_LABELS)] = True
# Model keys a resume may change: the ImageNet weights file, read only to initialise a fresh run.
_RESUMABLE_MODEL_KEYS = ('image_weights',)


class TrainingError(AnovoxError, RuntimeError):
    """Training cannot continue (non-finite loss, incompatible resume)."""


class TrainingInterrupted(TrainingError):
    """SIGTERM / SIGINT stopped training after saving a checkpoint; ``--resume`` continues it."""


@dataclass(frozen=True)
class DistContext:
    """Process group facts; world 1 without torchrun."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device('cpu')

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def share(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (a picklable object)."""
        if self.world <= 1:
            return value
        holder = [value]
        torch.distributed.broadcast_object_list(holder, src=0)
        return holder[0]


def init_distributed() -> DistContext:
    """Join the torchrun process group when launched by torchrun (NCCL on GPUs, gloo on CPUs)."""
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if world <= 1:
        device = torch.device('cuda') if torch.cuda.is_available() else torch.device('cpu')
        return DistContext(device=device)
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device, backend = torch.device('cuda', local_rank), 'nccl'
    else:
        device, backend = torch.device('cpu'), 'gloo'
    torch.distributed.init_process_group(backend=backend)
    return DistContext(rank=torch.distributed.get_rank(), world=torch.distributed.get_world_size(), device=device)


class CachedDataset(Dataset):
    """Cached samples as tensors: the model inputs (no batch dim) and ``labels`` (nx, ny, nz) uint8."""

    def __init__(self, paths: Sequence[Path], spec: InputSpec) -> None:
        self.paths = list(paths)
        self.spec = spec

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        frame = load_cached(self.paths[index], self.spec)
        item = {name: torch.from_numpy(frame.inputs[name][0]) for name in INPUT_NAMES}
        item['labels'] = torch.from_numpy(dense_labels(frame.targets, self.spec.grid))
        return item


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1) -> list[list[int]]:
    """This rank's batches of epoch ``epoch``: a seeded permutation, equal batch counts on every rank.

    The tail that does not fill a batch on every rank is dropped (it is a
    different tail each epoch).
    """
    order = np.random.default_rng([seed, epoch]).permutation(n)
    per_step = batch_size * world
    usable = (n // per_step) * per_step
    mine = order[:usable][rank::world]
    return [mine[i : i + batch_size].tolist() for i in range(0, len(mine), batch_size)]


def _collate(items: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


def _camera_dropout(valid: Tensor, p: float, seed: int, step: int, rank: int) -> Tensor:
    if p <= 0:
        return valid
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step * 1_009 + rank)
    drop = torch.rand(valid.shape[0], generator=gen) < p
    return valid * (~drop).to(valid.dtype).unsqueeze(1).to(valid.device)


def _lr_lambda(warmup: int, total: int) -> Any:
    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        'torch': torch.get_rng_state(),
        'numpy': [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        'python': random.getstate(),
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state['torch'])
    kind, keys, pos, has_gauss, gauss = state['numpy']
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state['python']
    random.setstate((version, tuple(internal), gauss_next))


def calibrate_threshold(occupancy_at_gt: np.ndarray, min_coverage: float) -> float:
    """Largest threshold of :data:`THRESHOLD_GRID` whose coverage of ground-truth voxels >= ``min_coverage``.

    Args:
        occupancy_at_gt: Predicted occupancy of every (non-ignored) ground-truth voxel.
        min_coverage: Required fraction in [0, 1].

    Returns:
        The threshold; the smallest of the grid when none reaches the coverage.
    """
    if occupancy_at_gt.size == 0:
        return THRESHOLD_GRID[0]
    for t in THRESHOLD_GRID:
        if float(np.mean(occupancy_at_gt >= t)) >= min_coverage:
            return t
    return THRESHOLD_GRID[-1]


@torch.inference_mode()
def validate(model: AnomalyDetector, frames_paths: Sequence[Path], spec: InputSpec, config: dict[str, Any]) -> dict:
    """AnoVox metrics on validation frames and the calibrated occupancy threshold.

    Metrics are pooled for every threshold of :data:`THRESHOLD_GRID` (and the
    configured one) in one pass; the reported ones are those at the calibrated
    threshold (at the configured one when ``eval.calibrate_occupancy`` is false).
    """
    was_training = model.training
    model.eval()
    configured = config['eval']['occupancy_threshold']
    accs = {t: VariantAccumulator(spec.grid, t, n_bins=10_000) for t in {*THRESHOLD_GRID, configured}}
    score = model_scorer(model)
    occupancy_at_gt = []
    for start in range(0, len(frames_paths), 4):
        frames: list[CachedFrame] = [load_cached(p, spec) for p in frames_paths[start : start + 4]]
        occupancy, anomaly = score(frames)
        for i, frame in enumerate(frames):
            for acc in accs.values():
                acc.add(frame, occupancy[i], anomaly[i])
            keep = ~_IGNORED[frame.targets.label]
            occupancy_at_gt.append(occupancy[i].reshape(-1)[frame.targets.index[keep]])
    model.train(was_training)
    calibrated = calibrate_threshold(np.concatenate(occupancy_at_gt), config['eval']['min_coverage'])
    threshold = calibrated if config['eval']['calibrate_occupancy'] else configured
    return {'result': accs[threshold].result(), 'occupancy_threshold': threshold}


class _Logger:
    """CSV (and TensorBoard when installed) logging on rank 0."""

    def __init__(self, out_dir: Path, resume_step: int, resume_epoch: int) -> None:
        self.files = {'train': out_dir / 'train_log.csv', 'val': out_dir / 'val_log.csv'}
        # Rows a resume will write again: train rows after the checkpoint's step, and validation
        # rows of epochs it has not finished (validation runs before the epoch-end checkpoint).
        _truncate_log(self.files['train'], 'step', resume_step)
        _truncate_log(self.files['val'], 'epoch', resume_epoch)
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out_dir / 'tensorboard'))
        except ImportError:  # TensorBoard is optional
            self.tb = None

    def write(self, kind: str, row: dict[str, Any]) -> None:
        path = self.files[kind]
        new = not path.is_file() or path.stat().st_size == 0
        with path.open('a', newline='') as fh:
            writer = csv.DictWriter(fh, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
        if self.tb is not None:
            for key, value in row.items():
                if key != 'step' and isinstance(value, int | float) and value is not None:
                    self.tb.add_scalar(f'{kind}/{key}', value, row['step'])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _truncate_log(path: Path, column: str, limit: int) -> None:
    """Keep the log rows whose ``column`` is <= ``limit``; drop the rest and any row a kill cut short."""
    if not path.is_file():
        return
    with path.open(newline='') as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return
    header = rows[0]
    where = header.index(column)

    def keep(row: list[str]) -> bool:
        if len(row) != len(header):
            return False
        try:
            return float(row[where]) <= limit
        except ValueError:
            return False

    with path.open('w', newline='') as fh:
        csv.writer(fh).writerows([header, *(r for r in rows[1:] if keep(r))])


class _StopFlag:
    """Set by SIGTERM / SIGINT; the loop saves a checkpoint at the next step boundary and exits."""

    def __init__(self) -> None:
        self.stop = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError):  # not the main thread: no handlers
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.stop = True

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class _DataPaths(NamedTuple):
    """Cached-sample files of the training, per-epoch validation and score-rule frames."""

    train: list[Path]
    val: list[Path]
    tune: list[Path]


def _prepare_data(config: dict[str, Any], spec: InputSpec, dist: DistContext) -> _DataPaths:
    """Cache the frames (rank 0); every rank gets the files of the usable ones.

    Raises:
        ConfigError: When a source has no frames.
        DataError: On an unreadable frame with ``data.on_bad_frame: stop``, or when no
            training frame is readable.
    """
    cache = SampleCache(config['data']['cache_dir'], spec)
    data = config['data']
    train_refs = frame_refs(resolve_scenarios(data['train']))
    val_refs = frame_refs(resolve_scenarios(data['val'])) if data['val'] else []
    if not train_refs:
        msg = f'no training frames with LiDAR points and voxels in {data["train"]}'
        raise ConfigError(msg)
    val_refs = evenly_spread(val_refs, config['eval']['val_max_frames'])
    # The score rule is chosen once, after training, so it can afford more frames than each epoch's check.
    tune_refs = val_refs
    if data['tune']:
        tune_refs = evenly_spread(frame_refs(resolve_scenarios(data['tune'])), config['eval']['tune_max_frames'])
        if not tune_refs:
            msg = f'no frames with LiDAR points and voxels in data.tune {data["tune"]} (set [] to tune on data.val)'
            raise ConfigError(msg)
    paths = None
    if dist.is_main:
        paths = []
        for what, refs in (('training', train_refs), ('validation', val_refs), ('score-rule', tune_refs)):
            build = cache.build(refs, workers=data['cache_workers'], on_bad_frame=data['on_bad_frame'])
            if build.bad:
                print(f'train: warning: {build.summary(f"{what} frames")}', file=sys.stderr)
            if what == 'training' and not build.paths:
                msg = f'no readable training frame in {data["train"]}: {build.summary("training frames")}'
                raise DataError(msg)
            paths.append(build.paths)
    return _DataPaths(*dist.share(paths))


def _resume_mismatch(trained: Mapping[str, Any], requested: Mapping[str, Any]) -> list[str]:
    """Model keys that differ between a checkpoint's and this run's model config, but for the weights file."""
    a, b = (ModelConfig.from_dict(m).to_dict() for m in (trained, requested))
    return sorted(k for k in a if k not in _RESUMABLE_MODEL_KEYS and a[k] != b[k])


def train(config: dict[str, Any], resume: bool = False, dist: DistContext | None = None) -> Path:
    """Train as ``config`` says; return the path of the last checkpoint.

    Raises:
        TrainingError: On a non-finite loss or a resume with an incompatible model.
        ConfigError: On missing data.
    """
    dist = dist or DistContext()
    tcfg, seed = config['train'], config['seed']
    out_dir = Path(config['out_dir'])
    torch.set_num_threads(tcfg['threads'])
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    model_cfg = model_config_of(config)
    spec = model_cfg.input_spec()
    train_paths, val_paths, tune_paths = _prepare_data(config, spec, dist)
    dataset = CachedDataset(train_paths, spec)
    batches_per_epoch = len(epoch_batches(len(dataset), tcfg['batch_size'], seed, 0, dist.rank, dist.world))
    if batches_per_epoch == 0:
        msg = f'{len(dataset)} training frames cannot fill one batch of {tcfg["batch_size"]} on {dist.world} ranks'
        raise ConfigError(msg)
    total_steps = tcfg['epochs'] * batches_per_epoch

    # Validation during training scores with the configured rule; the chosen one comes after the last epoch.
    score_rule = configured_score_rule(config)
    model = build_model(model_cfg, score_rule).to(dist.device)
    criterion = DetectorLoss(model_cfg.classes, LossWeights.from_dict(config['loss'])).to(dist.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=tcfg['lr'], weight_decay=tcfg['weight_decay'])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(tcfg['warmup_steps'], total_steps))
    step, epoch, batch_index, best_ap = 0, 0, 0, -1.0
    occupancy_threshold = config['eval']['occupancy_threshold']
    threshold_chosen_on = ChosenOn()  # configured until a validation calibrates it
    last_path, best_path = out_dir / 'last.pt', out_dir / 'best.pt'
    # Loss sums since the last train_log row; checkpointed, so a resumed run logs the same rows.
    window: dict[str, float] = {k: 0.0 for k in ('loss', *LOSS_TERMS)}
    window_steps = 0
    if dist.is_main:
        for path in (last_path, best_path):
            remove_stale_temporaries(path)  # left by a process killed mid-write
    latest = read_latest_checkpoint(last_path, map_location=dist.device) if resume else None
    if latest is not None:
        ckpt, ckpt_path = latest
        calibrated = checkpoint_calibration(ckpt, ckpt_path)  # first: a checkpoint without one names its upgrade
        differ = _resume_mismatch(ckpt['config']['model'], config['model'])
        if differ:
            msg = (
                f'--resume: {ckpt_path} was trained with another model config (model.{", model.".join(differ)} '
                'differ); use a new out_dir, or the model config it was trained with'
            )
            raise TrainingError(msg)
        model.load_state_dict(ckpt['model'])
        optimizer.load_state_dict(ckpt['optimizer'])
        scheduler.load_state_dict(ckpt['scheduler'])
        step, epoch, batch_index = ckpt['step'], ckpt['epoch'], ckpt['batch_index']
        best_ap = ckpt.get('best_val_ap', -1.0)
        occupancy_threshold, threshold_chosen_on = calibrated.occupancy_threshold, calibrated.threshold_chosen_on
        if 'log_window' in ckpt:
            window = {k: float(v) for k, v in ckpt['log_window']['sums'].items()}
            window_steps = int(ckpt['log_window']['steps'])
        _set_rng_state(ckpt['rng_state'])
    else:
        if resume and dist.is_main:
            print(f'train: no {last_path} to resume from; starting from scratch', file=sys.stderr)
        if tcfg['init_from'] is not None:
            # Every rank loads the same file, so the replicas start identical.
            report = warm_start(model, tcfg['init_from'])
            if dist.is_main:
                print(f'train: {report.summary()}', file=sys.stderr)
    hash_of_data = data_hash(train_paths)
    net: nn.Module = _LogitsView(model)
    if dist.world > 1:
        device_ids = [dist.device.index] if dist.device.type == 'cuda' else None
        net = nn.parallel.DistributedDataParallel(net, device_ids=device_ids)
    logger = _Logger(out_dir, step, epoch) if dist.is_main else None
    if dist.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)

    def state() -> dict[str, Any]:
        return {
            'model': model.state_dict(),
            'optimizer': optimizer.state_dict(),
            'scheduler': scheduler.state_dict(),
            'epoch': epoch,
            'batch_index': batch_index,
            'step': step,
            'config': config,
            'input_spec': spec.to_dict(),
            'data_hash': hash_of_data,
            'rng_state': _rng_state(),
            'best_val_ap': best_ap,
            'calibration': Calibration(occupancy_threshold, score_rule, threshold_chosen_on).to_dict(),
            'log_window': {'sums': dict(window), 'steps': window_steps},
        }

    def save_last() -> None:
        if dist.is_main:
            save_checkpoint(last_path, state(), keep_previous=True)
        dist.barrier()

    progress = None
    if dist.is_main and tcfg['progress']:
        from tqdm import tqdm

        progress = tqdm(total=total_steps, initial=step, unit='step', dynamic_ncols=True, desc='train')
    stop_at = tcfg['stop_at_step']
    window_start = time.perf_counter()
    # A model that ignores intensity sees a zero channel: nothing to augment.
    uses_intensity = spec.lidar_intensity == 'use'
    channel = intensity_channel(spec.grid)
    model.train()
    with _StopFlag() as flag:
        while epoch < tcfg['epochs']:
            batches = epoch_batches(len(dataset), tcfg['batch_size'], seed, epoch, dist.rank, dist.world)
            loader = DataLoader(
                dataset,
                batch_sampler=batches[batch_index:],
                num_workers=tcfg['loader_workers'],
                collate_fn=_collate,
                # Its own generator: creating a loader must not draw from the global RNG, which a
                # resume restores as of the checkpoint, not as of the epoch start.
                generator=torch.Generator().manual_seed(seed * 1_000_039 + epoch),
            )
            for batch in loader:
                batch = {k: v.to(dist.device) for k, v in batch.items()}
                if tcfg['mirror'] > 0:
                    which = mirror_mask(batch['labels'].shape[0], tcfg['mirror'], seed, step, dist.rank)
                    batch = mirror_y(batch, which)
                if uses_intensity:
                    batch['bev'] = jitter_intensity(
                        batch['bev'], channel, tcfg['intensity_aug'], tcfg['intensity_drop'], seed, step, dist.rank
                    )
                batch['camera_valid'] = _camera_dropout(
                    batch['camera_valid'], tcfg['camera_dropout'], seed, step, dist.rank
                )
                loss, terms = criterion(net(*(batch[name] for name in INPUT_NAMES)), batch['labels'])
                if not torch.isfinite(loss):
                    values = ', '.join(f'{k}={float(v):.4g}' for k, v in terms.items())
                    msg = (
                        f'non-finite loss at step {step} (epoch {epoch}, batch {batch_index}): {values}. '
                        f'Lower train.lr or check the data; the last good checkpoint is {last_path}'
                    )
                    raise TrainingError(msg)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if tcfg['grad_clip_norm'] > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), tcfg['grad_clip_norm'])
                optimizer.step()
                scheduler.step()
                step += 1
                batch_index += 1
                window['loss'] += float(loss.detach())
                for k, v in terms.items():
                    window[k] += float(v)
                window_steps += 1
                if progress is not None:
                    progress.update(1)
                if dist.is_main and (step % tcfg['log_every_steps'] == 0 or batch_index == len(batches)):
                    elapsed = max(time.perf_counter() - window_start, 1e-9)
                    rate = window_steps * tcfg['batch_size'] * dist.world / elapsed
                    row = {'step': step, 'epoch': epoch, 'lr': scheduler.get_last_lr()[0]}
                    row.update({k: v / window_steps for k, v in window.items()})
                    row['samples_per_s'] = rate
                    logger.write('train', row)
                    if progress is not None:
                        progress.set_postfix(
                            loss=f'{row["loss"]:.4f}', anomaly=f'{row["anomaly"]:.4f}', sps=f'{rate:.2f}'
                        )
                    window = dict.fromkeys(window, 0.0)
                    window_steps, window_start = 0, time.perf_counter()
                stopping = (stop_at is not None and step >= stop_at) or flag.stop
                if stopping or step % tcfg['checkpoint_every_steps'] == 0:
                    save_last()
                if stopping:
                    if progress is not None:
                        progress.close()
                    if logger is not None:
                        logger.close()
                    if flag.stop:
                        msg = f'interrupted by a signal at step {step}; {last_path} holds it, continue with --resume'
                        raise TrainingInterrupted(msg)
                    return last_path
            epoch += 1
            batch_index = 0
            if val_paths and (epoch % config['eval']['val_every_epochs'] == 0 or epoch == tcfg['epochs']):
                if dist.is_main:
                    val = validate(model, val_paths, spec, config)
                    occupancy_threshold = val['occupancy_threshold']
                    if config['eval']['calibrate_occupancy']:
                        threshold_chosen_on = ChosenOn.of_sources(config['data']['val'], data_hash(val_paths))
                    subset = val['result']['Anomalies_Only']
                    ap = subset['AP'] if subset['voxels'] else None
                    row = {'step': step, 'epoch': epoch, 'occupancy_threshold': occupancy_threshold}
                    for name in ('Anomalies_Only', 'Normality_Included'):
                        for key in ('AUROC', 'AP', 'FPR95', 'coverage'):
                            row[f'{name}_{key}'] = val['result'][name][key]
                    logger.write('val', row)
                    print(
                        f'\nval epoch {epoch}: Anomalies_Only AP={subset["AP"]} AUROC={subset["AUROC"]} '
                        f'FPR95={subset["FPR95"]} coverage={subset["coverage"]} '
                        f'occupancy_threshold={occupancy_threshold}',
                        file=sys.stderr,
                    )
                    if ap is not None and ap > best_ap:
                        best_ap = ap
                        save_checkpoint(best_path, state())
                dist.barrier()
            save_last()
    if progress is not None:
        progress.close()
    if logger is not None:
        logger.close()
    if dist.is_main and tune_paths:
        tune_checkpoints(
            [best_path, last_path],
            tune_paths,
            spec,
            config['eval']['semantic_weights'],
            config['eval']['anomaly_temperatures'],
            config['eval']['score_smoothings'],
            sources=config['data']['tune'] or config['data']['val'],
        )
    dist.barrier()
    return last_path


class _LogitsView(nn.Module):
    """Exposes ``AnomalyDetector.logits`` as ``forward``, so DDP's forward hooks see the training pass."""

    def __init__(self, model: AnomalyDetector) -> None:
        super().__init__()
        self.model = model

    def forward(self, *inputs: Tensor) -> Any:
        return self.model.logits(*inputs)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Train the camera+LiDAR anomaly detector.')
    parser.add_argument('--config', required=True, help='training YAML (see config/train.yaml)')
    parser.add_argument(
        '--set', action='append', default=[], metavar='KEY=VALUE', help='override a config key, e.g. train.lr=1e-3'
    )
    parser.add_argument('--resume', action='store_true', help='continue from out_dir/last.pt')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    try:
        config = load_config(args.config, args.set)
        dist = init_distributed()
        try:
            path = train(config, resume=args.resume, dist=dist)
        finally:
            if dist.world > 1:
                torch.distributed.destroy_process_group()
    except TrainingInterrupted as err:
        print(f'train: {err}', file=sys.stderr)
        return 130
    except AnovoxError as err:
        print(f'train: error: {err}', file=sys.stderr)
        return 2
    if dist.is_main:
        print(f'train: wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
