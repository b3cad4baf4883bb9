"""The progress line of the data generators (tools/water.py, tools/alloy.py)."""
from __future__ import annotations

import math
import time

__all__ = ["Progress"]


class Progress:
    """One status line on a stream: frames done, rates and estimated time left; label names
    the tool (the line's first word)."""

    def __init__(self, total_steps: int, total_frames: int, stream, label: str,
                 interval: float = 0.5):
        self.label = label
        self.total_steps, self.total_frames = total_steps, total_frames
        self.stream, self.interval = stream, interval
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.steps = self.frames = 0
        self.system = ""
        self.start = self.last = time.perf_counter()

    def step(self, frame_taken: bool):
        """One MD step done (and a frame taken); shows the line when it is due."""
        self.steps += 1
        self.frames += int(frame_taken)
        now = time.perf_counter()
        if now - self.last >= (self.interval if self.tty else 10.0):
            self.last = now
            self._show(now)

    def _show(self, now: float, end: str = ""):
        elapsed = max(now - self.start, 1e-9)
        rate = self.steps / elapsed
        eta = (self.total_steps - self.steps) / rate if rate > 0 else float("inf")
        line = (f"{self.label}: {self.system} frames {self.frames}/{self.total_frames}, "
                f"{self.frames / elapsed:.2f} frames/s ({rate:.0f} MD steps/s), "
                f"elapsed {_clock(elapsed)}, ETA {_clock(eta)}")
        if self.tty:
            self.stream.write("\r" + line + "\033[K" + end)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self):
        """The last line, ended."""
        self._show(time.perf_counter(), end="\n" if self.tty else "")


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"
