"""A small least-recently-used cache: the one implementation the library and the nodes keep loaded
models and backends in."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class LRU(Generic[V]):
    """The last ``size`` values by key, each made once by ``get(key, make)`` (under a lock, so two
    threads never make the same value twice). ``drop``, if given, is called on each value the cache lets
    go of, for values whose memory should be freed now rather than when they are collected."""

    def __init__(self, size: int, drop: Callable[[V], object] | None = None):
        self.size = size
        self._drop = drop
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable, make: Callable[[], V]) -> V:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            value = make()
            self._items[key] = value
            while len(self._items) > self.size:
                self._dropped(self._items.popitem(last=False)[1])
            return value

    def clear(self) -> None:
        with self._lock:
            while self._items:
                self._dropped(self._items.popitem()[1])

    def _dropped(self, value: V) -> None:
        if self._drop is not None:
            self._drop(value)
