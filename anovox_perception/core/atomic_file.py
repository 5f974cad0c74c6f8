"""Atomic file writes: a crash mid-write leaves the previous file, never a truncated one.

Used for everything a later run trusts without re-deriving it: checkpoints, exported
models and cards, TensorRT engines and their headers, cached samples.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = ['atomic_writer', 'write_bytes_atomic']


@contextmanager
def atomic_writer(path: str | Path, *, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path`` for binary writing; rename it over ``path`` on success.

    The data is flushed and fsynced before the rename, and the temporary file is
    removed when the block raises.

    Args:
        path: Final file path; its folder is created when missing.
        mode: Permission bits of the final file (mkstemp creates 0600; shipped files
            such as models must be readable by others).

    Yields:
        A binary file object to write into.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_writer`)."""
    with atomic_writer(path, mode=mode) as handle:
        handle.write(data)
