#include "prod_virial.h"

#include "product_slot.h"
#include "scatter.h"

namespace deepmd_tebd {

template <typename T>
void prod_virial_a_cpu(T* virial, T* atom_virial, const T* net_deriv, const T* in_deriv,
                       const T* rij, const int* nlist, int nloc, int nall, int nnei) {
  const long long ndescrpt = static_cast<long long>(nnei) * 4;
  scatter_over_centres(atom_virial, 9LL * nall, nloc, [&](T* av, int i0, int i1) {
    for (int i = i0; i < i1; ++i) {
      const T* g = net_deriv + i * ndescrpt;
      const T* dd = in_deriv + i * ndescrpt * 3;
      const T* rr = rij + static_cast<long long>(i) * nnei * 3;
      const int* nl = nlist + static_cast<long long>(i) * nnei;
      for (int jj = 0; jj < nnei; ++jj) {
        const int j = nl[jj];
        if (j < 0) continue;
        T c[3];  // sum_a g_a * in_deriv[a, d0]
        slot_force(c, g + 4 * jj, dd + 12 * jj);
        for (int d0 = 0; d0 < 3; ++d0)
          for (int d1 = 0; d1 < 3; ++d1) av[9 * j + 3 * d0 + d1] += c[d0] * rr[3 * jj + d1];
      }
    }
  });
  for (int k = 0; k < 9; ++k) virial[k] = T(0);
  for (int j = 0; j < nall; ++j)
    for (int k = 0; k < 9; ++k) virial[k] += atom_virial[9 * j + k];
}

template <typename T>
void prod_virial_grad_a_cpu(T* grad_net, const T* grad, const T* in_deriv, const T* rij,
                            const int* nlist, int nloc, int nnei) {
  const long long ndescrpt = static_cast<long long>(nnei) * 4;
#pragma omp parallel for schedule(static)
  for (int i = 0; i < nloc; ++i) {
    const T* dd = in_deriv + i * ndescrpt * 3;
    const T* rr = rij + static_cast<long long>(i) * nnei * 3;
    const int* nl = nlist + static_cast<long long>(i) * nnei;
    T* out = grad_net + i * ndescrpt;
    for (int jj = 0; jj < nnei; ++jj)
      slot_virial_grad(out + 4 * jj, grad, rr + 3 * jj, nl[jj] >= 0, dd + 12 * jj);
  }
}

DTK_PROD_VIRIAL_KERNELS(template, cpu, DTK_CPU_LEAD, float)
DTK_PROD_VIRIAL_KERNELS(template, cpu, DTK_CPU_LEAD, double)

}  // namespace deepmd_tebd
