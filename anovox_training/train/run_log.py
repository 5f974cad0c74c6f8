"""What a training run writes as it goes: ``train_log.csv`` / ``val_log.csv`` (and TensorBoard when installed).

A resumed run writes again the rows after its checkpoint, so opening the log first
drops them (and any row a kill cut short): the log of a resumed run equals that of an
uninterrupted one.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ['LossWindow', 'RunLog']


class RunLog:
    """CSV (and TensorBoard when installed) logging on rank 0.

    Args:
        out_dir: The run folder.
        resume_step: Step of the checkpoint the run continues from (0: a fresh run).
        resume_epoch: Epochs that checkpoint has finished.
    """

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


class LossWindow:
    """Loss sums since the last ``train_log`` row; checkpointed, so a resumed run logs the same rows."""

    def __init__(self, terms: Iterable[str]) -> None:
        self.sums: dict[str, float] = {k: 0.0 for k in ('loss', *terms)}
        self.steps = 0
        self.started = time.perf_counter()

    def add(self, loss: float, terms: Mapping[str, Any]) -> None:
        self.sums['loss'] += loss
        for k, v in terms.items():
            self.sums[k] += float(v)
        self.steps += 1

    def means(self) -> dict[str, float]:
        return {k: v / self.steps for k, v in self.sums.items()}

    def samples_per_s(self, batch: int) -> float:
        return self.steps * batch / max(time.perf_counter() - self.started, 1e-9)

    def restart(self) -> None:
        self.sums = dict.fromkeys(self.sums, 0.0)
        self.steps, self.started = 0, time.perf_counter()

    def to_dict(self) -> dict[str, Any]:
        return {'sums': dict(self.sums), 'steps': self.steps}

    def restore(self, saved: Mapping[str, Any]) -> None:
        self.sums = {k: float(v) for k, v in saved['sums'].items()}
        self.steps = int(saved['steps'])


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
