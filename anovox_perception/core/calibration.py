"""The model's calibration: the decision rule chosen after training, and the data it was chosen on.

None of it is a trained weight. Training picks the occupancy threshold on validation
(``anovox_training.train.trainer``), the score rule on the score-rule frames
(``anovox_training.calibrate.score_tuning``) and then, on the same validation frames, the
operating point of the anomaly markers (``anovox_training.calibrate.operating_point``);
checkpoints carry the result as ``calibration``, the exporter builds the graph's anomaly
score with its score rule and copies it into the model card, and the runtime selects voxels
with its occupancy threshold and turns them into markers at its operating point.

JSON shape (all keys required but one, no others)::

    {"occupancy_threshold": 0.2,
     "score_rule": {"semantic_weight": 0.0, "anomaly_temperature": 1.0, "score_smoothing": 7,
                    "lidar_support": 3},
     "operating_point": {"anomaly_threshold": 0.6, "min_component_points": 3},
     "threshold_chosen_on": {"folders": ["val"], "data_hash": "<16 hex>"},
     "score_rule_chosen_on": {"folders": ["val", "val_large"], "data_hash": "<16 hex>"},
     "operating_point_chosen_on": {"folders": ["val", "val_large"], "data_hash": "<16 hex>"}}

``score_rule.lidar_support`` may be absent (files written before it existed): 0, no gate.

``folders`` are the names of the dataset folders the value was chosen on and ``data_hash``
the hash of their cached frames (``anovox_training.data.cache.data_hash``); a value that was
configured, not chosen on data, has no folders and the hash ``none``. Files upgraded from
the time before this section existed record the folders their training config names and
the hash :data:`UNRECORDED` (that version kept no hash of them).

:func:`read_calibration` is the one reader of the section, for model cards and checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from anovox_perception.core.errors import AnovoxError

__all__ = [
    'NO_DATA',
    'UNRECORDED',
    'UPGRADE_COMMAND',
    'Calibration',
    'CalibrationError',
    'ChosenOn',
    'OperatingPoint',
    'ScoreRule',
    'is_smoothing_window',
    'is_support_window',
    'read_calibration',
]

NO_DATA = 'none'
UNRECORDED = 'unrecorded'
# Writes the section into files made before it existed (see anovox_training/export/upgrade_calibration.py).
UPGRADE_COMMAND = 'python -m anovox_training.export.upgrade_calibration'


class CalibrationError(AnovoxError, ValueError):
    """A calibration section is missing or invalid."""


def is_smoothing_window(value: Any) -> bool:
    """Whether ``value`` is a valid ``score_smoothing`` window side: an odd integer >= 1."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1 and value % 2 == 1


def is_support_window(value: Any) -> bool:
    """Whether ``value`` is a valid ``lidar_support`` window side: 0 (no gate) or an odd integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int):
        return False
    return value == 0 or is_smoothing_window(value)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _exact_keys(data: Any, keys: tuple[str, ...], where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        msg = f'{where}: expected a JSON object, got {type(data).__name__}'
        raise CalibrationError(msg)
    missing = [k for k in keys if k not in data]
    unknown = sorted(set(data) - set(keys))
    if missing or unknown:
        msg = f'{where}: missing keys {missing}, unknown keys {unknown}; expected {list(keys)}'
        raise CalibrationError(msg)
    return data


@dataclass(frozen=True)
class ScoreRule:
    """How the exported graph turns head outputs into the anomaly score (``anovox_training/model/head.py``).

    Attributes:
        semantic_weight: Exponent of the max-softmax cue (>= 0; 0: the anomaly logit alone).
        anomaly_temperature: The anomaly logit is divided by it before the sigmoid (> 0).
        score_smoothing: Side (cells, odd) of the window at each height over which the score
            is averaged, weighted by sqrt(occupancy probability) (1: none).
        lidar_support: Side (cells, odd) of the cube around a voxel in which a LiDAR return
            must lie for the voxel to keep its score; elsewhere the score is 0 (0: no gate).
    """

    semantic_weight: float = 1.0
    anomaly_temperature: float = 1.0
    score_smoothing: int = 1
    lidar_support: int = 0

    def __post_init__(self) -> None:
        if not _number(self.semantic_weight) or self.semantic_weight < 0:
            msg = f'score_rule.semantic_weight must be a number >= 0, got {self.semantic_weight!r}'
            raise CalibrationError(msg)
        if not _number(self.anomaly_temperature) or self.anomaly_temperature <= 0:
            msg = f'score_rule.anomaly_temperature must be a number > 0, got {self.anomaly_temperature!r}'
            raise CalibrationError(msg)
        if not is_smoothing_window(self.score_smoothing):
            msg = f'score_rule.score_smoothing must be an odd integer >= 1 (1: none), got {self.score_smoothing!r}'
            raise CalibrationError(msg)
        if not is_support_window(self.lidar_support):
            msg = f'score_rule.lidar_support must be 0 (no gate) or an odd integer >= 1, got {self.lidar_support!r}'
            raise CalibrationError(msg)
        object.__setattr__(self, 'semantic_weight', float(self.semantic_weight))
        object.__setattr__(self, 'anomaly_temperature', float(self.anomaly_temperature))

    def to_dict(self) -> dict[str, Any]:
        return {
            'semantic_weight': self.semantic_weight,
            'anomaly_temperature': self.anomaly_temperature,
            'score_smoothing': self.score_smoothing,
            'lidar_support': self.lidar_support,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = 'score_rule') -> ScoreRule:
        keys = ('semantic_weight', 'anomaly_temperature', 'score_smoothing')
        # Files written before the LiDAR-support gate existed have no such key: no gate.
        if isinstance(data, Mapping) and 'lidar_support' in data:
            keys += ('lidar_support',)
        data = _exact_keys(data, keys, where)
        try:
            return cls(
                data['semantic_weight'],
                data['anomaly_temperature'],
                data['score_smoothing'],
                data.get('lidar_support', 0),
            )
        except CalibrationError as err:
            raise CalibrationError(f'{where}: {err}') from None


@dataclass(frozen=True)
class OperatingPoint:
    """Which occupied voxels become anomaly markers (``anovox_perception.core.postprocess.find_components``).

    The defaults are the values the node used before calibrations carried an operating point
    (its fixed ``anomaly_threshold`` parameter, no LiDAR-support rule): the configured one.

    Attributes:
        anomaly_threshold: Anomaly score at or above which an occupied voxel joins a component, in [0, 1].
        min_component_points: LiDAR points a component needs in its supported columns to get a
            marker (0: no support needed; see ``postprocess.component_points``).
    """

    anomaly_threshold: float = 0.5
    min_component_points: int = 0

    def __post_init__(self) -> None:
        if not _number(self.anomaly_threshold) or not 0.0 <= self.anomaly_threshold <= 1.0:
            msg = f'operating_point.anomaly_threshold must be a number in [0, 1], got {self.anomaly_threshold!r}'
            raise CalibrationError(msg)
        points = self.min_component_points
        if not isinstance(points, int) or isinstance(points, bool) or points < 0:
            msg = f'operating_point.min_component_points must be an integer >= 0, got {points!r}'
            raise CalibrationError(msg)
        object.__setattr__(self, 'anomaly_threshold', float(self.anomaly_threshold))

    def to_dict(self) -> dict[str, Any]:
        return {'anomaly_threshold': self.anomaly_threshold, 'min_component_points': self.min_component_points}

    @classmethod
    def from_dict(cls, data: Any, where: str = 'operating_point') -> OperatingPoint:
        data = _exact_keys(data, ('anomaly_threshold', 'min_component_points'), where)
        try:
            return cls(data['anomaly_threshold'], data['min_component_points'])
        except CalibrationError as err:
            raise CalibrationError(f'{where}: {err}') from None


@dataclass(frozen=True)
class ChosenOn:
    """The data a calibration value was chosen on.

    Attributes:
        folders: Names of the dataset folders; empty when the value was configured.
        data_hash: Hash of their cached frames; :data:`NO_DATA` without folders, :data:`UNRECORDED`
            for values upgraded from files that kept no hash.
    """

    folders: tuple[str, ...] = ()
    data_hash: str = NO_DATA

    def __post_init__(self) -> None:
        if isinstance(self.folders, str) or not all(isinstance(f, str) and f for f in self.folders):
            msg = f'folders must be a list of non-empty folder names, got {self.folders!r}'
            raise CalibrationError(msg)
        object.__setattr__(self, 'folders', tuple(self.folders))
        if not isinstance(self.data_hash, str) or not self.data_hash:
            msg = f'data_hash must be a non-empty string, got {self.data_hash!r}'
            raise CalibrationError(msg)
        if (not self.folders) != (self.data_hash == NO_DATA):
            msg = (
                f'folders {list(self.folders)} and data_hash {self.data_hash!r} disagree: a value chosen on no '
                f'data has no folders and the hash {NO_DATA!r}, one chosen on data names its folders'
            )
            raise CalibrationError(msg)

    @classmethod
    def of_sources(cls, sources: Sequence[str | PurePath], data_hash: str) -> ChosenOn:
        """The record of data chosen on from its configured sources (paths): their folder names."""
        return cls(tuple(PurePath(source).name for source in sources), data_hash)

    @property
    def configured(self) -> bool:
        """True when the value was configured, not chosen on data."""
        return not self.folders

    def to_dict(self) -> dict[str, Any]:
        return {'folders': list(self.folders), 'data_hash': self.data_hash}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> ChosenOn:
        data = _exact_keys(data, ('folders', 'data_hash'), where)
        if not isinstance(data['folders'], list | tuple):
            msg = f'{where}: folders must be a list of folder names, got {data["folders"]!r}'
            raise CalibrationError(msg)
        try:
            return cls(tuple(data['folders']), data['data_hash'])
        except CalibrationError as err:
            raise CalibrationError(f'{where}: {err}') from None


_KEYS = (
    'occupancy_threshold',
    'score_rule',
    'operating_point',
    'threshold_chosen_on',
    'score_rule_chosen_on',
    'operating_point_chosen_on',
)
# Added after the first calibrated files were written: a section without them needs the upgrade.
_OPERATING_POINT_KEYS = ('operating_point', 'operating_point_chosen_on')


@dataclass(frozen=True)
class Calibration:
    """The decision rule of a trained model (see the module docstring).

    Attributes:
        occupancy_threshold: Occupancy probability at or above which a cell counts as occupied, in [0, 1].
        score_rule: How the graph computes the anomaly score.
        threshold_chosen_on: The data the occupancy threshold was chosen on.
        score_rule_chosen_on: The data the score rule was chosen on.
        operating_point: Which occupied voxels become markers.
        operating_point_chosen_on: The data the operating point was chosen on.
    """

    occupancy_threshold: float
    score_rule: ScoreRule = field(default_factory=ScoreRule)
    threshold_chosen_on: ChosenOn = field(default_factory=ChosenOn)
    score_rule_chosen_on: ChosenOn = field(default_factory=ChosenOn)
    operating_point: OperatingPoint = field(default_factory=OperatingPoint)
    operating_point_chosen_on: ChosenOn = field(default_factory=ChosenOn)

    def __post_init__(self) -> None:
        value = self.occupancy_threshold
        if not _number(value) or not 0.0 <= value <= 1.0:
            msg = f'occupancy_threshold must be a number in [0, 1], got {value!r}'
            raise CalibrationError(msg)
        object.__setattr__(self, 'occupancy_threshold', float(value))

    def to_dict(self) -> dict[str, Any]:
        return {
            'occupancy_threshold': self.occupancy_threshold,
            'score_rule': self.score_rule.to_dict(),
            'operating_point': self.operating_point.to_dict(),
            'threshold_chosen_on': self.threshold_chosen_on.to_dict(),
            'score_rule_chosen_on': self.score_rule_chosen_on.to_dict(),
            'operating_point_chosen_on': self.operating_point_chosen_on.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = 'calibration') -> Calibration:
        """Validate and build from the JSON object.

        Raises:
            CalibrationError: A key is missing, unknown or invalid; the message names ``where`` and the key.
        """
        data = _exact_keys(data, _KEYS, where)
        try:
            return cls(
                occupancy_threshold=data['occupancy_threshold'],
                score_rule=ScoreRule.from_dict(data['score_rule'], f'{where}.score_rule'),
                threshold_chosen_on=ChosenOn.from_dict(data['threshold_chosen_on'], f'{where}.threshold_chosen_on'),
                score_rule_chosen_on=ChosenOn.from_dict(data['score_rule_chosen_on'], f'{where}.score_rule_chosen_on'),
                operating_point=OperatingPoint.from_dict(data['operating_point'], f'{where}.operating_point'),
                operating_point_chosen_on=ChosenOn.from_dict(
                    data['operating_point_chosen_on'], f'{where}.operating_point_chosen_on'
                ),
            )
        except CalibrationError as err:
            if str(err).startswith(where):
                raise
            raise CalibrationError(f'{where}: {err}') from None


def read_calibration(record: Mapping[str, Any], source: str, upgrade_target: str) -> Calibration:
    """The calibration section of a model card or checkpoint dict: the one reader of it.

    Args:
        record: The decoded card JSON object or checkpoint dict.
        source: What it came from (a file), for the messages.
        upgrade_target: The file to name in the upgrade command when the section is missing.

    Raises:
        CalibrationError: No ``calibration`` section, or one without the operating point (the message
            says how to add it), or an invalid one.
    """
    if 'calibration' not in record:
        msg = (
            f'{source} has no calibration section (occupancy threshold, score rule and operating point); it was '
            f'written before models carried one: add it with {UPGRADE_COMMAND} {upgrade_target}'
        )
        raise CalibrationError(msg)
    section = record['calibration']
    if isinstance(section, Mapping) and not any(key in section for key in _OPERATING_POINT_KEYS):
        msg = (
            f'{source}: its calibration has no operating point (anomaly threshold, smallest LiDAR support of a '
            f'marker); it was written before calibrations carried one: add the values the node used then with '
            f'{UPGRADE_COMMAND} {upgrade_target}'
        )
        raise CalibrationError(msg)
    return Calibration.from_dict(section, f'{source}: calibration')
