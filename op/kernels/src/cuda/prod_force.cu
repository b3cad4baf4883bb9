// CUDA twins of prod_force_a_cpu and prod_force_grad_a_cpu (prod_force.cc). Device pointers.
#include "device_utils.cuh"
#include "prod_force.h"
#include "product_slot.h"

namespace deepmd_tebd {
namespace gpu {
namespace {

// One warp per centre i; lane l handles slots l, l+32, ... For each slot the contribution
// c = sum_a g[a] * in_deriv[a, :] (a over the slot's four entries, in the CPU's order) is added
// to the neighbour j and subtracted from the centre. The centre's share is summed over the warp
// first, so each centre costs three atomics instead of 3 * nnei.
template <typename T>
__global__ void force_kernel(T* force, const T* net_deriv, const T* in_deriv, const int* nlist,
                             int nloc, int nnei) {
  const int lane = threadIdx.x & 31;
  const long long nwarps = static_cast<long long>(gridDim.x) * kWarpsPerBlock;
  for (long long i = static_cast<long long>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
       i < nloc; i += nwarps) {
    const T* g = net_deriv + i * nnei * 4;
    const T* dd = in_deriv + i * nnei * 12;
    const int* nl = nlist + i * nnei;
    T fi[3] = {T(0), T(0), T(0)};
    for (int jj = lane; jj < nnei; jj += 32) {
      T c[3];
      slot_force(c, g + 4 * jj, dd + 12 * jj);
      for (int d = 0; d < 3; ++d) fi[d] += c[d];
      const int j = nl[jj];
      if (j >= 0)
        for (int d = 0; d < 3; ++d) atomicAdd(force + 3 * static_cast<long long>(j) + d, c[d]);
    }
    for (int d = 0; d < 3; ++d) fi[d] = warp_sum(fi[d]);
    if (lane == 0)
      for (int d = 0; d < 3; ++d) atomicAdd(force + 3 * i + d, -fi[d]);
  }
}

// One thread per (centre, slot): the same arithmetic (slot_force_grad) as prod_force_grad_a_cpu.
template <typename T>
__global__ void force_grad_kernel(T* grad_net, const T* grad, const T* in_deriv,
                                  const int* nlist, int nloc, int nnei) {
  const long long total = static_cast<long long>(nloc) * nnei;
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
       idx < total; idx += static_cast<long long>(gridDim.x) * blockDim.x) {
    const long long i = idx / nnei;
    const int j = nlist[idx];
    slot_force_grad(grad_net + 4 * idx, grad + 3 * i,
                    j >= 0 ? grad + 3 * static_cast<long long>(j) : nullptr, in_deriv + 12 * idx);
  }
}

}  // namespace
}  // namespace gpu

template <typename T>
void prod_force_a_gpu(T* force, const T* net_deriv, const T* in_deriv, const int* nlist, int nloc,
                      int nall, int nnei) {
  using namespace gpu;
  if (nall > 0)
    check(cudaMemsetAsync(force, 0, 3 * static_cast<size_t>(nall) * sizeof(T)), "cudaMemsetAsync");
  if (nloc <= 0 || nnei <= 0) return;
  force_kernel<T><<<grid_for_warps(nloc), kWarpBlock>>>(force, net_deriv, in_deriv, nlist, nloc,
                                                        nnei);
  check_launch("force_kernel");
}

template <typename T>
void prod_force_grad_a_gpu(T* grad_net, const T* grad, const T* in_deriv, const int* nlist,
                           int nloc, int nnei) {
  using namespace gpu;
  const long long total = static_cast<long long>(nloc) * nnei;
  if (total <= 0) return;
  force_grad_kernel<T><<<grid_for(total), kBlock>>>(grad_net, grad, in_deriv, nlist, nloc, nnei);
  check_launch("force_grad_kernel");
}

DTK_PROD_FORCE_KERNELS(template, gpu, float)
DTK_PROD_FORCE_KERNELS(template, gpu, double)

}  // namespace deepmd_tebd
