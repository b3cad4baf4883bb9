#include "prod_force.h"

#include "product_slot.h"
#include "scatter.h"

namespace deepmd_tebd {

template <typename T>
void prod_force_a_cpu(T* force, const T* net_deriv, const T* in_deriv, const int* nlist, int nloc,
                      int nall, int nnei) {
  const long long ndescrpt = static_cast<long long>(nnei) * 4;
  scatter_over_centres(force, 3LL * nall, nloc, [&](T* f, int i0, int i1) {
    for (int i = i0; i < i1; ++i) {
      const T* g = net_deriv + i * ndescrpt;
      const T* dd = in_deriv + i * ndescrpt * 3;
      const int* nl = nlist + static_cast<long long>(i) * nnei;
      for (int jj = 0; jj < nnei; ++jj) {
        T c[3];
        slot_force(c, g + 4 * jj, dd + 12 * jj);
        for (int d = 0; d < 3; ++d) f[3 * i + d] -= c[d];
        const int j = nl[jj];
        if (j < 0) continue;
        for (int d = 0; d < 3; ++d) f[3 * j + d] += c[d];
      }
    }
  });
}

template <typename T>
void prod_force_grad_a_cpu(T* grad_net, const T* grad, const T* in_deriv, const int* nlist,
                           int nloc, int /*nall*/, int nnei) {
  const long long ndescrpt = static_cast<long long>(nnei) * 4;
#pragma omp parallel for schedule(static)
  for (int i = 0; i < nloc; ++i) {
    const T* dd = in_deriv + i * ndescrpt * 3;
    const int* nl = nlist + static_cast<long long>(i) * nnei;
    T* out = grad_net + i * ndescrpt;
    for (int jj = 0; jj < nnei; ++jj) {
      const int j = nl[jj];
      slot_force_grad(out + 4 * jj, grad + 3 * i, j >= 0 ? grad + 3 * j : nullptr, dd + 12 * jj);
    }
  }
}

DTK_PROD_FORCE_KERNELS(template, cpu, DTK_CPU_LEAD, float)
DTK_PROD_FORCE_KERNELS(template, cpu, DTK_CPU_LEAD, double)

}  // namespace deepmd_tebd
