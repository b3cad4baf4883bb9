"""The `dp` command line. Parsing imports no TensorFlow, so `dp -h` and `dp --version` are instant;
each subcommand imports its entry point when it runs."""
from __future__ import annotations

import argparse
import sys

from . import __version__

LOG_LEVELS = ["DEBUG", "3", "INFO", "2", "WARNING", "1", "ERROR", "0"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dp",
        description="deepmd_tebd: train, freeze and test Deep Potential models with type "
        "embedding; reads DeePMD-kit input scripts and data unchanged.",
    )
    parser.add_argument("--version", action="version", version=f"deepmd_tebd v{__version__}")
    parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
