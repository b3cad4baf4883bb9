/* Plain C entry points to the kernels, for harnesses without TensorFlow (ctypes, C++ tests).
 * One frame per call. Every function returns 0 on success and non-zero on failure, when
 * dtk_last_error() names the problem. Suffix _d: double, _f: float.
 * The _gpu functions take HOST pointers: they copy the inputs to the device, run the CUDA
 * kernels, copy the outputs back, and report the device time of the kernels alone (excluding
 * the copies) in *elapsed_ms. They exist only in the CUDA build of the library. */
#pragma once
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
  int dtk_prod_env_mat_a_gpu_##SUFFIX(T* em, T* em_deriv, T* rij, int* nlist, const T* coord,   \
                                      const int* type, int nloc, int nall, const T* box,        \
                                      const T* davg, const T* dstd, int ntypes, const int* sel, \
                                      float rcut, float rcut_smth, float* elapsed_ms);          \
  int dtk_prod_force_a_gpu_##SUFFIX(T* force, const T* net_deriv, const T* in_deriv,            \
                                    const int* nlist, int nloc, int nall, int nnei,             \
                                    float* elapsed_ms);                                         \
  int dtk_prod_virial_a_gpu_##SUFFIX(T* virial, T* atom_virial, const T* net_deriv,             \
                                     const T* in_deriv, const T* rij, const int* nlist,         \
                                     int nloc, int nall, int nnei, float* elapsed_ms);        \
  int dtk_prod_force_grad_a_cpu_##SUFFIX(T* grad_net, const T* grad, const T* in_deriv,         \
                                         const int* nlist, int nloc, int nall, int nnei);        \
  int dtk_prod_virial_grad_a_cpu_##SUFFIX(T* grad_net, const T* grad, const T* in_deriv,        \
                                          const T* rij, const int* nlist, int nloc, int nnei);   \
  int dtk_prod_force_grad_a_gpu_##SUFFIX(T* grad_net, const T* grad, const T* in_deriv,         \
                                         const int* nlist, int nloc, int nall, int nnei,         \
                                         float* elapsed_ms);                                     \
  int dtk_prod_virial_grad_a_gpu_##SUFFIX(T* grad_net, const T* grad, const T* in_deriv,        \
                                          const T* rij, const int* nlist, int nloc, int nnei,    \
                                          float* elapsed_ms);

DTK_DECLARE(d, double)
DTK_DECLARE(f, float)
#undef DTK_DECLARE

#ifdef __cplusplus
}
#endif
