"""Politeness: at most one request per `interval` seconds to the same host, across threads."""
from __future__ import annotations

import threading
import time


class HostRateLimiter:
    def __init__(self, interval: float):
        self.interval = max(0.0, float(interval))
        self._next_slot: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, host: str) -> float:
        """Block until this thread may send its next request to `host`; the slot granted (monotonic)."""
        if self.interval == 0:
            return time.monotonic()
        with self._lock:
            # Reserve the next free slot under the lock, sleep outside it so other hosts proceed.
            now = time.monotonic()
            slot = max(now, self._next_slot.get(host, 0.0))
            self._next_slot[host] = slot + self.interval
        if slot > now:
            time.sleep(slot - now)
        return slot
