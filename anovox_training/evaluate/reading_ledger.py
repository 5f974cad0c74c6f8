"""The record of every reading of the test split: one recipe, one reading.

A figure reached by reading the test split again and again is not a result, so
``make model`` reads it once per recipe and appends what it read to an
append-only JSON-lines file (``models/test_readings.jsonl`` for the shipped
model). A recipe is identified by what decides the trained weights: the training
configuration of every variant (run folders and cache paths left out) and the
data plan. Asking for a second reading of a recorded recipe is refused unless a
reason is given; the reason is recorded with the new reading.

    ledger = ReadingLedger(Path('models/test_readings.jsonl'))
    previous = ledger.readings_of(recipe_id)
    ledger.append(Reading.of(recipe_id, recipe, checkpoints, data, report, reason))
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from anovox_perception.core.atomic_file import write_bytes_atomic
from anovox_perception.core.errors import ConfigError

__all__ = ['ReadingLedger', 'Reading', 'file_sha256', 'headline', 'recipe_id', 'recipe_of_config']

# Keys of a training config that say where things are, not what is trained: the
# data itself enters a recipe through the data plan and the checkpoints' data hash.
_LOCATION_KEYS = {
    ('out_dir',),
    ('data', 'train'),
    ('data', 'val'),
    ('data', 'tune'),
    ('data', 'cache_dir'),
    ('data', 'cache_workers'),
    ('train', 'progress'),
}


def _without(config: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        path = (*prefix, key)
        if path in _LOCATION_KEYS:
            continue
        out[key] = _without(value, path) if isinstance(value, Mapping) else value
    return out


def recipe_of_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a training config that decides the weights (locations and display switches dropped)."""
    return _without(config)


def recipe_id(recipe: Mapping[str, Any]) -> str:
    """A short stable id of a recipe (sha256 of its canonical JSON, 16 hex digits)."""
    text = json.dumps(recipe, sort_keys=True, separators=(',', ':'), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open('rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def headline(report: Mapping[str, Any]) -> dict[str, dict[str, float | None]]:
    """Every variant's pooled Anomalies_Only figures, mean category AP and small-object AP (None: undefined)."""
    out: dict[str, dict[str, float | None]] = {}
    for variant, block in report.get('variants', {}).items():
        pooled = block.get('Anomalies_Only', {})
        figures = {k: pooled[k] for k in ('AUROC', 'AP', 'FPR95') if k in pooled}
        figures |= {k: block[k] for k in ('mean_category_ap', 'ap_small') if k in block}
        out[variant] = {k: None if v is None else float(v) for k, v in figures.items()}
    return out


@dataclass(frozen=True)
class Reading:
    """One reading of the test split.

    Attributes:
        recipe_id: :func:`recipe_id` of ``recipe``.
        recipe: What decided the weights (training configs per variant, data plan).
        checkpoints: sha256 of each evaluated checkpoint, by variant.
        data: The test data read (folder, scenarios, frames).
        figures: :func:`headline` of the report.
        time: When it was read (UTC, ISO 8601).
        reason: Why a recipe already read was read again ('' for a first reading).
    """

    recipe_id: str
    recipe: dict[str, Any]
    checkpoints: dict[str, str]
    data: dict[str, Any]
    figures: dict[str, dict[str, float]]
    time: str = ''
    reason: str = ''
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        recipe: dict[str, Any],
        checkpoints: Mapping[str, Path],
        data: dict[str, Any],
        report: Mapping[str, Any],
        reason: str = '',
    ) -> Reading:
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
        return cls(
            recipe_id=recipe_id(recipe),
            recipe=recipe,
            checkpoints={name: file_sha256(path) for name, path in checkpoints.items()},
            data=data,
            figures=headline(report),
            time=now,
            reason=reason,
        )


class ReadingLedger:
    """An append-only JSON-lines file of :class:`Reading` rows."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def readings(self) -> list[dict[str, Any]]:
        """Every recorded reading, oldest first.

        Raises:
            ConfigError: When a line is not a JSON object (the file was edited by hand).
        """
        if not self.path.is_file():
            return []
        rows = []
        for number, line in enumerate(self.path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                msg = f'{self.path}:{number}: not a JSON line ({err.msg}); restore the file from version control'
                raise ConfigError(msg) from err
            if not isinstance(row, dict) or 'recipe_id' not in row:
                msg = f'{self.path}:{number}: not a test reading (no recipe_id); restore the file from version control'
                raise ConfigError(msg)
            rows.append(row)
        return rows

    def readings_of(self, recipe: str) -> list[dict[str, Any]]:
        return [row for row in self.readings() if row['recipe_id'] == recipe]

    def append(self, reading: Reading) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        old = self.path.read_text() if self.path.is_file() else ''
        if old and not old.endswith('\n'):
            old += '\n'
        line = json.dumps(asdict(reading), sort_keys=True, default=str)
        write_bytes_atomic(self.path, (old + line + '\n').encode())
