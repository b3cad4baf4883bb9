// C entry points of the CPU kernels (see c_api.h). The CUDA build adds the _gpu functions in
// cuda/c_api_gpu.cu and defines DTK_WITH_CUDA.
#include "c_api.h"

#include <exception>
#include <numeric>
#include <string>
#include <vector>

#include "c_api_error.h"
#include "env_mat.h"
#include "prod_force.h"
#include "prod_virial.h"

namespace deepmd_tebd {
thread_local std::string last_error;
}  // namespace deepmd_tebd

using namespace deepmd_tebd;

extern "C" const char* dtk_last_error(void) { return last_error.c_str(); }

extern "C" int dtk_has_cuda(void) {
#ifdef DTK_WITH_CUDA
  return 1;
#else
  return 0;
#endif
}

#define DTK_DEFINE_CPU(SUFFIX, T)                                                                \
  extern "C" int dtk_prod_env_mat_a_cpu_##SUFFIX(                                               \
      T* em, T* em_deriv, T* rij, int* nlist, const T* coord, const int* type, int nloc,        \
      int nall, const T* box, const T* davg, const T* dstd, int ntypes, const int* sel,         \
      float rcut, float rcut_smth) {                                                            \
    return guarded([&] {                                                                        \
      EnvMatParams p{ntypes, sel, std::accumulate(sel, sel + ntypes, 0), rcut, rcut_smth};     \
      prod_env_mat_a_cpu(em, em_deriv, rij, nlist, coord, type, nloc, nall, box, nullptr, davg, \
                         dstd, p);                                                              \
    });                                                                                         \
  }                                                                                             \
  extern "C" int dtk_prod_env_mat_a_mix_cpu_##SUFFIX(                                           \
      T* em, T* em_deriv, T* rij, int* nlist, int* ntype, unsigned char* nmask, const T* coord,  \
      const int* type, int nloc, int nall, const T* box, const T* davg, const T* dstd,            \
      int ntypes, int nnei, float rcut, float rcut_smth) {                                        \
    return guarded([&] {                                                                        \
      EnvMatParams p{ntypes, &nnei, nnei, rcut, rcut_smth, true};                               \
      prod_env_mat_a_cpu(em, em_deriv, rij, nlist, coord, type, nloc, nall, box, nullptr, davg, \
                         dstd, p);                                                              \
      neighbor_types_cpu(ntype, reinterpret_cast<bool*>(nmask), nlist, type,                    \
                         static_cast<long long>(nloc) * nnei, ntypes);                          \
    });                                                                                         \
  }                                                                                             \
  extern "C" int dtk_prod_force_a_cpu_##SUFFIX(T* force, const T* net_deriv, const T* in_deriv, \
                                               const int* nlist, int nloc, int nall, int nnei) { \
    return guarded(                                                                             \
        [&] { prod_force_a_cpu(force, net_deriv, in_deriv, nlist, nloc, nall, nnei); });        \
  }                                                                                             \
  extern "C" int dtk_prod_virial_a_cpu_##SUFFIX(T* virial, T* atom_virial, const T* net_deriv,  \
                                                const T* in_deriv, const T* rij,                \
                                                const int* nlist, int nloc, int nall, int nnei) { \
    return guarded([&] {                                                                        \
      prod_virial_a_cpu(virial, atom_virial, net_deriv, in_deriv, rij, nlist, nloc, nall, nnei); \
    });                                                                                         \
  }                                                                                             \
  extern "C" int dtk_prod_force_grad_a_cpu_##SUFFIX(T* grad_net, const T* grad,                  \
                                                    const T* in_deriv, const int* nlist,         \
                                                    int nloc, int nall, int nnei) {              \
    return guarded(                                                                              \
        [&] { prod_force_grad_a_cpu(grad_net, grad, in_deriv, nlist, nloc, nall, nnei); });      \
  }                                                                                              \
  extern "C" int dtk_prod_virial_grad_a_cpu_##SUFFIX(T* grad_net, const T* grad,                 \
                                                     const T* in_deriv, const T* rij,            \
                                                     const int* nlist, int nloc, int nnei) {     \
    return guarded(                                                                              \
        [&] { prod_virial_grad_a_cpu(grad_net, grad, in_deriv, rij, nlist, nloc, nnei); });      \
  }

DTK_DEFINE_CPU(d, double)
DTK_DEFINE_CPU(f, float)
