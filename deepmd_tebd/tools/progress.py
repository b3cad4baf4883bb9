"""What the data generators (tools/water.py, tools/alloy.py) share: the progress line and the
writing of one DeePMD-kit npy system."""
from __future__ import annotations

import math
import os
import time

import numpy as np

__all__ = ["Progress", "write_system"]


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


def write_system(path: str, system: dict, type_map=None) -> None:
    """One DeePMD-kit npy system: type.raw (system["types"]), type_map.raw when type_map is
    given, and set.000/{coord,box,energy,force,virial}.npy (float64)."""
    set_dir = os.path.join(path, "set.000")
    os.makedirs(set_dir, exist_ok=True)
    with open(os.path.join(path, "type.raw"), "w") as f:
        f.write("".join(f"{t}\n" for t in system["types"]))
    if type_map is not None:
        with open(os.path.join(path, "type_map.raw"), "w") as f:
            f.write("".join(f"{name}\n" for name in type_map))
    for key in ("coord", "box", "energy", "force", "virial"):
        np.save(os.path.join(set_dir, f"{key}.npy"),
                np.ascontiguousarray(system[key], dtype=np.float64))
