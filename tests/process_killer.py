"""SIGKILLs worker processes from outside, as the out-of-memory killer would."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable


class Killer(threading.Thread):
    """SIGKILLs each process `candidates()` lists once it has been seen for `after` seconds, up
    to `times` different processes (each retry runs in a new one)."""

    def __init__(self, candidates: Callable[[], list[int]], times: int, after: float = 1.0):
        super().__init__(daemon=True)
        self.candidates, self.times, self.after = candidates, times, after
        self.killed: list[int] = []
        self.stop = threading.Event()

    def run(self) -> None:
        seen: dict[int, float] = {}
        while not self.stop.is_set() and len(self.killed) < self.times:
            now = time.monotonic()
            for pid in self.candidates():
                if pid in self.killed or len(self.killed) == self.times:
                    continue
                if now - seen.setdefault(pid, now) >= self.after:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        continue
                    self.killed.append(pid)
            time.sleep(0.05)
