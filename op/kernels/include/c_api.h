/* Plain C entry points to the kernels, for harnesses without TensorFlow (ctypes, C++ tests).
 * The _mix functions are ProdEnvMatAMix's: one block of nnei slots for every type, and each
 * slot's neighbour type (ntypes when empty) and mask (1 byte, 0 or 1).
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
  int dtk_prod_env_mat_a_mix_cpu_##SUFFIX(                                                      \
      T* em, T* em_deriv, T* rij, int* nlist, int* ntype, unsigned char* nmask, const T* coord,  \
      const int* type, int nloc, int nall, const T* box, const T* davg, const T* dstd,            \
      int ntypes, int nnei, float rcut, float rcut_smth);                                         \
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
  int dtk_prod_env_mat_a_mix_gpu_##SUFFIX(                                                      \
      const dtk_gpu_context* ctx, T* em, T* em_deriv, T* rij, int* nlist, int* ntype,            \
      unsigned char* nmask, const T* coord, const int* type, int nframes, int nloc, int nall,     \
      const T* box, const T* davg, const T* dstd, int ntypes, int nnei, float rcut,              \
      float rcut_smth);                                                                           \
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

/* Tabulation kernels of compressed se_e2_a models (tabulate.h): TabulateFusionSeA, its gradient
 * and its second gradient, one frame per call. The _cpu functions take host pointers. The _gpu
 * functions (CUDA build only) take DEVICE pointers except table_info (host, 6 values) and run
 * asynchronously on `stream` (a cudaStream_t; NULL is the legacy default stream): they allocate
 * nothing and do not synchronise. */
#define DTK_DECLARE_TABULATE(SUFFIX, T, DEV, STREAM)                                             \
  int dtk_tabulate_fusion_se_a_##DEV##_##SUFFIX(T* out, const T* table, const T* table_info,    \
                                               const T* em_x, const T* em, int nloc, int nnei,  \
                                               int last_layer_size STREAM);                     \
  int dtk_tabulate_fusion_se_a_grad_##DEV##_##SUFFIX(                                           \
      T* dy_dem_x, T* dy_dem, const T* table, const T* table_info, const T* em_x, const T* em,  \
      const T* dy, int nloc, int nnei, int last_layer_size STREAM);                             \
  int dtk_tabulate_fusion_se_a_grad_grad_##DEV##_##SUFFIX(                                      \
      T* dz_dy, const T* table, const T* table_info, const T* em_x, const T* em,                \
      const T* dz_dy_dem_x, const T* dz_dy_dem, int nloc, int nnei, int last_layer_size,        \
      int is_sorted STREAM);
#define DTK_TABULATE_NO_STREAM
#define DTK_TABULATE_STREAM , void* stream
DTK_DECLARE_TABULATE(d, double, cpu, DTK_TABULATE_NO_STREAM)
DTK_DECLARE_TABULATE(f, float, cpu, DTK_TABULATE_NO_STREAM)
DTK_DECLARE_TABULATE(d, double, gpu, DTK_TABULATE_STREAM)
DTK_DECLARE_TABULATE(f, float, gpu, DTK_TABULATE_STREAM)
#undef DTK_DECLARE_TABULATE

#ifdef __cplusplus
}
#endif
