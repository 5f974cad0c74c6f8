"""The allocator setting: applied on glibc, a plain refusal elsewhere."""

from __future__ import annotations

import platform

import numpy as np

from anovox_perception.core.allocator import retain_freed_memory


def test_freed_memory_is_retained_on_glibc_and_left_alone_elsewhere() -> None:
    done = retain_freed_memory()
    if platform.system() == 'Linux' and platform.libc_ver()[0] == 'glibc':
        assert done.startswith('glibc keeps freed memory (mmap threshold 32 MiB')
    else:
        assert done.startswith('allocator left as is')
    assert float(np.ones(1 << 20).sum()) == float(1 << 20)  # allocation still works after the change
