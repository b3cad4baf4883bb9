// C entry points of the CPU tabulation kernels (see c_api.h).
#include "c_api.h"
#include "c_api_error.h"
#include "tabulate.h"

using namespace deepmd_tebd;

#define DTK_DEFINE_TABULATE_CPU(SUFFIX, T)                                                     \
  extern "C" int dtk_tabulate_fusion_se_a_cpu_##SUFFIX(T* out, const T* table,                \
                                                       const T* table_info, const T* em_x,    \
                                                       const T* em, int nloc, int nnei,       \
                                                       int last_layer_size) {                 \
    return guarded([&] {                                                                      \
      tabulate_fusion_se_a_cpu(out, table, table_info, em_x, em, nloc, nnei, last_layer_size); \
    });                                                                                       \
  }                                                                                           \
  extern "C" int dtk_tabulate_fusion_se_a_grad_cpu_##SUFFIX(                                  \
      T* dy_dem_x, T* dy_dem, const T* table, const T* table_info, const T* em_x, const T* em, \
      const T* dy, int nloc, int nnei, int last_layer_size) {                                 \
    return guarded([&] {                                                                      \
      tabulate_fusion_se_a_grad_cpu(dy_dem_x, dy_dem, table, table_info, em_x, em, dy, nloc,  \
                                    nnei, last_layer_size);                                   \
    });                                                                                       \
  }                                                                                           \
  extern "C" int dtk_tabulate_fusion_se_a_grad_grad_cpu_##SUFFIX(                             \
      T* dz_dy, const T* table, const T* table_info, const T* em_x, const T* em,              \
      const T* dz_dy_dem_x, const T* dz_dy_dem, int nloc, int nnei, int last_layer_size,      \
      int is_sorted) {                                                                        \
    return guarded([&] {                                                                      \
      tabulate_fusion_se_a_grad_grad_cpu(dz_dy, table, table_info, em_x, em, dz_dy_dem_x,     \
                                         dz_dy_dem, nloc, nnei, last_layer_size,              \
                                         is_sorted != 0);                                     \
    });                                                                                       \
  }

DTK_DEFINE_TABULATE_CPU(d, double)
DTK_DEFINE_TABULATE_CPU(f, float)
