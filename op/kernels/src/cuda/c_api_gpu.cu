// C entry points of the CUDA kernels (the _gpu functions of c_api.h): the kernel functions the
// TensorFlow GPU kernels call, on device pointers, on the caller's stream, with temporaries from
// the caller's allocator. Errors become a non-zero return code and dtk_last_error().
#include <string>

#include "c_api.h"
#include "c_api_error.h"
#include "device_utils.cuh"
#include "env_mat.h"
#include "errors.h"
#include "prod_force.h"
#include "prod_virial.h"

namespace deepmd_tebd {
namespace gpu {
namespace {

// Throws InvalidArgument(message) unless ok.
void require(bool ok, const std::string& message) {
  if (!ok) throw InvalidArgument(message);
}

// The caller's context, checked once per call.
const dtk_gpu_context& context(const dtk_gpu_context* ctx) {
  require(ctx != nullptr && ctx->alloc != nullptr, "null context or allocator");
  return *ctx;
}

// prod_env_mat_a_gpu with sel given as a host array of ntypes entries.
template <typename T>
void env_mat(const dtk_gpu_context* ctx, T* em, T* em_deriv, T* rij, int* nlist, const T* coord,
             const int* type, int nframes, int nloc, int nall, const T* box, const T* davg,
             const T* dstd, int ntypes, const int* sel, float rcut, float rcut_smth) {
  require(nframes >= 0 && nloc >= 0 && nall >= 0 && ntypes >= 0, "negative size");
  require(ntypes == 0 || sel != nullptr, "null sel");
  int nnei = 0;
  for (int t = 0; t < ntypes; ++t) {
    require(sel[t] >= 0, "sel[" + std::to_string(t) + "] is negative");
    nnei += sel[t];
  }
  const EnvMatParams p{ntypes, sel, nnei, rcut, rcut_smth};
  prod_env_mat_a_gpu(context(ctx), em, em_deriv, rij, nlist, coord, type, nframes, nloc, nall, box,
                     davg, dstd, p);
}

// Waits (one thread) for *release, at most timeout_ns of the device's global timer.
__global__ void hold_kernel(const volatile int* release, volatile int* exited,
                            long long timeout_ns) {
  unsigned long long t0, t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
  do {
    __nanosleep(10000);
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  } while (*release == 0 && static_cast<long long>(t - t0) < timeout_ns);
  *exited = 1;
  __threadfence_system();
}

}  // namespace
}  // namespace gpu
}  // namespace deepmd_tebd

using namespace deepmd_tebd;

#define DTK_DEFINE_GPU(SUFFIX, T)                                                                 \
  extern "C" int dtk_prod_env_mat_a_gpu_##SUFFIX(                                                \
      const dtk_gpu_context* ctx, T* em, T* em_deriv, T* rij, int* nlist, const T* coord,         \
      const int* type, int nframes, int nloc, int nall, const T* box, const T* davg,              \
      const T* dstd, int ntypes, const int* sel, float rcut, float rcut_smth) {                   \
    return guarded([&] {                                                                         \
      gpu::env_mat(ctx, em, em_deriv, rij, nlist, coord, type, nframes, nloc, nall, box, davg,   \
                   dstd, ntypes, sel, rcut, rcut_smth);                                          \
    });                                                                                          \
  }                                                                                              \
  extern "C" int dtk_prod_env_mat_a_mix_gpu_##SUFFIX(                                            \
      const dtk_gpu_context* ctx, T* em, T* em_deriv, T* rij, int* nlist, int* ntype,             \
      unsigned char* nmask, const T* coord, const int* type, int nframes, int nloc, int nall,      \
      const T* box, const T* davg, const T* dstd, int ntypes, int nnei, float rcut,               \
      float rcut_smth) {                                                                         \
    return guarded([&] {                                                                         \
      gpu::require(nframes >= 0 && nloc >= 0 && nall >= 0 && ntypes >= 0 && nnei >= 0,          \
                   "negative size");                                                             \
      const EnvMatParams p{ntypes, &nnei, nnei, rcut, rcut_smth, true};                          \
      prod_env_mat_a_gpu(gpu::context(ctx), em, em_deriv, rij, nlist, coord, type, nframes, nloc, \
                         nall, box, davg, dstd, p);                                              \
      neighbor_types_gpu(gpu::context(ctx), ntype, reinterpret_cast<bool*>(nmask), nlist, type,  \
                         nframes, nloc, nnei, nall, ntypes);                                     \
    });                                                                                          \
  }                                                                                              \
  extern "C" int dtk_prod_force_a_gpu_##SUFFIX(const dtk_gpu_context* ctx, int nframes, T* force, \
                                               const T* net_deriv, const T* in_deriv,            \
                                               const int* nlist, int nloc, int nall, int nnei) { \
    return guarded([&] {                                                                         \
      prod_force_a_gpu(gpu::context(ctx), nframes, force, net_deriv, in_deriv, nlist, nloc, nall, \
                       nnei);                                                                    \
    });                                                                                          \
  }                                                                                              \
  extern "C" int dtk_prod_virial_a_gpu_##SUFFIX(                                                 \
      const dtk_gpu_context* ctx, int nframes, T* virial, T* atom_virial, const T* net_deriv,    \
      const T* in_deriv, const T* rij, const int* nlist, int nloc, int nall, int nnei) {         \
    return guarded([&] {                                                                         \
      prod_virial_a_gpu(gpu::context(ctx), nframes, virial, atom_virial, net_deriv, in_deriv,    \
                        rij, nlist, nloc, nall, nnei);                                           \
    });                                                                                          \
  }                                                                                              \
  extern "C" int dtk_prod_force_grad_a_gpu_##SUFFIX(                                             \
      const dtk_gpu_context* ctx, int nframes, T* grad_net, const T* grad, const T* in_deriv,    \
      const int* nlist, int nloc, int nall, int nnei) {                                          \
    return guarded([&] {                                                                         \
      prod_force_grad_a_gpu(gpu::context(ctx), nframes, grad_net, grad, in_deriv, nlist, nloc,   \
                            nall, nnei);                                                         \
    });                                                                                          \
  }                                                                                              \
  extern "C" int dtk_prod_virial_grad_a_gpu_##SUFFIX(                                            \
      const dtk_gpu_context* ctx, int nframes, T* grad_net, const T* grad, const T* in_deriv,    \
      const T* rij, const int* nlist, int nloc, int nnei) {                                      \
    return guarded([&] {                                                                         \
      prod_virial_grad_a_gpu(gpu::context(ctx), nframes, grad_net, grad, in_deriv, rij, nlist,   \
                             nloc, nnei);                                                        \
    });                                                                                          \
  }

DTK_DEFINE_GPU(d, double)
DTK_DEFINE_GPU(f, float)

extern "C" int dtk_gpu_hold_stream(cudaStream_t stream, const volatile int* release,
                                   volatile int* exited, long long timeout_ns) {
  return guarded([&] {
    gpu::hold_kernel<<<1, 1, 0, stream>>>(release, exited, timeout_ns);
    gpu::check_launch("hold_kernel");
  });
}
