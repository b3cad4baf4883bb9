"""Example water training data: the command line that samples flexible water
(water_forcefield.py, water_dynamics.py) and writes DeePMD-kit npy systems.

Command line::

    python -m deepmd_tebd.tools.water OUTPUT_DIR [--systems 4] [--frames 80] [--seed 1]

writes ``OUTPUT_DIR/data_0`` ... ``data_{systems-1}``, each an independent trajectory. NumPy is the
only dependency. See deepmd_tebd/tools/README.md.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from .progress import Progress, write_system
from .water_dynamics import sample_system


def main(argv=None) -> int:
    """The command line: generates the systems into the output folder; returns 0."""
    parser = argparse.ArgumentParser(
        prog="python -m deepmd_tebd.tools.water",
        description="Generate example water training data (DeePMD-kit npy systems) from a "
                    "classical flexible-water model (SPC/Fw parameters, DSF Coulomb) by "
                    "thermostatted molecular dynamics. See deepmd_tebd/tools/README.md.")
    parser.add_argument("output", help="directory to write data_0, data_1, ... into")
    parser.add_argument("--systems", type=int, default=4, help="independent trajectories (4)")
    parser.add_argument("--frames", type=int, default=80, help="frames per system (80)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    parser.add_argument("--molecules", type=int, default=64, help="waters per box (64)")
    parser.add_argument("--temperature", type=float, default=300.0, help="K (300)")
    parser.add_argument("--density", type=float, default=1.0, help="g/cm^3 (1.0)")
    parser.add_argument("--stride", type=int, default=20,
                        help="MD steps of 0.5 fs between frames (20)")
    parser.add_argument("--equilibration", type=int, default=2000,
                        help="MD steps before the first frame (2000)")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    args = parser.parse_args(argv)
    for name in ("systems", "frames", "molecules", "stride"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.equilibration < 0:
        parser.error("--equilibration must not be negative")

    steps_per_system = args.equilibration + args.frames * args.stride
    progress = None if args.quiet else Progress(
        args.systems * steps_per_system, args.systems * args.frames, sys.stderr, "water")
    for index in range(args.systems):
        rng = np.random.default_rng([args.seed, index])
        if progress is not None:
            progress.system = f"system {index + 1}/{args.systems},"
        system = sample_system(args.frames, rng, n_molecules=args.molecules,
                               temperature=args.temperature, stride=args.stride,
                               equilibration=args.equilibration, density=args.density,
                               on_step=None if progress is None else progress.step)
        # types index water_forcefield.TYPE_MAP (O 0, H 1), the example's type_map:
        # no type_map.raw
        write_system(os.path.join(args.output, f"data_{index}"), system)
    if progress is not None:
        progress.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
