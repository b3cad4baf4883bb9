// CUDA twins of the tabulation kernels (tabulate.h). Every launch and memset goes to the
// caller's stream; no memory is allocated and nothing synchronises. table_info is read on the
// host (the TF kernels keep it in host memory, as DeePMD-kit does); all other pointers are
// device pointers. The arithmetic per slot is the CPU kernels' (tabulate_slot.h), in the same
// order, so both agree to the last bit under -fmad=false.
#include "device_utils.cuh"
#include "tabulate.h"
#include "tabulate_slot.h"

namespace deepmd_tebd {
namespace {

constexpr int kThreads = 128;

// The first slot of centre i that stands for the rest of the sorted padding (nnei if none).
template <typename T>
__device__ int first_padding_slot(const T* x_row, const T* em_row, int nnei, bool is_sorted) {
  __shared__ int first;
  if (threadIdx.x == 0) first = nnei;
  __syncthreads();
  for (int j = threadIdx.x; j < nnei - 1; j += blockDim.x)
    if (slot_multiplicity(x_row, em_row, j, nnei, is_sorted) != 1) atomicMin(&first, j);
  __syncthreads();
  return first;
}

// One block per centre, one thread per output channel m: out[i, :, m] (fusion) or dz_dy[i, :, m]
// (grad_grad, when h and dz_x are given) summed over the slots in order.
template <typename T>
__global__ void fusion_kernel(T* out, const T* table, TableGrid<T> grid, const T* em_x,
                              const T* em, const T* dz_x, const T* h, int nnei, int m_size,
                              bool is_sorted) {
  const long long i = blockIdx.x;
  const T* x_row = em_x + i * nnei;
  const T* em_row = em + i * nnei * 4;
  const int last = first_padding_slot(x_row, em_row, nnei, is_sorted);
  for (int m = threadIdx.x; m < m_size; m += blockDim.x) {
    T acc[4] = {T(0), T(0), T(0), T(0)};
    for (int j = 0; j < nnei && j <= last; ++j) {
      const T w = T(j == last ? nnei - j : 1);
      T dx, delta;
      const int k = locate_interval(grid, x_row[j], &dx, &delta);
      const long long slot = i * nnei + j;
      add_fusion_term(acc, table + (static_cast<long long>(k) * m_size + m) * 6, dx, delta,
                      em_row + 4 * j, w, h ? h + slot * 4 : nullptr, h ? dz_x[slot] : T(0));
    }
    for (int c = 0; c < 4; ++c) out[(i * 4 + c) * m_size + m] = acc[c];
  }
}

// One block per centre, one thread per slot: dy_dem_x and dy_dem of the slot, summed over m.
template <typename T>
__global__ void fusion_grad_kernel(T* dy_dem_x, T* dy_dem, const T* table, TableGrid<T> grid,
                                   const T* em_x, const T* em, const T* dy, int nnei,
                                   int m_size) {
  const long long i = blockIdx.x;
  const T* x_row = em_x + i * nnei;
  const T* em_row = em + i * nnei * 4;
  const int last = first_padding_slot(x_row, em_row, nnei, true);
  const T* r = dy + i * 4 * m_size;
  for (int j = threadIdx.x; j < nnei; j += blockDim.x) {
    T g_x = T(0), g_em[4] = {T(0), T(0), T(0), T(0)};
    if (j <= last) {
      T dx, delta;
      const int k = locate_interval(grid, x_row[j], &dx, &delta);
      slot_gradient(&g_x, g_em, table + static_cast<long long>(k) * m_size * 6, m_size, dx,
                    delta, em_row + 4 * j, r, T(j == last ? nnei - j : 1));
    }
    dy_dem_x[i * nnei + j] = g_x;
    for (int c = 0; c < 4; ++c) dy_dem[(i * nnei + j) * 4 + c] = g_em[c];
  }
}

template <typename T>
void zero(T* p, long long n, cudaStream_t stream) {
  if (n > 0) gpu::check(cudaMemsetAsync(p, 0, n * sizeof(T), stream), "cudaMemsetAsync");
}

}  // namespace

template <typename T>
void tabulate_fusion_se_a_gpu(T* out, const T* table, const T* table_info, const T* em_x,
                              const T* em, int nloc, int nnei, int last_layer_size,
                              cudaStream_t stream) {
  if (nloc <= 0) return;
  if (nnei <= 0) return zero(out, 4LL * nloc * last_layer_size, stream);
  fusion_kernel<T><<<nloc, kThreads, 0, stream>>>(out, table, table_grid(table_info), em_x, em,
                                                  nullptr, nullptr, nnei, last_layer_size, true);
  gpu::check_launch("tabulate_fusion_se_a");
}

template <typename T>
void tabulate_fusion_se_a_grad_gpu(T* dy_dem_x, T* dy_dem, const T* table, const T* table_info,
                                   const T* em_x, const T* em, const T* dy, int nloc, int nnei,
                                   int last_layer_size, cudaStream_t stream) {
  if (nloc <= 0 || nnei <= 0) return;
  fusion_grad_kernel<T><<<nloc, kThreads, 0, stream>>>(dy_dem_x, dy_dem, table,
                                                       table_grid(table_info), em_x, em, dy,
                                                       nnei, last_layer_size);
  gpu::check_launch("tabulate_fusion_se_a_grad");
}

template <typename T>
void tabulate_fusion_se_a_grad_grad_gpu(T* dz_dy, const T* table, const T* table_info,
                                        const T* em_x, const T* em, const T* dz_dy_dem_x,
                                        const T* dz_dy_dem, int nloc, int nnei,
                                        int last_layer_size, bool is_sorted,
                                        cudaStream_t stream) {
  if (nloc <= 0) return;
  if (nnei <= 0) return zero(dz_dy, 4LL * nloc * last_layer_size, stream);
  fusion_kernel<T><<<nloc, kThreads, 0, stream>>>(dz_dy, table, table_grid(table_info), em_x, em,
                                                  dz_dy_dem_x, dz_dy_dem, nnei, last_layer_size,
                                                  is_sorted);
  gpu::check_launch("tabulate_fusion_se_a_grad_grad");
}

DTK_TABULATE_KERNELS(template, gpu, float, DTK_GPU_STREAM)
DTK_TABULATE_KERNELS(template, gpu, double, DTK_GPU_STREAM)

}  // namespace deepmd_tebd
