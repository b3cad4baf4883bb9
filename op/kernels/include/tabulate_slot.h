// The per-slot arithmetic of the tabulation kernels, shared by the CPU and CUDA code.
#pragma once
#include <cmath>

#ifdef __CUDACC__
#define DTK_HD __host__ __device__
#else
#define DTK_HD
#endif

namespace deepmd_tebd {

// The table's grid: [lower, upper) at stride0, [upper, max) at stride1 (table_info[0..4]).
template <typename T>
struct TableGrid {
  T lower, upper, max, stride0, stride1;
};

template <typename T>
DTK_HD inline TableGrid<T> table_grid(const T* info) {
  return {info[0], info[1], info[2], info[3], info[4]};
}

// Interval of x, x's offset inside it (dx) and the distance beyond the table's edge (delta) at
// which the edge polynomial is continued linearly (DeePMD-kit 3.2: source/lib/src/tabulate.cc,
// locate_xx and locate_high_tail_xx: above max, the interval that holds the largest value below
// max, evaluated at max).
template <typename T>
DTK_HD inline int locate_interval(const TableGrid<T>& g, T x, T* dx, T* delta) {
  *delta = T(0);
  if (x < g.lower) {
    *dx = T(0);
    *delta = x - g.lower;
    return 0;
  }
  const int first = static_cast<int>((g.upper - g.lower) / g.stride0);
  if (x < g.upper) {
    const int k = static_cast<int>((x - g.lower) / g.stride0);
    *dx = x - (k * g.stride0 + g.lower);
    return k;
  }
  if (x < g.max) {
    const int k = first + static_cast<int>((x - g.upper) / g.stride1);
    *dx = x - ((k - first) * g.stride1 + g.upper);
    return k;
  }
#ifdef __CUDA_ARCH__
  const T below_max = nextafter(g.max, g.lower);
#else
  const T below_max = std::nextafter(g.max, g.lower);
#endif
  const int k = first + static_cast<int>((below_max - g.upper) / g.stride1);
  *dx = g.max - ((k - first) * g.stride1 + g.upper);
  *delta = x - g.max;
  return k;
}

// Value and first derivative of a0 + a1 x + ... + a5 x^5 (Horner, in DeePMD-kit's order).
template <typename T>
DTK_HD inline void quintic(const T* a, T x, T* value, T* slope) {
  *value = a[0] + (a[1] + (a[2] + (a[3] + (a[4] + a[5] * x) * x) * x) * x) * x;
  *slope = a[1] + (T(2) * a[2] + (T(3) * a[3] + (T(4) * a[4] + T(5) * a[5] * x) * x) * x) * x;
}

// How many slots slot j of a centre stands for: 1, or nnei - j once the sorted padding starts
// (its em_x equals the last slot's and em[1..3] are zero; DeePMD-kit's `unloop`).
template <typename T>
DTK_HD inline int slot_multiplicity(const T* em_x_row, const T* em_row, int j, int nnei,
                                    bool is_sorted) {
  const T* e = em_row + 4 * j;
  const bool padding = is_sorted && em_x_row[j] == em_x_row[nnei - 1] && e[1] == T(0) &&
                       e[2] == T(0) && e[3] == T(0);
  return padding ? nnei - j : 1;
}

// Adds one slot's share to channel m of the output: acc[c] += w P(x) em[c] (fusion; h null) or
// acc[c] += w (P(x) h[c] + dz_x P'(x) em[c]) (grad_grad). `a` holds the channel's 6 coefficients
// of the slot's interval, dx and delta locate x in it (locate_interval).
template <typename T>
DTK_HD inline void add_fusion_term(T* acc, const T* a, T dx, T delta, const T* em, T w,
                                   const T* h, T dz_x) {
  T value, slope;
  quintic(a, dx, &value, &slope);
  const T var = value + slope * delta;
  if (h == nullptr) {
    for (int c = 0; c < 4; ++c) acc[c] += w * var * em[c];
  } else {
    for (int c = 0; c < 4; ++c) acc[c] += w * (var * h[c] + dz_x * slope * em[c]);
  }
}

// The gradient of one slot: g_x = sum_m w P_m'(x) em.dy[:, m] and g_em[c] = sum_m w P_m(x)
// dy[c, m], from the coefficients `a` [M, 6] of the slot's interval and dy [4, M].
template <typename T>
DTK_HD inline void slot_gradient(T* g_x, T* g_em, const T* a, int m_size, T dx, T delta,
                                 const T* em, const T* dy, T w) {
  *g_x = T(0);
  for (int c = 0; c < 4; ++c) g_em[c] = T(0);
  for (int m = 0; m < m_size; ++m) {
    T value, slope;
    quintic(a + 6 * m, dx, &value, &slope);
    const T res = value + slope * delta;
    const T rr[4] = {dy[m], dy[m_size + m], dy[2 * m_size + m], dy[3 * m_size + m]};
    T dot = T(0);
    for (int c = 0; c < 4; ++c) dot += em[c] * rr[c];
    *g_x += slope * dot * w;
    for (int c = 0; c < 4; ++c) g_em[c] += res * rr[c] * w;
  }
}

}  // namespace deepmd_tebd
