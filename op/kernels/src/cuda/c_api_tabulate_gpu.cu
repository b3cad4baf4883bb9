// C entry points of the CUDA tabulation kernels (see c_api.h): device pointers, host
// table_info, the caller's stream.
#include "c_api.h"
#include "c_api_error.h"
#include "tabulate.h"

using namespace deepmd_tebd;

#define DTK_DEFINE_TABULATE_GPU(SUFFIX, T)                                                     \
  extern "C" int dtk_tabulate_fusion_se_a_gpu_##SUFFIX(                                        \
      T* out, const T* table, const T* table_info, const T* em_x, const T* em, int nloc,      \
      int nnei, int last_layer_size, void* stream) {                                          \
    return guarded([&] {                                                                      \
      tabulate_fusion_se_a_gpu(out, table, table_info, em_x, em, nloc, nnei, last_layer_size, \
                               static_cast<cudaStream_t>(stream));                            \
    });                                                                                       \
  }                                                                                           \
  extern "C" int dtk_tabulate_fusion_se_a_grad_gpu_##SUFFIX(                                  \
      T* dy_dem_x, T* dy_dem, const T* table, const T* table_info, const T* em_x, const T* em, \
      const T* dy, int nloc, int nnei, int last_layer_size, void* stream) {                   \
    return guarded([&] {                                                                      \
      tabulate_fusion_se_a_grad_gpu(dy_dem_x, dy_dem, table, table_info, em_x, em, dy, nloc,  \
                                    nnei, last_layer_size, static_cast<cudaStream_t>(stream)); \
    });                                                                                       \
  }                                                                                           \
  extern "C" int dtk_tabulate_fusion_se_a_grad_grad_gpu_##SUFFIX(                             \
      T* dz_dy, const T* table, const T* table_info, const T* em_x, const T* em,              \
      const T* dz_dy_dem_x, const T* dz_dy_dem, int nloc, int nnei, int last_layer_size,      \
      int is_sorted, void* stream) {                                                          \
    return guarded([&] {                                                                      \
      tabulate_fusion_se_a_grad_grad_gpu(dz_dy, table, table_info, em_x, em, dz_dy_dem_x,     \
                                         dz_dy_dem, nloc, nnei, last_layer_size,              \
                                         is_sorted != 0, static_cast<cudaStream_t>(stream));  \
    });                                                                                       \
  }

DTK_DEFINE_TABULATE_GPU(d, double)
DTK_DEFINE_TABULATE_GPU(f, float)
