"""The scenario folders a run reads: from dataset roots, scenario folders and split files.

Split files are text files with one scenario folder per line, relative to the
file (``#`` starts a comment, blank lines are skipped). Order is deterministic:
sources in the order given, scenarios of a root sorted by path. Training,
evaluation and the sample cache index the frames of these folders themselves
(``cache.frame_refs``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from anovox_perception.core.errors import ConfigError, DataError
from anovox_training.data.reader import find_scenarios

__all__ = ['read_split_file', 'resolve_scenarios']

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
        msg = 'resolve_scenarios: give at least one dataset root, scenario folder or split file'
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
