// CUDA twins of prod_virial_a_cpu and prod_virial_grad_a_cpu (prod_virial.cc): device pointers,
// nframes frames per call in one launch per stage, every launch and memset on ctx.stream,
// temporaries from the caller's allocator.
#include <algorithm>

#include "device_utils.cuh"
#include "prod_virial.h"
#include "product_slot.h"

namespace deepmd_tebd {
namespace gpu {
namespace {

// One thread per (frame, centre, slot) with a neighbour j: atom_virial[j] += c (x) rij, where
// c = sum_a g[a] * in_deriv[a, :] over the slot's four entries (slot_force, as on the CPU).
template <typename T>
__global__ void atom_virial_kernel(T* atom_virial, const T* net_deriv, const T* in_deriv,
                                   const T* rij, const int* nlist, long long total,
                                   long long frame_slots, int nall) {
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
       idx < total; idx += static_cast<long long>(gridDim.x) * blockDim.x) {
    const int j = nlist[idx];
    if (j < 0) continue;
    const long long f = idx / frame_slots;
    const T* g = net_deriv + 4 * idx;
    const T* dd = in_deriv + 12 * idx;
    const T* rr = rij + 3 * idx;
    T c[3];
    slot_force(c, g, dd);
    T* av = atom_virial + 9 * (static_cast<long long>(nall) * f + j);
    for (int d0 = 0; d0 < 3; ++d0)
      for (int d1 = 0; d1 < 3; ++d1) atomicAdd(av + 3 * d0 + d1, c[d0] * rr[d1]);
  }
}

// For frame y = blockIdx.y: out[9 * (y * gridDim.x + blockIdx.x) + k] = sum over this block's
// rows r of rows[9 * (y * nrows + r) + k]. kBlock threads; a fixed tree, so the result does not
// depend on timing.
template <typename T>
__global__ void sum_rows9_kernel(T* out, const T* rows, long long nrows) {
  __shared__ T sh[kBlock];
  const T* frame_rows = rows + 9LL * nrows * blockIdx.y;
  T acc[9];
  for (int k = 0; k < 9; ++k) acc[k] = T(0);
  for (long long r = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; r < nrows;
       r += static_cast<long long>(gridDim.x) * blockDim.x)
    for (int k = 0; k < 9; ++k) acc[k] += frame_rows[9 * r + k];
  const int t = threadIdx.x;
  for (int k = 0; k < 9; ++k) {
    sh[t] = acc[k];
    __syncthreads();
    for (int stride = kBlock / 2; stride > 0; stride >>= 1) {
      if (t < stride) sh[t] += sh[t + stride];
      __syncthreads();
    }
    if (t == 0) out[9 * (static_cast<long long>(blockIdx.y) * gridDim.x + blockIdx.x) + k] = sh[0];
    __syncthreads();  // sh is reused for the next k
  }
}

// One thread per (frame, centre, slot): the same arithmetic (slot_virial_grad) as
// prod_virial_grad_a_cpu; grad is [nframes, 9].
template <typename T>
__global__ void virial_grad_kernel(T* grad_net, const T* grad, const T* in_deriv, const T* rij,
                                   const int* nlist, long long total, long long frame_slots) {
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
       idx < total; idx += static_cast<long long>(gridDim.x) * blockDim.x) {
    slot_virial_grad(grad_net + 4 * idx, grad + 9 * (idx / frame_slots), rij + 3 * idx,
                     nlist[idx] >= 0, in_deriv + 12 * idx);
  }
}

}  // namespace
}  // namespace gpu

template <typename T>
void prod_virial_a_gpu(const dtk_gpu_context& ctx, int nframes, T* virial, T* atom_virial,
                       const T* net_deriv, const T* in_deriv, const T* rij, const int* nlist,
                       int nloc, int nall, int nnei) {
  using namespace gpu;
  if (nframes <= 0) return;
  fill_bytes_async(ctx, atom_virial, 0, 9 * static_cast<size_t>(nall) * nframes);
  const long long frame_slots = static_cast<long long>(nloc) * nnei;
  const long long total = frame_slots * nframes;
  if (total > 0) {
    atom_virial_kernel<T><<<grid_for(total), kBlock, 0, ctx.stream>>>(
        atom_virial, net_deriv, in_deriv, rij, nlist, total, frame_slots, nall);
    check_launch("atom_virial_kernel");
  }
  // virial = sum over atoms of atom_virial, per frame: per-block partial sums, then one block
  // over them; frames along the grid's y dimension, at most kMaxGridY per launch.
  constexpr int kMaxGridY = 65535;
  const unsigned nparts = nall > 0 ? std::min(grid_for(nall), 1024u) : 1u;
  const int chunk = std::min(nframes, kMaxGridY);
  T* partial = device_alloc<T>(ctx, 9 * static_cast<size_t>(nparts) * chunk, "virial partials");
  for (int f0 = 0; f0 < nframes; f0 += chunk) {
    const int nf = std::min(chunk, nframes - f0);
    sum_rows9_kernel<T><<<dim3(nparts, nf), kBlock, 0, ctx.stream>>>(
        partial, atom_virial + 9LL * nall * f0, nall > 0 ? nall : 0);
    check_launch("sum_rows9_kernel");
    sum_rows9_kernel<T><<<dim3(1, nf), kBlock, 0, ctx.stream>>>(virial + 9LL * f0, partial,
                                                                nparts);
    check_launch("sum_rows9_kernel");
  }
}

template <typename T>
void prod_virial_grad_a_gpu(const dtk_gpu_context& ctx, int nframes, T* grad_net, const T* grad,
                            const T* in_deriv, const T* rij, const int* nlist, int nloc,
                            int nnei) {
  using namespace gpu;
  const long long frame_slots = static_cast<long long>(nloc) * nnei;
  const long long total = frame_slots * (nframes > 0 ? nframes : 0);
  if (total <= 0) return;
  virial_grad_kernel<T><<<grid_for(total), kBlock, 0, ctx.stream>>>(grad_net, grad, in_deriv, rij,
                                                                    nlist, total, frame_slots);
  check_launch("virial_grad_kernel");
}

DTK_PROD_VIRIAL_KERNELS(template, gpu, DTK_GPU_LEAD, float)
DTK_PROD_VIRIAL_KERNELS(template, gpu, DTK_GPU_LEAD, double)

}  // namespace deepmd_tebd
