// C entry points of the CUDA kernels (the _gpu functions of c_api.h): host pointers in and out.
// Each call allocates device memory, copies the inputs, runs the kernels between two CUDA
// events (so *elapsed_ms covers the device work of the kernel function alone, not the copies),
// copies the outputs back and frees the memory. Errors become a non-zero return code and
// dtk_last_error().
//
// The CUDA build also exports the gradient kernels, which c_api.h does not declare, on the CPU
// and the GPU (for harnesses that compare the two):
//   int dtk_prod_force_grad_a_{cpu,gpu}_{d,f}(T* grad_net, const T* grad, const T* in_deriv,
//                                             const int* nlist, int nloc, int nall, int nnei
//                                             [, float* elapsed_ms]);
//   int dtk_prod_virial_grad_a_{cpu,gpu}_{d,f}(T* grad_net, const T* grad, const T* in_deriv,
//                                              const T* rij, const int* nlist, int nloc, int nnei
//                                              [, float* elapsed_ms]);
// grad_net [nloc, nnei*4]; grad [nall*3] (force) or [9] (virial).
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

// Device time between start() and stop() on the default stream.
class EventTimer {
 public:
  EventTimer() {
    check(cudaEventCreate(&start_), "cudaEventCreate");
    const cudaError_t status = cudaEventCreate(&stop_);
    if (status != cudaSuccess) {
      cudaEventDestroy(start_);
      check(status, "cudaEventCreate");
    }
  }
  ~EventTimer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;

  void start() { check(cudaEventRecord(start_, 0), "cudaEventRecord"); }
  // Waits for the work enqueued since start() and returns its duration in milliseconds.
  float stop() {
    check(cudaEventRecord(stop_, 0), "cudaEventRecord");
    check(cudaEventSynchronize(stop_), "cudaEventSynchronize");
    float ms = 0.0f;
    check(cudaEventElapsedTime(&ms, start_, stop_), "cudaEventElapsedTime");
    return ms;
  }

 private:
  cudaEvent_t start_ = nullptr;
  cudaEvent_t stop_ = nullptr;
};

// Throws InvalidArgument(message) unless ok.
void require(bool ok, const std::string& message) {
  if (!ok) throw InvalidArgument(message);
}

// a * b * c as an element count.
size_t count_of(long long a, long long b = 1, long long c = 1) {
  return static_cast<size_t>(a) * static_cast<size_t>(b) * static_cast<size_t>(c);
}

// Allocates d and copies n elements of host memory into it.
template <typename T>
void to_device(DeviceBuffer<T>& d, const T* host, size_t n) {
  d.resize(n);
  if (n > 0) {
    require(host != nullptr, "null input pointer");
    d.upload(host, n);
  }
}

// Copies n elements of d to host memory.
template <typename T>
void to_host(T* host, const DeviceBuffer<T>& d, size_t n) {
  if (n > 0) {
    require(host != nullptr, "null output pointer");
    d.download(host, n);
  }
}

// prod_env_mat_a_gpu on host arrays: copies in, runs and times the kernels, copies out.
template <typename T>
void env_mat(T* em, T* em_deriv, T* rij, int* nlist, const T* coord, const int* type, int nloc,
             int nall, const T* box, const T* davg, const T* dstd, int ntypes, const int* sel,
             float rcut, float rcut_smth, float* elapsed_ms) {
  require(nloc >= 0 && nall >= 0 && ntypes >= 0, "negative size");
  require(ntypes == 0 || sel != nullptr, "null sel");
  int nnei = 0;
  for (int t = 0; t < ntypes; ++t) {
    require(sel[t] >= 0, "sel[" + std::to_string(t) + "] is negative");
    nnei += sel[t];
  }
  const EnvMatParams p{ntypes, sel, nnei, rcut, rcut_smth};
  DeviceBuffer<T> d_coord, d_box, d_davg, d_dstd;
  DeviceBuffer<int> d_type;
  to_device(d_coord, coord, count_of(nall, 3));
  to_device(d_type, type, count_of(nall));
  if (box) to_device(d_box, box, 9);
  to_device(d_davg, davg, count_of(ntypes, nnei, 4));
  to_device(d_dstd, dstd, count_of(ntypes, nnei, 4));
  const size_t nslot = count_of(nloc, nnei);
  DeviceBuffer<T> d_em(nslot * 4), d_em_deriv(nslot * 12), d_rij(nslot * 3);
  DeviceBuffer<int> d_nlist(nslot);

  EventTimer timer;
  timer.start();
  prod_env_mat_a_gpu(d_em.get(), d_em_deriv.get(), d_rij.get(), d_nlist.get(), d_coord.get(),
                     d_type.get(), nloc, nall, box ? d_box.get() : nullptr, d_davg.get(),
                     d_dstd.get(), p);
  const float ms = timer.stop();

  to_host(em, d_em, nslot * 4);
  to_host(em_deriv, d_em_deriv, nslot * 12);
  to_host(rij, d_rij, nslot * 3);
  to_host(nlist, d_nlist, nslot);
  if (elapsed_ms) *elapsed_ms = ms;
}

// prod_force_a_gpu on host arrays.
template <typename T>
void force(T* f, const T* net_deriv, const T* in_deriv, const int* nlist, int nloc, int nall,
           int nnei, float* elapsed_ms) {
  require(nloc >= 0 && nall >= 0 && nnei >= 0, "negative size");
  const size_t nslot = count_of(nloc, nnei);
  DeviceBuffer<T> d_net, d_in, d_force(count_of(nall, 3));
  DeviceBuffer<int> d_nlist;
  to_device(d_net, net_deriv, nslot * 4);
  to_device(d_in, in_deriv, nslot * 12);
  to_device(d_nlist, nlist, nslot);
  EventTimer timer;
  timer.start();
  prod_force_a_gpu(d_force.get(), d_net.get(), d_in.get(), d_nlist.get(), nloc, nall, nnei);
  const float ms = timer.stop();
  to_host(f, d_force, count_of(nall, 3));
  if (elapsed_ms) *elapsed_ms = ms;
}

// prod_virial_a_gpu on host arrays.
template <typename T>
void virial(T* v, T* atom_virial, const T* net_deriv, const T* in_deriv, const T* rij,
            const int* nlist, int nloc, int nall, int nnei, float* elapsed_ms) {
  require(nloc >= 0 && nall >= 0 && nnei >= 0, "negative size");
  const size_t nslot = count_of(nloc, nnei);
  DeviceBuffer<T> d_net, d_in, d_rij, d_virial(9), d_atom_virial(count_of(nall, 9));
  DeviceBuffer<int> d_nlist;
  to_device(d_net, net_deriv, nslot * 4);
  to_device(d_in, in_deriv, nslot * 12);
  to_device(d_rij, rij, nslot * 3);
  to_device(d_nlist, nlist, nslot);
  EventTimer timer;
  timer.start();
  prod_virial_a_gpu(d_virial.get(), d_atom_virial.get(), d_net.get(), d_in.get(), d_rij.get(),
                    d_nlist.get(), nloc, nall, nnei);
  const float ms = timer.stop();
  to_host(v, d_virial, 9);
  to_host(atom_virial, d_atom_virial, count_of(nall, 9));
  if (elapsed_ms) *elapsed_ms = ms;
}

// prod_force_grad_a_gpu on host arrays.
template <typename T>
void force_grad(T* grad_net, const T* grad, const T* in_deriv, const int* nlist, int nloc,
                int nall, int nnei, float* elapsed_ms) {
  require(nloc >= 0 && nall >= 0 && nnei >= 0, "negative size");
  const size_t nslot = count_of(nloc, nnei);
  DeviceBuffer<T> d_out(nslot * 4), d_grad, d_in;
  DeviceBuffer<int> d_nlist;
  to_device(d_grad, grad, count_of(nall, 3));
  to_device(d_in, in_deriv, nslot * 12);
  to_device(d_nlist, nlist, nslot);
  EventTimer timer;
  timer.start();
  prod_force_grad_a_gpu(d_out.get(), d_grad.get(), d_in.get(), d_nlist.get(), nloc, nnei);
  const float ms = timer.stop();
  to_host(grad_net, d_out, nslot * 4);
  if (elapsed_ms) *elapsed_ms = ms;
}

// prod_virial_grad_a_gpu on host arrays.
template <typename T>
void virial_grad(T* grad_net, const T* grad, const T* in_deriv, const T* rij, const int* nlist,
                 int nloc, int nnei, float* elapsed_ms) {
  require(nloc >= 0 && nnei >= 0, "negative size");
  const size_t nslot = count_of(nloc, nnei);
  DeviceBuffer<T> d_out(nslot * 4), d_grad, d_in, d_rij;
  DeviceBuffer<int> d_nlist;
  to_device(d_grad, grad, 9);
  to_device(d_in, in_deriv, nslot * 12);
  to_device(d_rij, rij, nslot * 3);
  to_device(d_nlist, nlist, nslot);
  EventTimer timer;
  timer.start();
  prod_virial_grad_a_gpu(d_out.get(), d_grad.get(), d_in.get(), d_rij.get(), d_nlist.get(), nloc,
                         nnei);
  const float ms = timer.stop();
  to_host(grad_net, d_out, nslot * 4);
  if (elapsed_ms) *elapsed_ms = ms;
}

}  // namespace
}  // namespace gpu
}  // namespace deepmd_tebd

using namespace deepmd_tebd;

#define DTK_DEFINE_GPU(SUFFIX, T)                                                                 \
  extern "C" int dtk_prod_env_mat_a_gpu_##SUFFIX(                                                \
      T* em, T* em_deriv, T* rij, int* nlist, const T* coord, const int* type, int nloc,         \
      int nall, const T* box, const T* davg, const T* dstd, int ntypes, const int* sel,          \
      float rcut, float rcut_smth, float* elapsed_ms) {                                          \
    return guarded([&] {                                                                         \
      gpu::env_mat(em, em_deriv, rij, nlist, coord, type, nloc, nall, box, davg, dstd, ntypes,   \
                   sel, rcut, rcut_smth, elapsed_ms);                                            \
    });                                                                                          \
  }                                                                                              \
  extern "C" int dtk_prod_force_a_gpu_##SUFFIX(T* force, const T* net_deriv, const T* in_deriv,  \
                                               const int* nlist, int nloc, int nall, int nnei,   \
                                               float* elapsed_ms) {                              \
    return guarded(                                                                              \
        [&] { gpu::force(force, net_deriv, in_deriv, nlist, nloc, nall, nnei, elapsed_ms); });   \
  }                                                                                              \
  extern "C" int dtk_prod_virial_a_gpu_##SUFFIX(T* virial, T* atom_virial, const T* net_deriv,   \
                                                const T* in_deriv, const T* rij,                 \
                                                const int* nlist, int nloc, int nall, int nnei,  \
                                                float* elapsed_ms) {                             \
    return guarded([&] {                                                                         \
      gpu::virial(virial, atom_virial, net_deriv, in_deriv, rij, nlist, nloc, nall, nnei,        \
                  elapsed_ms);                                                                   \
    });                                                                                          \
  }                                                                                              \
  extern "C" int dtk_prod_force_grad_a_gpu_##SUFFIX(T* grad_net, const T* grad,                  \
                                                    const T* in_deriv, const int* nlist,         \
                                                    int nloc, int nall, int nnei,                \
                                                    float* elapsed_ms) {                         \
    return guarded([&] {                                                                         \
      gpu::force_grad(grad_net, grad, in_deriv, nlist, nloc, nall, nnei, elapsed_ms);            \
    });                                                                                          \
  }                                                                                              \
  extern "C" int dtk_prod_virial_grad_a_gpu_##SUFFIX(T* grad_net, const T* grad,                 \
                                                     const T* in_deriv, const T* rij,            \
                                                     const int* nlist, int nloc, int nnei,       \
                                                     float* elapsed_ms) {                        \
    return guarded([&] {                                                                         \
      gpu::virial_grad(grad_net, grad, in_deriv, rij, nlist, nloc, nnei, elapsed_ms);            \
    });                                                                                          \
  }

DTK_DEFINE_GPU(d, double)
DTK_DEFINE_GPU(f, float)
