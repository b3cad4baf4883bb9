# The nvcc flags of the CUDA kernels, written once: op/Makefile includes this file and setup.py
# reads it (lines `NAME = value` or `NAME ?= value`; `#` starts a comment line).
# -fmad=false and IEEE division/square root keep the device arithmetic identical to the CPU's
# (compiled with -ffp-contract=off); the host code of the .cu files gets the same contraction rule.
NVCC_FLAGS = -std=c++17 -O3 -Xcompiler -fPIC -Xcompiler -ffp-contract=off -fmad=false -prec-div=true -prec-sqrt=true -ftz=false
# GPU architectures; override with `make CUDA_ARCH=...` or DEEPMD_TEBD_CUDA_ARCH for setup.py.
CUDA_ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90
