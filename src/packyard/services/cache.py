"""Caches that stay correct across worker processes by following the change serial."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class SerialCache(Generic[V]):
    """Values computed from the database, all dropped as soon as the change serial moves.

    Use `current()` to learn the serial *before* reading the database, then `store()` with it:
    a value computed while a write landed is never kept under the newer serial.
    """

    def __init__(self, serial: Callable[[], int], max_entries: int = 20_000) -> None:
        """`serial`: reads the serial that invalidates these values (cheaply: one pread)."""
        self._read_serial = serial
        self._serial = -1
        self._values: dict[Hashable, V] = {}
        self._max_entries = max_entries
        self._lock = threading.Lock()

    def current(self) -> int:
        serial = self._read_serial()
        if serial != self._serial:
            with self._lock:
                if serial != self._serial:
                    self._values = {}
                    self._serial = serial
        return serial

    def get(self, key: Hashable) -> V | None:
        self.current()
        return self._values.get(key)

    def store(self, key: Hashable, value: V, serial: int) -> None:
        with self._lock:
            if serial != self._serial:
                return
            if len(self._values) >= self._max_entries:
                self._values = {}
            self._values[key] = value

    def get_or_compute(self, key: Hashable, compute: Callable[[], V]) -> V:
        serial = self.current()
        value = self._values.get(key)
        if value is None:
            value = compute()
            self.store(key, value, serial)
        return value
