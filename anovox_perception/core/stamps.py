"""Message stamps <-> integer nanoseconds: the one place the conversion is written.

A ``builtin_interfaces/Time`` (rclpy or rosbags object, or anything with ``sec`` and
``nanosec``) is handled by its attributes only, so this module imports no ROS
package. Times are carried as integer nanoseconds everywhere else: float seconds
lose nanoseconds past about 104 days of epoch time.
"""

from __future__ import annotations

from typing import Any

__all__ = ['NS_PER_MS', 'NS_PER_S', 'ns_to_seconds', 'seconds_to_ns', 'sec_nanosec', 'stamp_to_ns']

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000


def stamp_to_ns(stamp: Any) -> int:
    """Nanoseconds of a ``builtin_interfaces/Time`` or ``Duration`` (anything with ``sec`` and ``nanosec``)."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def sec_nanosec(stamp_ns: int) -> tuple[int, int]:
    """The ``(sec, nanosec)`` fields of a stamp in nanoseconds; ``nanosec`` is in [0, 1e9) also before 1970."""
    sec, nanosec = divmod(int(stamp_ns), NS_PER_S)
    return sec, nanosec


def seconds_to_ns(seconds: float) -> int:
    """Float seconds as integer nanoseconds, rounded to the nearest nanosecond."""
    return round(float(seconds) * NS_PER_S)


def ns_to_seconds(stamp_ns: int) -> float:
    """Integer nanoseconds as float seconds (for messages and logs; keep the integer for arithmetic)."""
    return stamp_ns / NS_PER_S
