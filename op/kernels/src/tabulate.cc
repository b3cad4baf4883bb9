#include "tabulate.h"

#include <algorithm>

#include "tabulate_slot.h"

namespace deepmd_tebd {

// The loop shared by the three kernels: for each centre i (in parallel) and each slot j up to
// the sorted padding, slot(i, j, w, k, dx, delta) with w the slot's multiplicity and k, dx,
// delta its table interval (locate_interval).
template <typename T, class Slot>
void for_each_slot(const T* table_info, const T* em_x, const T* em, int nloc, int nnei,
                   bool is_sorted, Slot&& slot) {
  const TableGrid<T> grid = table_grid(table_info);
#pragma omp parallel for schedule(static)
  for (int i = 0; i < nloc; ++i) {
    const T* x_row = em_x + static_cast<long long>(i) * nnei;
    const T* em_row = em + static_cast<long long>(i) * nnei * 4;
    for (int j = 0; j < nnei; ++j) {
      const int w = slot_multiplicity(x_row, em_row, j, nnei, is_sorted);
      T dx, delta;
      const int k = locate_interval(grid, x_row[j], &dx, &delta);
      slot(i, j, T(w), k, dx, delta);
      if (w != 1) break;  // this slot stood for the rest of the padding
    }
  }
}

// fusion (h null) and grad_grad: out[i, c, m] = sum over slots of add_fusion_term.
template <typename T>
void fusion_cpu(T* out, const T* table, const T* table_info, const T* em_x, const T* em,
                const T* dz_dy_dem_x, const T* dz_dy_dem, int nloc, int nnei, int m_size,
                bool is_sorted) {
  std::fill(out, out + static_cast<long long>(nloc) * 4 * m_size, T(0));
  if (nnei <= 0) return;
  for_each_slot(table_info, em_x, em, nloc, nnei, is_sorted,
                [&](int i, int j, T w, int k, T dx, T delta) {
                  const long long slot = static_cast<long long>(i) * nnei + j;
                  const T* h = dz_dy_dem ? dz_dy_dem + slot * 4 : nullptr;
                  const T dz_x = dz_dy_dem_x ? dz_dy_dem_x[slot] : T(0);
                  T* o = out + static_cast<long long>(i) * 4 * m_size;
                  const T* a = table + static_cast<long long>(k) * m_size * 6;
                  for (int m = 0; m < m_size; ++m) {
                    T acc[4] = {o[m], o[m_size + m], o[2 * m_size + m], o[3 * m_size + m]};
                    add_fusion_term(acc, a + 6 * m, dx, delta, em + slot * 4, w, h, dz_x);
                    for (int c = 0; c < 4; ++c) o[c * m_size + m] = acc[c];
                  }
                });
}

template <typename T>
void tabulate_fusion_se_a_cpu(T* out, const T* table, const T* table_info, const T* em_x,
                              const T* em, int nloc, int nnei, int last_layer_size) {
  fusion_cpu<T>(out, table, table_info, em_x, em, nullptr, nullptr, nloc, nnei, last_layer_size,
                true);
}

template <typename T>
void tabulate_fusion_se_a_grad_cpu(T* dy_dem_x, T* dy_dem, const T* table, const T* table_info,
                                   const T* em_x, const T* em, const T* dy, int nloc, int nnei,
                                   int last_layer_size) {
  const int m_size = last_layer_size;
  std::fill(dy_dem_x, dy_dem_x + static_cast<long long>(nloc) * nnei, T(0));
  std::fill(dy_dem, dy_dem + static_cast<long long>(nloc) * nnei * 4, T(0));
  if (nnei <= 0) return;
  for_each_slot(table_info, em_x, em, nloc, nnei, true,
                [&](int i, int j, T w, int k, T dx, T delta) {
                  const long long slot = static_cast<long long>(i) * nnei + j;
                  slot_gradient(dy_dem_x + slot, dy_dem + slot * 4,
                                table + static_cast<long long>(k) * m_size * 6, m_size, dx, delta,
                                em + slot * 4, dy + static_cast<long long>(i) * 4 * m_size, w);
                });
}

template <typename T>
void tabulate_fusion_se_a_grad_grad_cpu(T* dz_dy, const T* table, const T* table_info,
                                        const T* em_x, const T* em, const T* dz_dy_dem_x,
                                        const T* dz_dy_dem, int nloc, int nnei,
                                        int last_layer_size, bool is_sorted) {
  fusion_cpu<T>(dz_dy, table, table_info, em_x, em, dz_dy_dem_x, dz_dy_dem, nloc, nnei,
                last_layer_size, is_sorted);
}

DTK_TABULATE_KERNELS(template, cpu, float, DTK_NO_STREAM)
DTK_TABULATE_KERNELS(template, cpu, double, DTK_NO_STREAM)

}  // namespace deepmd_tebd
