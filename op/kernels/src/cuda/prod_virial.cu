// CUDA twins of prod_virial_a_cpu and prod_virial_grad_a_cpu (prod_virial.cc). Device pointers.
#include <algorithm>

#include "device_utils.cuh"
#include "prod_virial.h"
#include "product_slot.h"

namespace deepmd_tebd {
namespace gpu {
namespace {

// One thread per (centre, slot) with a neighbour j: atom_virial[j] += c (x) rij, where
// c = sum_a g[a] * in_deriv[a, :] over the slot's four entries (slot_force, as on the CPU).
template <typename T>
__global__ void atom_virial_kernel(T* atom_virial, const T* net_deriv, const T* in_deriv,
                                   const T* rij, const int* nlist, int nloc, int nnei) {
  const long long total = static_cast<long long>(nloc) * nnei;
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
       idx < total; idx += static_cast<long long>(gridDim.x) * blockDim.x) {
    const int j = nlist[idx];
    if (j < 0) continue;
    const T* g = net_deriv + 4 * idx;
    const T* dd = in_deriv + 12 * idx;
    const T* rr = rij + 3 * idx;
    T c[3];
    slot_force(c, g, dd);
    T* av = atom_virial + 9 * static_cast<long long>(j);
    for (int d0 = 0; d0 < 3; ++d0)
      for (int d1 = 0; d1 < 3; ++d1) atomicAdd(av + 3 * d0 + d1, c[d0] * rr[d1]);
  }
}

// out[9 * blockIdx.x + k] = sum over this block's rows r of rows[9 r + k]. kBlock threads;
// a fixed tree, so the result does not depend on timing.
template <typename T>
__global__ void sum_rows9_kernel(T* out, const T* rows, long long nrows) {
  __shared__ T sh[kBlock];
  T acc[9];
  for (int k = 0; k < 9; ++k) acc[k] = T(0);
  for (long long r = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; r < nrows;
       r += static_cast<long long>(gridDim.x) * blockDim.x)
    for (int k = 0; k < 9; ++k) acc[k] += rows[9 * r + k];
  const int t = threadIdx.x;
  for (int k = 0; k < 9; ++k) {
    sh[t] = acc[k];
    __syncthreads();
    for (int stride = kBlock / 2; stride > 0; stride >>= 1) {
      if (t < stride) sh[t] += sh[t + stride];
      __syncthreads();
    }
    if (t == 0) out[9 * blockIdx.x + k] = sh[0];
    __syncthreads();  // sh is reused for the next k
  }
}

// One thread per (centre, slot): the same arithmetic (slot_virial_grad) as prod_virial_grad_a_cpu.
template <typename T>
__global__ void virial_grad_kernel(T* grad_net, const T* grad, const T* in_deriv, const T* rij,
                                   const int* nlist, int nloc, int nnei) {
  const long long total = static_cast<long long>(nloc) * nnei;
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
       idx < total; idx += static_cast<long long>(gridDim.x) * blockDim.x) {
    slot_virial_grad(grad_net + 4 * idx, grad, rij + 3 * idx, nlist[idx] >= 0,
                     in_deriv + 12 * idx);
  }
}

}  // namespace
}  // namespace gpu

template <typename T>
void prod_virial_a_gpu(T* virial, T* atom_virial, const T* net_deriv, const T* in_deriv,
                       const T* rij, const int* nlist, int nloc, int nall, int nnei) {
  using namespace gpu;
  if (nall > 0)
    check(cudaMemsetAsync(atom_virial, 0, 9 * static_cast<size_t>(nall) * sizeof(T)),
          "cudaMemsetAsync");
  const long long total = static_cast<long long>(nloc) * nnei;
  if (total > 0) {
    atom_virial_kernel<T><<<grid_for(total), kBlock>>>(atom_virial, net_deriv, in_deriv, rij,
                                                       nlist, nloc, nnei);
    check_launch("atom_virial_kernel");
  }
  // virial = sum over atoms of atom_virial: per-block partial sums, then one block over them.
  const unsigned nparts = nall > 0 ? std::min(grid_for(nall), 1024u) : 1u;
  DeviceBuffer<T> partial(9 * static_cast<size_t>(nparts));
  sum_rows9_kernel<T><<<nparts, kBlock>>>(partial.get(), atom_virial, nall > 0 ? nall : 0);
  check_launch("sum_rows9_kernel");
  sum_rows9_kernel<T><<<1, kBlock>>>(virial, partial.get(), nparts);
  check_launch("sum_rows9_kernel");
}

template <typename T>
void prod_virial_grad_a_gpu(T* grad_net, const T* grad, const T* in_deriv, const T* rij,
                            const int* nlist, int nloc, int nnei) {
  using namespace gpu;
  const long long total = static_cast<long long>(nloc) * nnei;
  if (total <= 0) return;
  virial_grad_kernel<T><<<grid_for(total), kBlock>>>(grad_net, grad, in_deriv, rij, nlist, nloc,
                                                     nnei);
  check_launch("virial_grad_kernel");
}

DTK_PROD_VIRIAL_KERNELS(template, gpu, float)
DTK_PROD_VIRIAL_KERNELS(template, gpu, double)

}  // namespace deepmd_tebd
