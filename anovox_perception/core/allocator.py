"""Keep freed memory in the process: the per-frame arrays then reuse pages instead of faulting in new ones.

Every frame allocates and frees the same few megabytes of numpy arrays (decoded
cloud, BEV indices, model inputs and outputs). With glibc's defaults, blocks over
its mmap threshold are mapped and unmapped per allocation, and freed memory at
the top of the heap is returned to the kernel once it exceeds the trim threshold,
so the next frame takes a page fault for every 4 KiB it touches again: about
1,500 faults and 2 ms per 120,000-point cloud. Raising both thresholds (the
practice of real-time ROS 2 nodes) makes the memory stay mapped; resident memory
then stays at the pipeline's high-water mark, which is bounded because every
frame needs the same sizes.

Call :func:`retain_freed_memory` once at process start (the node's ``main``,
the benchmarks). Elsewhere than glibc it does nothing and says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

__all__ = ['MMAP_THRESHOLD_BYTES', 'TRIM_THRESHOLD_BYTES', 'retain_freed_memory']

# mallopt parameters (glibc malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Allocations below this come from the heap, whose freed blocks are reused (glibc caps it at 32 MiB on 64-bit).
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
# Free memory kept at the top of the heap before any is returned to the kernel.
TRIM_THRESHOLD_BYTES = 256 * 1024 * 1024


def retain_freed_memory() -> str:
    """Set glibc's mmap and trim thresholds (see the module docstring); returns what was done, in words."""
    if platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc':
        return f'allocator left as is (not glibc: {platform.system()} {platform.libc_ver()[0] or "unknown libc"})'
    libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
    ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    ok &= libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    if not ok:
        return 'allocator left as is (glibc mallopt refused the thresholds)'
    mib = 1024 * 1024
    limits = f'mmap threshold {MMAP_THRESHOLD_BYTES // mib} MiB, trim threshold {TRIM_THRESHOLD_BYTES // mib} MiB'
    return f'glibc keeps freed memory ({limits})'
