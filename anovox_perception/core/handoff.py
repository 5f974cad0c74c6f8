"""A one-item mailbox between ROS callbacks and the inference worker.

The callbacks must never wait for inference, and a slow model must not let a
queue grow without bound: the producer overwrites whatever the worker has not
taken yet (the overwritten item is returned so the caller can count the drop),
and the worker always gets the newest item. Memory stays at one item.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

__all__ = ['LatestSlot']

T = TypeVar('T')


class LatestSlot(Generic[T]):
    """Thread-safe holder of the newest item; older unread items are replaced."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._closed = False

    def put(self, item: T) -> T | None:
        """Offer an item; never blocks.

        Args:
            item: The new item (not None).

        Returns:
            The unread item it replaced (dropped), or None.

        Raises:
            ValueError: ``item`` is None (None means "empty" here).
        """
        if item is None:
            msg = 'LatestSlot.put: item must not be None'
            raise ValueError(msg)
        with self._cond:
            if self._closed:
                return item  # nobody will read it: report it as dropped
            dropped, self._item = self._item, item
            self._cond.notify()
        return dropped

    def take(self, timeout_s: float | None = None) -> T | None:
        """Wait for and remove the newest item.

        Args:
            timeout_s: Longest wait in seconds; None waits until an item arrives or the slot closes.

        Returns:
            The item, or None on timeout or once the slot is closed and empty.
        """
        with self._cond:
            self._cond.wait_for(lambda: self._item is not None or self._closed, timeout=timeout_s)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        """Wake every waiting `take`; later `put`s are refused (returned as dropped)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        """True once `close` was called."""
        with self._cond:
            return self._closed
