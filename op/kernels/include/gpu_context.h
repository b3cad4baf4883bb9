/* Where the CUDA kernels run and where their device temporaries come from. C-compatible: the C
 * API (c_api.h), the kernel library (src/cuda) and the TensorFlow kernels (op/tf) share it.
 *
 * Every kernel launch, memset and copy of a kernel function goes to `stream`; nothing is enqueued
 * on the legacy default stream and nothing synchronises the device. Temporaries come from
 * `alloc(user, bytes)`, which returns device memory (aligned to at least 64 bytes, or NULL when
 * none is left) that stays valid for the work the kernel function enqueues on `stream`. The
 * caller reclaims it after the kernel function has returned, in the stream's order: TensorFlow's
 * allocate_temp tensors are released at the end of Compute (op/tf/gpu_context.h); the harness
 * rewinds an arena after synchronising the stream (op/tests/harness.py). A kernel function reads
 * back from the device at most once per call, and only where a size must be known. */
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The CUDA runtime's own definition (driver_types.h), repeated so that this header needs no CUDA
 * include. */
typedef struct CUstream_st* cudaStream_t;

typedef void* (*dtk_device_alloc)(void* user, size_t bytes);

typedef struct dtk_gpu_context {
  cudaStream_t stream;
  dtk_device_alloc alloc;
  void* user;
} dtk_gpu_context;

#ifdef __cplusplus
}

/* The leading parameters of a kernel function of the product kernels (prod_force.h,
 * prod_virial.h): none on the CPU (one frame), the context and the frame count on the GPU. */
#define DTK_CPU_LEAD
#define DTK_GPU_LEAD const dtk_gpu_context &ctx, int nframes,
#endif
