// TabulateFusionSeA and its two gradients: the embedding net of a compressed se_e2_a model
// evaluated from a table of fifth-order polynomials and contracted with the environment matrix.
#pragma once

// The CUDA runtime's stream type, declared here so that CPU-only code can include this header.
typedef struct CUstream_st* cudaStream_t;

namespace deepmd_tebd {

// The kernels of one device, one frame each (DeePMD-kit: source/lib/src/tabulate.cc,
// tabulate_fusion_se_a_cpu, _grad_cpu, _grad_grad_cpu). DEV is cpu (host pointers) or gpu (CUDA
// device pointers; the CUDA build only) and STREAM is empty for cpu, `, cudaStream_t stream` for
// gpu: every launch and memset of a gpu kernel goes to that stream, and none allocates memory.
// PREFIX is `template <typename T>` for the declarations and `template` for the explicit
// instantiations (T = float, double) in tabulate.cc and cuda/tabulate.cu.
//   table       [nspline, 6*M]: coefficients a0..a5 of interval k, output channel m at 6*m + p
//   table_info  [6]: lower, upper, max, stride0, stride1, (check frequency, unused)
//   em_x        [nloc*nnei]: the table input (the first column of the environment matrix)
//   em          [nloc, nnei, 4]: the environment matrix
//   fusion          -> out [nloc, 4, M] = sum_j em[i, j, :]^T P_m(em_x[i, j])
//   fusion_grad     dy [nloc, 4, M] -> dy_dem_x [nloc*nnei], dy_dem [nloc, nnei, 4]
//   fusion_grad_grad  dz_dy_dem_x, dz_dy_dem (shaped like em_x, em) -> dz_dy [nloc, 4, M]
// Below `lower` and above `max` the polynomial of the first and last interval is continued
// linearly (value and slope at the table's edge). Neighbour slots are sorted with the padding
// last: once a slot repeats the last slot's em_x with em[1..3] = 0, it stands for every remaining
// slot (is_sorted; always for fusion and fusion_grad, as in DeePMD-kit).
#define DTK_TABULATE_KERNELS(PREFIX, DEV, T, STREAM)                                            \
  PREFIX void tabulate_fusion_se_a_##DEV(T* out, const T* table, const T* table_info,          \
                                         const T* em_x, const T* em, int nloc, int nnei,       \
                                         int last_layer_size STREAM);                          \
  PREFIX void tabulate_fusion_se_a_grad_##DEV(T* dy_dem_x, T* dy_dem, const T* table,          \
                                              const T* table_info, const T* em_x, const T* em, \
                                              const T* dy, int nloc, int nnei,                 \
                                              int last_layer_size STREAM);                     \
  PREFIX void tabulate_fusion_se_a_grad_grad_##DEV(                                            \
      T* dz_dy, const T* table, const T* table_info, const T* em_x, const T* em,               \
      const T* dz_dy_dem_x, const T* dz_dy_dem, int nloc, int nnei, int last_layer_size,       \
      bool is_sorted STREAM);

#define DTK_NO_STREAM
#define DTK_GPU_STREAM , cudaStream_t stream
// tabulate_fusion_se_a_cpu, _grad_cpu, _grad_grad_cpu
DTK_TABULATE_KERNELS(template <typename T>, cpu, T, DTK_NO_STREAM)
// tabulate_fusion_se_a_gpu, _grad_gpu, _grad_grad_gpu
DTK_TABULATE_KERNELS(template <typename T>, gpu, T, DTK_GPU_STREAM)

}  // namespace deepmd_tebd
