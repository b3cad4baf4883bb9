/* Plain C entry points to the kernels, for harnesses without TensorFlow (ctypes, C++ tests).
 * Every function returns 0 on success and non-zero on failure, when dtk_last_error() names the
 * problem. Suffix _d: double, _f: float.
 * The _cpu functions take host pointers and one frame.
 * The _gpu functions (CUDA build of the library only) are the very kernel functions the
 * TensorFlow GPU kernels call: DEVICE pointers, nframes frames stored one after the other, every
 * launch, memset and copy on ctx->stream and every temporary from ctx->alloc (gpu_context.h).
 * They return once the work is enqueued: the caller synchronises the stream before reading the
 * outputs or reclaiming the temporaries. Host pointers: `box` ([nframes*9], NULL for open
 * boundaries) and `sel` of the env mat. */
#pragma once
#include "gpu_context.h"

#ifdef __cplusplus
extern "C" {
#endif

// The message of the last failed call on this thread ("" after a successful call).
const char* dtk_last_error(void);
// 1 in the CUDA build of the library (the _gpu functions exist), else 0.
int dtk_has_cuda(void);

#define DTK_DECLARE(SUFFIX, T)                                                                   \
  int dtk_prod_env_mat_a_cpu_##SUFFIX(T* em, T* em_deriv, T* rij, int* nlist, const T* coord,   \
                                      const int* type, int nloc, int nall, const T* box,        \
                                      const T* davg, const T* dstd, int ntypes, const int* sel, \
                                      float rcut, float rcut_smth);                             \
  int dtk_prod_force_a_cpu_##SUFFIX(T* force, const T* net_deriv, const T* in_deriv,            \
                                    const int* nlist, int nloc, int nall, int nnei);             \
  int dtk_prod_virial_a_cpu_##SUFFIX(T* virial, T* atom_virial, const T* net_deriv,             \
                                     const T* in_deriv, const T* rij, const int* nlist,         \
                                     int nloc, int nall, int nnei);                             \
  int dtk_prod_force_grad_a_cpu_##SUFFIX(T* grad_net, const T* grad, const T* in_deriv,         \
                                         const int* nlist, int nloc, int nall, int nnei);        \
  int dtk_prod_virial_grad_a_cpu_##SUFFIX(T* grad_net, const T* grad, const T* in_deriv,        \
                                          const T* rij, const int* nlist, int nloc, int nnei);   \
  int dtk_prod_env_mat_a_gpu_##SUFFIX(                                                          \
      const dtk_gpu_context* ctx, T* em, T* em_deriv, T* rij, int* nlist, const T* coord,        \
      const int* type, int nframes, int nloc, int nall, const T* box, const T* davg,             \
      const T* dstd, int ntypes, const int* sel, float rcut, float rcut_smth);                   \
  int dtk_prod_force_a_gpu_##SUFFIX(const dtk_gpu_context* ctx, int nframes, T* force,           \
                                    const T* net_deriv, const T* in_deriv, const int* nlist,     \
                                    int nloc, int nall, int nnei);                               \
  int dtk_prod_virial_a_gpu_##SUFFIX(const dtk_gpu_context* ctx, int nframes, T* virial,         \
                                     T* atom_virial, const T* net_deriv, const T* in_deriv,      \
                                     const T* rij, const int* nlist, int nloc, int nall,         \
                                     int nnei);                                                  \
  int dtk_prod_force_grad_a_gpu_##SUFFIX(const dtk_gpu_context* ctx, int nframes, T* grad_net,   \
                                         const T* grad, const T* in_deriv, const int* nlist,     \
                                         int nloc, int nall, int nnei);                          \
  int dtk_prod_virial_grad_a_gpu_##SUFFIX(const dtk_gpu_context* ctx, int nframes, T* grad_net,  \
                                          const T* grad, const T* in_deriv, const T* rij,        \
                                          const int* nlist, int nloc, int nnei);

DTK_DECLARE(d, double)
DTK_DECLARE(f, float)
#undef DTK_DECLARE

/* Test support (CUDA build): enqueues on `stream` one single-thread kernel that waits until
 * *release (host-mapped memory) becomes non-zero or timeout_ns have passed, then sets *exited
 * (host-mapped) to 1. The harness holds the legacy default stream with it, so that work enqueued
 * there by mistake would not run before the checks read their results. */
int dtk_gpu_hold_stream(cudaStream_t stream, const volatile int* release, volatile int* exited,
                        long long timeout_ns);

#ifdef __cplusplus
}
#endif
