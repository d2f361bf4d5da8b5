"""A small bounded hand-off between pipeline threads: latest-only (drop) or blocking (no drop)."""

from __future__ import annotations

import threading
from collections import deque


class Closed(Exception):
    """The producer closed the channel and it is empty."""


class Channel:
    """``put`` drops the oldest item when full and ``drop`` (counting it), else blocks.

    ``get(timeout)`` returns an item, ``None`` on timeout, or raises :class:`Closed` once the
    producer has closed it and it is drained. ``abort()`` wakes everyone and makes ``put`` a no-op.
    """

    def __init__(self, capacity: int = 1, drop: bool = True):
        self.capacity, self.drop = max(1, int(capacity)), drop
        self._q: deque = deque()
        self._cv = threading.Condition()
        self._closed = False
        self._aborted = False
        self.dropped = 0

    def put(self, item) -> bool:
        with self._cv:
            while len(self._q) >= self.capacity and not self._aborted:
                if self.drop:
                    self._q.popleft()
                    self.dropped += 1
                    break
                self._cv.wait(0.1)
            if self._aborted:
                return False
            self._q.append(item)
            self._cv.notify_all()
            return True

    def get(self, timeout: float | None = None):
        with self._cv:
            if not self._q and not self._closed and not self._aborted:
                self._cv.wait(timeout)
            if self._q:
                item = self._q.popleft()
                self._cv.notify_all()
                return item
            if self._closed or self._aborted:
                raise Closed()
            return None

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    def abort(self) -> None:
        with self._cv:
            self._aborted = True
            self._q.clear()
            self._cv.notify_all()
