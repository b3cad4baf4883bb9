#include "prod_virial.h"

#include <vector>

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
        T c[3] = {T(0), T(0), T(0)};  // sum_a g_a * in_deriv[a, d0]
        for (int a = 4 * jj; a < 4 * jj + 4; ++a)
          for (int d = 0; d < 3; ++d) c[d] += g[a] * dd[3 * a + d];
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
    for (int jj = 0; jj < nnei; ++jj) {
      T w[3];  // w[d0] = sum_d1 grad[d0][d1] * rij[d1]
      for (int d0 = 0; d0 < 3; ++d0)
        w[d0] = grad[3 * d0] * rr[3 * jj] + grad[3 * d0 + 1] * rr[3 * jj + 1] +
                grad[3 * d0 + 2] * rr[3 * jj + 2];
      const bool filled = nl[jj] >= 0;
      for (int a = 4 * jj; a < 4 * jj + 4; ++a)
        out[a] = filled ? w[0] * dd[3 * a] + w[1] * dd[3 * a + 1] + w[2] * dd[3 * a + 2] : T(0);
    }
  }
}

template void prod_virial_a_cpu<float>(float*, float*, const float*, const float*, const float*,
                                       const int*, int, int, int);
template void prod_virial_a_cpu<double>(double*, double*, const double*, const double*,
                                        const double*, const int*, int, int, int);
template void prod_virial_grad_a_cpu<float>(float*, const float*, const float*, const float*,
                                            const int*, int, int);
template void prod_virial_grad_a_cpu<double>(double*, const double*, const double*, const double*,
                                             const int*, int, int);

}  // namespace deepmd_tebd
