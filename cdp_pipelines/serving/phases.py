"""Seconds spent in each phase of a publish, so an operator can see where a slow publish went.

Tables load in parallel, so per-table phases ("copy identity_lookup", "index identity_lookup"…)
overlap and add up to more than the wall-clock "load" phase; they say which table dominates.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager


class PhaseClock:
    """Accumulates wall-clock seconds per named phase; safe to use from the loader threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str):
        with self._lock:
            self._seconds.setdefault(name, 0.0)
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            with self._lock:
                self._seconds[name] = self._seconds.get(name, 0.0) + elapsed

    def seconds(self) -> dict[str, float]:
        """Phases in the order they started, rounded to milliseconds."""
        with self._lock:
            return {name: round(s, 3) for name, s in self._seconds.items()}
