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

:class:`Trainer` holds one run, in the steps above: ``fit`` (the epochs), ``train_epoch``,
``validate``, ``checkpoint`` and ``calibrate_score_rule``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import random
import signal
import sys
import time
from collections.abc import Mapping, Sequence
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
    read_latest_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)
from anovox_training.model.config import ModelConfig
from anovox_training.model.detector import AnomalyDetector, build_model
from anovox_training.model.warm_start import warm_start
from anovox_training.train.augment import intensity_channel, jitter_intensity, mirror_mask, mirror_y
from anovox_training.train.config import EvalConfig, TrainingConfig, load_config, training_config
from anovox_training.train.distributed import DistContext, distributed, init_distributed
from anovox_training.train.losses import LOSS_TERMS, DetectorLoss
from anovox_training.train.run_log import LossWindow, RunLog

__all__ = [
    'THRESHOLD_GRID',
    'CachedDataset',
    'DistContext',
    'Trainer',
    'TrainingError',
    'TrainingInterrupted',
    'calibrate_threshold',
    'distributed',
    'epoch_batches',
    'get_args_parser',
    'init_distributed',
    'main',
    'score_validation',
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
def score_validation(
    model: AnomalyDetector, frames_paths: Sequence[Path], spec: InputSpec, evaluation: EvalConfig
) -> dict[str, Any]:
    """AnoVox metrics on validation frames and the calibrated occupancy threshold.

    Metrics are pooled for every threshold of :data:`THRESHOLD_GRID` (and the
    configured one) in one pass; the reported ones are those at the calibrated
    threshold (at the configured one when ``eval.calibrate_occupancy`` is false).

    Returns:
        ``{'result': the variant report at that threshold, 'occupancy_threshold': it}``.
    """
    was_training = model.training
    model.eval()
    configured = evaluation.occupancy_threshold
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
    calibrated = calibrate_threshold(np.concatenate(occupancy_at_gt), evaluation.min_coverage)
    threshold = calibrated if evaluation.calibrate_occupancy else configured
    return {'result': accs[threshold].result(), 'occupancy_threshold': threshold}


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


def _prepare_data(config: TrainingConfig, spec: InputSpec, dist: DistContext) -> _DataPaths:
    """Cache the frames (rank 0); every rank gets the files of the usable ones.

    Raises:
        ConfigError: When a source has no frames.
        DataError: On an unreadable frame with ``data.on_bad_frame: stop``, or when no
            training frame is readable.
    """
    data = config.data
    cache = SampleCache(data.cache_dir, spec)
    train_refs = frame_refs(resolve_scenarios(data.train))
    val_refs = frame_refs(resolve_scenarios(data.val)) if data.val else []
    if not train_refs:
        msg = f'no training frames with LiDAR points and voxels in {list(data.train)}'
        raise ConfigError(msg)
    val_refs = evenly_spread(val_refs, config.eval.val_max_frames)
    # The score rule is chosen once, after training, so it can afford more frames than each epoch's check.
    tune_refs = val_refs
    if data.tune:
        tune_refs = evenly_spread(frame_refs(resolve_scenarios(data.tune)), config.eval.tune_max_frames)
        if not tune_refs:
            msg = f'no frames with LiDAR points and voxels in data.tune {list(data.tune)} (set [] to tune on data.val)'
            raise ConfigError(msg)
    paths = None
    if dist.is_main:
        paths = []
        for what, refs in (('training', train_refs), ('validation', val_refs), ('score-rule', tune_refs)):
            build = cache.build(refs, workers=data.cache_workers, on_bad_frame=data.on_bad_frame)
            if build.bad:
                print(f'train: warning: {build.summary(f"{what} frames")}', file=sys.stderr)
            if what == 'training' and not build.paths:
                msg = f'no readable training frame in {list(data.train)}: {build.summary("training frames")}'
                raise DataError(msg)
            paths.append(build.paths)
    return _DataPaths(*dist.share(paths))


def _resume_mismatch(trained: Mapping[str, Any], requested: Mapping[str, Any]) -> list[str]:
    """Model keys that differ between a checkpoint's and this run's model config, but for the weights file."""
    a, b = (ModelConfig.from_dict(m).to_dict() for m in (trained, requested))
    return sorted(k for k in a if k not in _RESUMABLE_MODEL_KEYS and a[k] != b[k])


class Trainer:
    """One training run: :meth:`fit` runs the epochs (:meth:`train_epoch`, :meth:`validate`,
    :meth:`checkpoint`) and then chooses the score rule (:meth:`calibrate_score_rule`).

    Building it seeds the RNGs, caches the frames (rank 0) and builds the model, optimiser
    and schedule, in that order: the same seed gives the same weights.

    Args:
        config: The typed training config (:func:`~anovox_training.train.config.training_config`).
        dist: The process group (default: one process on the CPU).

    Raises:
        ConfigError: On missing data, or too few frames for one batch on every rank.
        DataError: On unreadable frames with ``data.on_bad_frame: stop``.
    """

    def __init__(self, config: TrainingConfig, dist: DistContext | None = None) -> None:
        self.config = config
        self.dist = dist or DistContext()
        # What every checkpoint stores: the resolved dict, so resumes and recipe ids read what they always read.
        self._config_dict = config.to_dict()
        out_dir = Path(config.out_dir)
        self.last_path, self.best_path = out_dir / 'last.pt', out_dir / 'best.pt'
        tcfg = config.train
        torch.set_num_threads(tcfg.threads)
        torch.manual_seed(config.seed)
        np.random.seed(config.seed)
        random.seed(config.seed)
        self.spec = config.model.input_spec()
        # A model that ignores intensity sees a zero channel: nothing to augment.
        self._intensity_channel = intensity_channel(self.spec.grid) if self.spec.lidar_intensity == 'use' else None
        self.paths = _prepare_data(config, self.spec, self.dist)
        self.dataset = CachedDataset(self.paths.train, self.spec)
        batches_per_epoch = len(self._epoch_batches(0))
        if batches_per_epoch == 0:
            msg = (
                f'{len(self.dataset)} training frames cannot fill one batch of {tcfg.batch_size} '
                f'on {self.dist.world} ranks'
            )
            raise ConfigError(msg)
        self.total_steps = tcfg.epochs * batches_per_epoch
        # Validation during training scores with the configured rule; the chosen one comes after the last epoch.
        self.score_rule = config.eval.score_rule
        device = self.dist.device
        self.model = build_model(config.model, self.score_rule).to(device)
        self.criterion = DetectorLoss(config.model.classes, config.loss).to(device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, _lr_lambda(tcfg.warmup_steps, self.total_steps)
        )
        # Where training stands; a checkpoint restores all of it.
        self.step, self.epoch, self.batch_index, self.best_ap = 0, 0, 0, -1.0
        self.occupancy_threshold = config.eval.occupancy_threshold
        self.threshold_chosen_on = ChosenOn()  # configured until a validation calibrates it
        self.window = LossWindow(LOSS_TERMS)
        self.data_hash = ''
        self.net: nn.Module = _LogitsView(self.model)
        self._stop = _StopFlag()
        self._log: RunLog | None = None
        self._progress: Any = None
        self._fitted = False

    def fit(self, resume: bool = False) -> Path:
        """Train to ``train.epochs`` (or to ``train.stop_at_step``); return the path of ``last.pt``.

        Args:
            resume: Continue from ``out_dir/last.pt`` (or ``last.prev.pt``) when there is one.

        Raises:
            TrainingInterrupted: SIGTERM / SIGINT stopped the run at a step boundary, after ``last.pt``.
            TrainingError: On a non-finite loss or a resume with an incompatible model.
            DataError: On a checkpoint that cannot be resumed.
        """
        if self._fitted:
            msg = 'Trainer.fit runs once; build a new Trainer for another run'
            raise TrainingError(msg)
        self._fitted = True
        self._start(resume)
        self.model.train()
        try:
            with self._stop:
                finished = self._run_epochs()
        finally:  # the one way out: the run finished, reached train.stop_at_step, was signalled or failed
            self._close_reporting()
        if finished:
            self.calibrate_score_rule()
        return self.last_path

    def _run_epochs(self) -> bool:
        """Epochs until the last; False when training stopped early (at ``train.stop_at_step``)."""
        while self.epoch < self.config.train.epochs:
            if not self.train_epoch():
                return False
            due = self.epoch % self.config.eval.val_every_epochs == 0 or self.epoch == self.config.train.epochs
            if self.paths.val and due:
                self.validate()
            self.checkpoint()
        return True

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        tcfg, dist = self.config.train, self.dist
        return epoch_batches(len(self.dataset), tcfg.batch_size, self.config.seed, epoch, dist.rank, dist.world)

    def _start(self, resume: bool) -> None:
        """Restore ``last.pt`` (``resume``) or warm-start; wrap the model for DDP; open the logs."""
        dist = self.dist
        if dist.is_main:
            for path in (self.last_path, self.best_path):
                remove_stale_temporaries(path)  # left by a process killed mid-write
        latest = read_latest_checkpoint(self.last_path, map_location=dist.device) if resume else None
        if latest is not None:
            self._restore(*latest)
        else:
            if resume and dist.is_main:
                print(f'train: no {self.last_path} to resume from; starting from scratch', file=sys.stderr)
            init_from = self.config.train.init_from
            if init_from is not None:
                # Every rank loads the same file, so the replicas start identical.
                report = warm_start(self.model, init_from)
                if dist.is_main:
                    print(f'train: {report.summary()}', file=sys.stderr)
        self.data_hash = data_hash(self.paths.train)
        if dist.world > 1:
            device_ids = [dist.device.index] if dist.device.type == 'cuda' else None
            self.net = nn.parallel.DistributedDataParallel(self.net, device_ids=device_ids)
        if dist.is_main:
            self._log = RunLog(self.last_path.parent, self.step, self.epoch)
            self.last_path.parent.mkdir(parents=True, exist_ok=True)
            if self.config.train.progress:
                from tqdm import tqdm

                self._progress = tqdm(
                    total=self.total_steps, initial=self.step, unit='step', dynamic_ncols=True, desc='train'
                )
        self.window.started = time.perf_counter()

    def _restore(self, ckpt: dict[str, Any], ckpt_path: Path) -> None:
        calibrated = checkpoint_calibration(ckpt, ckpt_path)  # first: a checkpoint without one names its upgrade
        differ = _resume_mismatch(ckpt['config']['model'], self._config_dict['model'])
        if differ:
            msg = (
                f'--resume: {ckpt_path} was trained with another model config (model.{", model.".join(differ)} '
                'differ); use a new out_dir, or the model config it was trained with'
            )
            raise TrainingError(msg)
        self.model.load_state_dict(ckpt['model'])
        self.optimizer.load_state_dict(ckpt['optimizer'])
        self.scheduler.load_state_dict(ckpt['scheduler'])
        self.step, self.epoch, self.batch_index = ckpt['step'], ckpt['epoch'], ckpt['batch_index']
        self.best_ap = ckpt.get('best_val_ap', -1.0)
        self.occupancy_threshold = calibrated.occupancy_threshold
        self.threshold_chosen_on = calibrated.threshold_chosen_on
        if 'log_window' in ckpt:
            self.window.restore(ckpt['log_window'])
        _set_rng_state(ckpt['rng_state'])

    def train_epoch(self) -> bool:
        """Train the rest of the current epoch (from ``batch_index``).

        Returns:
            True when the epoch is complete (the position moves to the next epoch's start);
            False when training stopped at ``train.stop_at_step``, after writing ``last.pt``.

        Raises:
            TrainingInterrupted: A signal arrived; ``last.pt`` holds the step it stopped at.
            TrainingError: On a non-finite loss.
        """
        tcfg = self.config.train
        batches = self._epoch_batches(self.epoch)
        loader = DataLoader(
            self.dataset,
            batch_sampler=batches[self.batch_index :],
            num_workers=tcfg.loader_workers,
            collate_fn=_collate,
            # Its own generator: creating a loader must not draw from the global RNG, which a
            # resume restores as of the checkpoint, not as of the epoch start.
            generator=torch.Generator().manual_seed(self.config.seed * 1_000_039 + self.epoch),
        )
        for batch in loader:
            self._train_step(batch)
            if self.dist.is_main and (self.step % tcfg.log_every_steps == 0 or self.batch_index == len(batches)):
                self._log_window()
            stopping = (tcfg.stop_at_step is not None and self.step >= tcfg.stop_at_step) or self._stop.stop
            if stopping or self.step % tcfg.checkpoint_every_steps == 0:
                self.checkpoint()
            if stopping:
                if self._stop.stop:
                    msg = (
                        f'interrupted by a signal at step {self.step}; {self.last_path} holds it, '
                        'continue with --resume'
                    )
                    raise TrainingInterrupted(msg)
                return False
        self.epoch += 1
        self.batch_index = 0
        return True

    def _train_step(self, batch: dict[str, Tensor]) -> None:
        """Augment one batch, take one optimiser step, and add its losses to the log window."""
        tcfg, seed, rank, step = self.config.train, self.config.seed, self.dist.rank, self.step
        batch = {k: v.to(self.dist.device) for k, v in batch.items()}
        if tcfg.mirror > 0:
            batch = mirror_y(batch, mirror_mask(batch['labels'].shape[0], tcfg.mirror, seed, step, rank))
        if self._intensity_channel is not None:
            batch['bev'] = jitter_intensity(
                batch['bev'], self._intensity_channel, tcfg.intensity_aug, tcfg.intensity_drop, seed, step, rank
            )
        batch['camera_valid'] = _camera_dropout(batch['camera_valid'], tcfg.camera_dropout, seed, step, rank)
        loss, terms = self.criterion(self.net(*(batch[name] for name in INPUT_NAMES)), batch['labels'])
        if not torch.isfinite(loss):
            values = ', '.join(f'{k}={float(v):.4g}' for k, v in terms.items())
            msg = (
                f'non-finite loss at step {step} (epoch {self.epoch}, batch {self.batch_index}): {values}. '
                f'Lower train.lr or check the data; the last good checkpoint is {self.last_path}'
            )
            raise TrainingError(msg)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if tcfg.grad_clip_norm > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), tcfg.grad_clip_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        self.batch_index += 1
        self.window.add(float(loss.detach()), terms)
        if self._progress is not None:
            self._progress.update(1)

    def _log_window(self) -> None:
        """One ``train_log`` row: the mean losses since the last one (rank 0)."""
        rate = self.window.samples_per_s(self.config.train.batch_size * self.dist.world)
        row = {'step': self.step, 'epoch': self.epoch, 'lr': self.scheduler.get_last_lr()[0]}
        row.update(self.window.means())
        row['samples_per_s'] = rate
        self._log.write('train', row)
        if self._progress is not None:
            self._progress.set_postfix(loss=f'{row["loss"]:.4f}', anomaly=f'{row["anomaly"]:.4f}', sps=f'{rate:.2f}')
        self.window.restart()

    def validate(self) -> None:
        """Score the model on the validation frames (rank 0): calibrate the threshold, log, keep ``best.pt``."""
        if self.dist.is_main:
            evaluation = self.config.eval
            val = score_validation(self.model, self.paths.val, self.spec, evaluation)
            self.occupancy_threshold = val['occupancy_threshold']
            if evaluation.calibrate_occupancy:
                self.threshold_chosen_on = ChosenOn.of_sources(self.config.data.val, data_hash(self.paths.val))
            subset = val['result']['Anomalies_Only']
            ap = subset['AP'] if subset['voxels'] else None
            row = {'step': self.step, 'epoch': self.epoch, 'occupancy_threshold': self.occupancy_threshold}
            for name in ('Anomalies_Only', 'Normality_Included'):
                for key in ('AUROC', 'AP', 'FPR95', 'coverage'):
                    row[f'{name}_{key}'] = val['result'][name][key]
            self._log.write('val', row)
            print(
                f'\nval epoch {self.epoch}: Anomalies_Only AP={subset["AP"]} AUROC={subset["AUROC"]} '
                f'FPR95={subset["FPR95"]} coverage={subset["coverage"]} '
                f'occupancy_threshold={self.occupancy_threshold}',
                file=sys.stderr,
            )
            if ap is not None and ap > self.best_ap:
                self.best_ap = ap
                self.checkpoint(best=True)
        self.dist.barrier()

    def checkpoint(self, best: bool = False) -> None:
        """Write ``last.pt`` (the one before kept as ``last.prev.pt``; every rank waits for it), or ``best.pt``.

        ``best=True`` is rank 0's, during :meth:`validate`.
        """
        if best:
            save_checkpoint(self.best_path, self._state())
            return
        if self.dist.is_main:
            save_checkpoint(self.last_path, self._state(), keep_previous=True)
        self.dist.barrier()

    def _state(self) -> dict[str, Any]:
        """The checkpoint: everything a resume needs to continue bit for bit, and the calibration so far."""
        return {
            'model': self.model.state_dict(),
            'optimizer': self.optimizer.state_dict(),
            'scheduler': self.scheduler.state_dict(),
            'epoch': self.epoch,
            'batch_index': self.batch_index,
            'step': self.step,
            'config': self._config_dict,
            'input_spec': self.spec.to_dict(),
            'data_hash': self.data_hash,
            'rng_state': _rng_state(),
            'best_val_ap': self.best_ap,
            'calibration': Calibration(self.occupancy_threshold, self.score_rule, self.threshold_chosen_on).to_dict(),
            'log_window': self.window.to_dict(),
        }

    def calibrate_score_rule(self) -> None:
        """After the last epoch: choose the score rule on the score-rule frames and write it into both checkpoints."""
        evaluation, data = self.config.eval, self.config.data
        if self.dist.is_main and self.paths.tune:
            tune_checkpoints(
                [self.best_path, self.last_path],
                self.paths.tune,
                self.spec,
                list(evaluation.semantic_weights),
                list(evaluation.anomaly_temperatures),
                list(evaluation.score_smoothings),
                list(evaluation.lidar_supports),
                sources=list(data.tune or data.val),
            )
        self.dist.barrier()

    def _close_reporting(self) -> None:
        if self._progress is not None:
            self._progress.close()
        if self._log is not None:
            self._log.close()


def train(config: TrainingConfig | Mapping[str, Any], resume: bool = False, dist: DistContext | None = None) -> Path:
    """Train as ``config`` says (typed, or the resolved dict it is built from); return the path of ``last.pt``.

    Raises:
        TrainingError: On a non-finite loss or a resume with an incompatible model.
        ConfigError: On missing data.
    """
    typed = config if isinstance(config, TrainingConfig) else training_config(config)
    return Trainer(typed, dist).fit(resume)


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
        config = training_config(load_config(args.config, args.set))
        with distributed() as dist:
            path = Trainer(config, dist).fit(resume=args.resume)
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
