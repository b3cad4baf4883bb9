#include "prod_force.h"

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
        T c[3] = {T(0), T(0), T(0)};
        for (int a = 4 * jj; a < 4 * jj + 4; ++a)
          for (int d = 0; d < 3; ++d) c[d] += g[a] * dd[3 * a + d];
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
                           int nloc, int nnei) {
  const long long ndescrpt = static_cast<long long>(nnei) * 4;
#pragma omp parallel for schedule(static)
  for (int i = 0; i < nloc; ++i) {
    const T* dd = in_deriv + i * ndescrpt * 3;
    const int* nl = nlist + static_cast<long long>(i) * nnei;
    T* out = grad_net + i * ndescrpt;
    for (int jj = 0; jj < nnei; ++jj) {
      const int j = nl[jj];
      T w[3];
      for (int d = 0; d < 3; ++d) w[d] = -grad[3 * i + d] + (j >= 0 ? grad[3 * j + d] : T(0));
      for (int a = 4 * jj; a < 4 * jj + 4; ++a)
        out[a] = w[0] * dd[3 * a] + w[1] * dd[3 * a + 1] + w[2] * dd[3 * a + 2];
    }
  }
}

template void prod_force_a_cpu<float>(float*, const float*, const float*, const int*, int, int, int);
template void prod_force_a_cpu<double>(double*, const double*, const double*, const int*, int, int,
                                       int);
template void prod_force_grad_a_cpu<float>(float*, const float*, const float*, const int*, int, int);
template void prod_force_grad_a_cpu<double>(double*, const double*, const double*, const int*, int,
                                            int);

}  // namespace deepmd_tebd
