"""The variables of op/cuda.mk (the nvcc flags, written once), for setup.py and the tests;
op/Makefile includes the file itself."""
from pathlib import Path

CUDA_MK = Path(__file__).resolve().parent / "cuda.mk"


def cuda_make_variables(path=CUDA_MK):
    """{NAME: [flag, ...]} from the `NAME = value` / `NAME ?= value` lines of op/cuda.mk."""
    found = {}
    for line in Path(path).read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            found[name.rstrip("?: \t")] = value.split()
    return found
