"""A torch `Dataset` of (scenario, frame) pairs over AnoVox scenarios.

Sources are dataset roots, scenario folders, or split list files: text files
with one scenario folder per line, relative to the file (``#`` starts a comment,
blank lines are skipped). Order is deterministic: sources in the order given,
scenarios of a root sorted by path, frames ascending.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from anovox_perception.errors import ConfigError, DataError
from anovox_training.data.frame import SENSORS, AnoVoxFrame
from anovox_training.data.reader import ScenarioReader, find_scenarios

__all__ = ['AnoVoxDataset', 'read_split_file', 'resolve_scenarios']

PathLike = str | os.PathLike[str]


def read_split_file(path: PathLike) -> list[Path]:
    """Scenario folders listed in a split file, resolved relative to the file's folder.

    Raises:
        DataError: The file cannot be read, is empty, or names a folder that does not exist.
    """
    split = Path(path)
    try:
        text = split.read_text(encoding='utf-8')
    except (OSError, UnicodeDecodeError) as err:
        msg = f'split file {split}: cannot read it ({err}); expected one scenario folder per line'
        raise DataError(msg) from err
    scenarios = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split('#', 1)[0].strip()
        if not line:
            continue
        folder = (split.parent / line).resolve() if not Path(line).is_absolute() else Path(line)
        if not folder.is_dir():
            msg = f'split file {split} line {number}: scenario folder {line!r} not found (resolved to {folder})'
            raise DataError(msg)
        scenarios.append(folder)
    if not scenarios:
        msg = f'split file {split} lists no scenario folder'
        raise DataError(msg)
    return scenarios


def resolve_scenarios(sources: PathLike | Iterable[PathLike]) -> list[Path]:
    """Scenario folders of roots, scenario folders and split files, in order, without duplicates.

    Raises:
        DataError: A source does not exist, holds no scenario, or two sources give the same scenario.
    """
    items = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    if not items:
        msg = 'AnoVoxDataset needs at least one dataset root, scenario folder or split file'
        raise ConfigError(msg)
    found: list[Path] = []
    seen: dict[Path, Path] = {}
    for item in items:
        source = Path(item)
        if source.is_file():
            scenarios = read_split_file(source)
        elif source.is_dir():
            scenarios = find_scenarios(source)
        else:
            msg = f'dataset source {source} does not exist; expected a dataset root, Scenario_* folder or split file'
            raise DataError(msg)
        for scenario in scenarios:
            key = scenario.resolve()
            if key in seen:
                msg = f'scenario {scenario} is given twice (by {seen[key]} and {source}); each frame must appear once'
                raise DataError(msg)
            seen[key] = source
            found.append(scenario)
    return found


class AnoVoxDataset(Dataset):
    """Frames of AnoVox scenarios as a map-style torch dataset.

    Args:
        sources: Dataset root(s), scenario folder(s) and/or split file(s).
        sensors: Sensors to load per frame (subset of `SENSORS`; None: all that each scenario has).
        transform: Applied to each `AnoVoxFrame` (e.g. building model inputs); its result is returned.
        skip_incomplete: Leave out frames missing a requested sensor instead of raising.
        points_y_negated: Passed to every `ScenarioReader` (None: decided per scenario).

    Raises:
        ConfigError: Unknown sensor names or no source.
        DataError: A source is missing or malformed, or (unless ``skip_incomplete``) a frame
            lacks a requested sensor; the message lists the frames.
    """

    def __init__(
        self,
        sources: PathLike | Iterable[PathLike],
        sensors: Sequence[str] | None = None,
        transform: Callable[[AnoVoxFrame], Any] | None = None,
        skip_incomplete: bool = False,
        points_y_negated: bool | None = None,
    ) -> None:
        if sensors is not None:
            unknown = [s for s in sensors if s not in SENSORS]
            if unknown:
                msg = f'unknown sensors {unknown}; expected a subset of {list(SENSORS)}'
                raise ConfigError(msg)
        self.sensors = None if sensors is None else tuple(sensors)
        self.transform = transform
        self.readers = [ScenarioReader(p, points_y_negated=points_y_negated) for p in resolve_scenarios(sources)]
        self.skipped: list[tuple[str, int, list[str]]] = []
        self.index: list[tuple[int, int]] = []
        problems = []
        for r, reader in enumerate(self.readers):
            # 'anomaly' may be absent in normality scenarios; every other requested sensor must be there.
            wanted = [s for s in (self.sensors or reader.sensors) if s != 'anomaly' or s in reader.sources]
            for frame_id in reader.frame_ids:
                missing = [s for s in wanted if s not in reader.sources or frame_id not in reader.sources[s].files]
                if missing:
                    self.skipped.append((reader.name, frame_id, missing))
                    problems.append(f'{reader.name} frame {frame_id}: missing {", ".join(missing)}')
                    continue
                self.index.append((r, frame_id))
        if problems and not skip_incomplete:
            shown = '; '.join(problems[:10]) + (f'; ... ({len(problems)} frames)' if len(problems) > 10 else '')
            msg = f'frames lack requested sensors: {shown}. Fix the data or pass skip_incomplete=True'
            raise DataError(msg)

    def __len__(self) -> int:
        return len(self.index)

    def frame_key(self, index: int) -> tuple[str, int]:
        """(scenario name, frame id) of item ``index``."""
        r, frame_id = self.index[index]
        return self.readers[r].name, frame_id

    @property
    def keys(self) -> list[tuple[str, int]]:
        """(scenario name, frame id) of every item, in order."""
        return [(self.readers[r].name, f) for r, f in self.index]

    def __getitem__(self, index: int) -> Any:
        if not -len(self) <= index < len(self):
            msg = f'index {index} out of range for {len(self)} frames'
            raise IndexError(msg)
        r, frame_id = self.index[index]
        frame = self.readers[r].read(frame_id, self.sensors)
        return frame if self.transform is None else self.transform(frame)
