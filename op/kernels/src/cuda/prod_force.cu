// CUDA twins of prod_force_a_cpu and prod_force_grad_a_cpu (prod_force.cc): device pointers,
// nframes frames per call in one launch, every launch and memset on ctx.stream.
#include "device_utils.cuh"
#include "prod_force.h"
#include "product_slot.h"

namespace deepmd_tebd {
namespace gpu {
namespace {

// One warp per (frame, centre i); lane l handles slots l, l+32, ... For each slot the
// contribution c = sum_a g[a] * in_deriv[a, :] (a over the slot's four entries, in the CPU's
// order) is added to the neighbour j and subtracted from the centre. The centre's share is
// summed over the warp first, so each centre costs three atomics instead of 3 * nnei.
template <typename T>
__global__ void force_kernel(T* force, const T* net_deriv, const T* in_deriv, const int* nlist,
                             long long ncentre, int nloc, int nall, int nnei) {
  const int lane = threadIdx.x & 31;
  const long long nwarps = static_cast<long long>(gridDim.x) * kWarpsPerBlock;
  for (long long c0 = static_cast<long long>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
       c0 < ncentre; c0 += nwarps) {
    const long long f = c0 / nloc;
    const long long i = c0 - f * nloc;
    T* frame_force = force + 3LL * nall * f;
    const T* g = net_deriv + c0 * nnei * 4;
    const T* dd = in_deriv + c0 * nnei * 12;
    const int* nl = nlist + c0 * nnei;
    T fi[3] = {T(0), T(0), T(0)};
    for (int jj = lane; jj < nnei; jj += 32) {
      T c[3];
      slot_force(c, g + 4 * jj, dd + 12 * jj);
      for (int d = 0; d < 3; ++d) fi[d] += c[d];
      const int j = nl[jj];
      if (j >= 0)
        for (int d = 0; d < 3; ++d)
          atomicAdd(frame_force + 3 * static_cast<long long>(j) + d, c[d]);
    }
    for (int d = 0; d < 3; ++d) fi[d] = warp_sum(fi[d]);
    if (lane == 0)
      for (int d = 0; d < 3; ++d) atomicAdd(frame_force + 3 * i + d, -fi[d]);
  }
}

// One thread per (frame, centre, slot): the same arithmetic (slot_force_grad) as
// prod_force_grad_a_cpu.
template <typename T>
__global__ void force_grad_kernel(T* grad_net, const T* grad, const T* in_deriv,
                                  const int* nlist, long long total, int nloc, int nall,
                                  int nnei) {
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
       idx < total; idx += static_cast<long long>(gridDim.x) * blockDim.x) {
    const long long c0 = idx / nnei;  // frame * nloc + centre
    const long long f = c0 / nloc;
    const T* frame_grad = grad + 3LL * nall * f;
    const int j = nlist[idx];
    slot_force_grad(grad_net + 4 * idx, frame_grad + 3 * (c0 - f * nloc),
                    j >= 0 ? frame_grad + 3 * static_cast<long long>(j) : nullptr,
                    in_deriv + 12 * idx);
  }
}

}  // namespace
}  // namespace gpu

template <typename T>
void prod_force_a_gpu(const dtk_gpu_context& ctx, int nframes, T* force, const T* net_deriv,
                      const T* in_deriv, const int* nlist, int nloc, int nall, int nnei) {
  using namespace gpu;
  if (nframes <= 0) return;
  fill_bytes_async(ctx, force, 0, 3 * static_cast<size_t>(nall) * nframes);
  const long long ncentre = static_cast<long long>(nloc) * nframes;
  if (ncentre <= 0 || nnei <= 0) return;
  force_kernel<T><<<grid_for_warps(ncentre), kWarpBlock, 0, ctx.stream>>>(
      force, net_deriv, in_deriv, nlist, ncentre, nloc, nall, nnei);
  check_launch("force_kernel");
}

template <typename T>
void prod_force_grad_a_gpu(const dtk_gpu_context& ctx, int nframes, T* grad_net, const T* grad,
                           const T* in_deriv, const int* nlist, int nloc, int nall, int nnei) {
  using namespace gpu;
  const long long total = static_cast<long long>(nloc) * nnei * (nframes > 0 ? nframes : 0);
  if (total <= 0) return;
  force_grad_kernel<T><<<grid_for(total), kBlock, 0, ctx.stream>>>(grad_net, grad, in_deriv,
                                                                   nlist, total, nloc, nall, nnei);
  check_launch("force_grad_kernel");
}

DTK_PROD_FORCE_KERNELS(template, gpu, DTK_GPU_LEAD, float)
DTK_PROD_FORCE_KERNELS(template, gpu, DTK_GPU_LEAD, double)

}  // namespace deepmd_tebd
