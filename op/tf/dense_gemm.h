// Dense matrix products for the training step's own kernels, on the calling thread: `gemm`,
// and `thin_product` for products with a dimension of at most kThin (the contractions with the
// environment matrix's four columns), which OpenBLAS runs slowly; `for_group_runs` cuts an
// atom's rows into the runs of one contraction group that such products take.
//
// gemm:
//   c = op(a) op(b) + beta c       (row-major; op: the transpose where trans_a / trans_b;
//                                   a [m, k] or [k, m] with row stride lda, b likewise with ldb,
//                                   c [m, n] with row stride ldc; beta 0 or 1)
// The kernels spread their work over TensorFlow's CPU threads and call this once per piece.
// It is OpenBLAS's dgemm / sgemm (the scipy-openblas32 package, which setup.py links), held to
// the calling thread: OpenBLAS's own threads stay idle. Its kernels run the training step's
// float64 shapes about 1.4x as fast as Eigen's products.
#ifndef DEEPMD_TEBD_OP_TF_DENSE_GEMM_H_
#define DEEPMD_TEBD_OP_TF_DENSE_GEMM_H_

#include <cblas.h>  // scipy-openblas32's: every symbol prefixed scipy_

#include <algorithm>
#include <cstdint>

namespace deepmd_tebd {

inline void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, blasint m, blasint n, blasint k,
                      const double* a, blasint lda, const double* b, blasint ldb, double beta,
                      double* c, blasint ldc) {
  scipy_cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, 1.0, a, lda, b, ldb, beta, c, ldc);
}

inline void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, blasint m, blasint n, blasint k,
                      const float* a, blasint lda, const float* b, blasint ldb, float beta,
                      float* c, blasint ldc) {
  scipy_cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
}

template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda,
          const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  // the first product of the process sets OpenBLAS's thread count to one (thread-safe static)
  static const bool one_thread = (scipy_openblas_set_num_threads(1), true);
  (void)one_thread;
  if (m == 0 || n == 0) return;
  if (k == 0) {  // an empty sum: c = beta c
    if (beta == T(0))
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = T(0);
    return;
  }
  blas_gemm(trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
            static_cast<blasint>(m), static_cast<blasint>(n), static_cast<blasint>(k), a,
            static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c,
            static_cast<blasint>(ldc));
}

constexpr int64_t kThin = 4;

// z = op(x) op(y) (z [m, n] row-major; add: z += op(x) op(y)) where one of m, k, n is at most
// kThin; false (nothing done) for other shapes. X(p, q) and Y(q, j) read op(x) and op(y).
template <typename T>
bool thin_product(bool adj_x, bool adj_y, int64_t m, int64_t n, int64_t k, const T* x,
                  int64_t lda, const T* y, int64_t ldb, T* __restrict z, bool add = false) {
  auto X = [=](int64_t p, int64_t q) { return adj_x ? x[q * lda + p] : x[p * lda + q]; };
  if (!adj_y && k <= kThin) {  // few rows of y: each row of z written once, y kept in cache
    for (int64_t p = 0; p < m; ++p) {
      T* __restrict zp = z + p * n;
      if (k == 0 && !add) std::fill(zp, zp + n, T(0));
      for (int64_t q = 0; q < k; ++q) {
        const T w = X(p, q);
        const T* __restrict yq = y + q * ldb;
        if (q == 0 && !add) {
#pragma omp simd
          for (int64_t j = 0; j < n; ++j) zp[j] = w * yq[j];
        } else {
#pragma omp simd
          for (int64_t j = 0; j < n; ++j) zp[j] += w * yq[j];
        }
      }
    }
    return true;
  }
  if (!adj_y && m <= kThin) {  // few rows of z, kept in cache: each row of y read once
    if (!add) std::fill(z, z + m * n, T(0));
    for (int64_t q = 0; q < k; ++q) {
      const T* __restrict yq = y + q * ldb;
      for (int64_t p = 0; p < m; ++p) {
        const T w = X(p, q);
        T* __restrict zp = z + p * n;
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) zp[j] += w * yq[j];
      }
    }
    return true;
  }
  if (adj_y && !adj_x && n <= kThin) {  // each entry of z a dot product of two rows
    for (int64_t p = 0; p < m; ++p)
      for (int64_t i = 0; i < n; ++i) {
        const T* __restrict xp = x + p * lda;
        const T* __restrict yi = y + i * ldb;
        T sum = T(0);
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < k; ++j) sum += xp[j] * yi[j];
        z[p * n + i] = add ? z[p * n + i] + sum : sum;
      }
    return true;
  }
  return false;
}

// The rows [0, k) of one atom in runs of one contraction group: f(r0, r1, q) for each maximal
// run [r0, r1) of consecutive rows whose group is q (group null: one run of every row, q 0).
template <typename F>
void for_group_runs(const int32_t* group, int64_t k, F&& f) {
  if (group == nullptr) {
    if (k > 0) f(int64_t{0}, k, 0);
    return;
  }
  for (int64_t r0 = 0, r1 = 0; r0 < k; r0 = r1) {
    for (r1 = r0 + 1; r1 < k && group[r1] == group[r0]; ++r1) {
    }
    f(r0, r1, static_cast<int>(group[r0]));
  }
}

// Whether every entry of group [n] lies in [0, ngroups).
inline bool groups_in_range(const int32_t* group, int64_t n, int64_t ngroups) {
  for (int64_t i = 0; i < n; ++i)
    if (group[i] < 0 || group[i] >= ngroups) return false;
  return true;
}

}  // namespace deepmd_tebd

#endif  // DEEPMD_TEBD_OP_TF_DENSE_GEMM_H_
