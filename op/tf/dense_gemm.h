// One dense matrix product for the training step's own kernels, on the calling thread:
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

}  // namespace deepmd_tebd

#endif  // DEEPMD_TEBD_OP_TF_DENSE_GEMM_H_
