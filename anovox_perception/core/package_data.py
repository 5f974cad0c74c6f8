"""Where the package's data files (the shipped model, config files) are found: one search path for every caller.

The source checkout comes first (an editable install runs the working tree, whose
model may be newer than an installed copy), then the ROS 2 package share
(colcon), then the data files of a pip install (``<prefix>/share/anovox_perception``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from anovox_perception.core.errors import ConfigError

__all__ = ['PACKAGE', 'data_dirs', 'find_data_file', 'model_search_dirs', 'resolve_model_path']

PACKAGE = 'anovox_perception'
_SOURCE_ROOT = Path(__file__).resolve().parents[2]


def data_dirs(folder: str) -> list[Path]:
    """The directories that may hold the package's ``folder`` (``models``, ``config``), in search order."""
    dirs = []
    if (_SOURCE_ROOT / 'package.xml').is_file():
        dirs.append(_SOURCE_ROOT / folder)
    try:
        from ament_index_python.packages import get_package_share_directory

        dirs.append(Path(get_package_share_directory(PACKAGE)) / folder)
    # No ament_index wheel, no AMENT_PREFIX_PATH (OSError), or the package is not in the index (LookupError).
    except (ImportError, OSError, LookupError):
        pass
    dirs.append(Path(sys.prefix) / 'share' / PACKAGE / folder)
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def find_data_file(folder: str, name: str) -> Path | None:
    """The first ``<dir>/name`` of :func:`data_dirs` that exists, or None."""
    return next((d / name for d in data_dirs(folder) if (d / name).is_file()), None)


def model_search_dirs() -> list[Path]:
    """Where an empty ``model_path`` looks for the shipped model, in order."""
    return data_dirs('models')


def resolve_model_path(model_path: str) -> Path:
    """The ONNX file ``model_path`` names, or the one shipped model when it is empty.

    Raises:
        ConfigError: The file does not exist, or no (or more than one) shipped model is found.
    """
    if model_path:
        path = Path(model_path).expanduser()
        if not path.is_file():
            msg = f'model_path {model_path!r}: no such file (resolved to {path.resolve()})'
            raise ConfigError(msg)
        return path
    searched = model_search_dirs()
    for directory in searched:
        found = sorted(directory.glob('*.onnx'))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            msg = f'model_path is empty and {directory} holds several models {[p.name for p in found]}; set model_path'
            raise ConfigError(msg)
    msg = (
        f'model_path is empty and no shipped model was found (searched {", ".join(str(d) for d in searched)}); '
        'train and export one with `make model`, or set model_path to an exported .onnx'
    )
    raise ConfigError(msg)
