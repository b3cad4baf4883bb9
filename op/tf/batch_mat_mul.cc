// The training step's dense products on the CPU, on OpenBLAS (dense_gemm.h). They serve the
// training step only: frozen graphs keep BatchMatMulV2 and MatMul, which every TensorFlow
// runtime has (deepmd_tebd/model/kernels.py).
//
// TebdBatchMatMul: z[b] = op(x[b]) op(y[b]) for every b of a batch of matrices (op: the matrix
// or its transpose). TensorFlow's BatchMatMulV2 computes the same products; for the small
// float64 matrices of DPA-1's attention and of the contraction R~^T G (one [S, S], [S, d] or
// [S, 4] product per atom) it runs at about half the speed of a dense product. Here each matrix
// is one dense product, the batch spread over TensorFlow's CPU threads. A matrix product with a
// dimension of at most kThin (the contraction's 4 and its gradients) runs on thin_product's
// loops instead, whose innermost loop is a vectorised pass over a contiguous row: a dense
// product's packing costs more than such a product's arithmetic.
//
// TebdMatMul: z = op(x) op(y) of two matrices, TensorFlow's MatMul: the rows of z cut into one
// piece per CPU thread, each piece one dense product. For the nets' float64 products (the
// attention's [atoms x sel, 100] x [100, 384] projections, the fitting nets' [atoms, 240] x
// [240, 240]) and their gradients it is 1.2-1.7x as fast as MatMul's Eigen contraction.
#include <algorithm>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "dense_gemm.h"

namespace deepmd_tebd {
namespace {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Status;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::shape_inference::DimensionHandle;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

// op(x) op(y) of inputs of rank `rank` (2: matrices; 3: batches of matrices).
template <int rank>
Status product_shape(InferenceContext* c) {
  ShapeHandle x, y;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), rank, &x));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), rank, &y));
  bool adj_x, adj_y;
  TF_RETURN_IF_ERROR(c->GetAttr("adj_x", &adj_x));
  TF_RETURN_IF_ERROR(c->GetAttr("adj_y", &adj_y));
  const int r = rank - 2;  // the first matrix axis
  DimensionHandle batch, inner;
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(x, r + (adj_x ? 0 : 1)), c->Dim(y, r + (adj_y ? 1 : 0)),
                              &inner));
  std::vector<DimensionHandle> dims;
  if (rank == 3) {
    TF_RETURN_IF_ERROR(c->Merge(c->Dim(x, 0), c->Dim(y, 0), &batch));
    dims.push_back(batch);
  }
  dims.push_back(c->Dim(x, r + (adj_x ? 1 : 0)));
  dims.push_back(c->Dim(y, r + (adj_y ? 0 : 1)));
  c->set_output(0, c->MakeShape(dims));
  return Status();
}

// The adj_x / adj_y attributes, the checks of the operands and the output of both products;
// `product` fills a non-empty z [(batch,) m, n] (k: the inner dimension).
template <int rank>
class ProductOp : public OpKernel {
 public:
  explicit ProductOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("adj_x", &adj_x_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("adj_y", &adj_y_));
  }

  void Compute(OpKernelContext* ctx) override {
    int64_t m, k, n;
    Tensor* z = nullptr;
    OP_REQUIRES_OK(ctx, start(ctx, &m, &k, &n, &z));
    if (z->NumElements() > 0) product(ctx, m, k, n, z);
  }

 protected:
  virtual void product(OpKernelContext* ctx, int64_t m, int64_t k, int64_t n, Tensor* z) = 0;

  // Checks x and y and allocates z [(batch,) m, n].
  Status start(OpKernelContext* ctx, int64_t* m, int64_t* k, int64_t* n, Tensor** z) {
    const Tensor& x = ctx->input(0);
    const Tensor& y = ctx->input(1);
    const int r = rank - 2;
    if (x.dims() != rank || y.dims() != rank || (rank == 3 && x.dim_size(0) != y.dim_size(0)))
      return tensorflow::errors::InvalidArgument(
          rank == 2 ? "x and y must be matrices"
                    : "x and y must be batches of matrices [batch, rows, columns] of one batch "
                      "size",
          ", got shapes ", x.shape().DebugString(), " and ", y.shape().DebugString());
    *m = x.dim_size(r + (adj_x_ ? 1 : 0));
    *k = x.dim_size(r + (adj_x_ ? 0 : 1));
    *n = y.dim_size(r + (adj_y_ ? 0 : 1));
    if (y.dim_size(r + (adj_y_ ? 1 : 0)) != *k)
      return tensorflow::errors::InvalidArgument(
          "the inner dimensions differ: x ", x.shape().DebugString(), " (adj_x ", adj_x_,
          "), y ", y.shape().DebugString(), " (adj_y ", adj_y_, ")");
    TensorShape shape({*m, *n});
    if (rank == 3) shape.InsertDim(0, x.dim_size(0));
    return ctx->allocate_output(0, shape, z);
  }

  bool adj_x_ = false, adj_y_ = false;
};

template <typename T>
class BatchMatMulOp : public ProductOp<3> {
 public:
  using ProductOp<3>::ProductOp;

 protected:
  void product(OpKernelContext* ctx, int64_t m, int64_t k, int64_t n, Tensor* z) override {
    const Tensor& x = ctx->input(0);
    const Tensor& y = ctx->input(1);
    const T* xs = x.flat<T>().data();
    const T* ys = y.flat<T>().data();
    T* zs = z->flat<T>().data();
    const int64_t x_size = x.dim_size(1) * x.dim_size(2), y_size = y.dim_size(1) * y.dim_size(2);
    const int64_t lda = x.dim_size(2), ldb = y.dim_size(2);
    const bool adj_x = adj_x_, adj_y = adj_y_;
    auto products = [=](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b)
        if (!thin_product<T>(adj_x, adj_y, m, n, k, xs + b * x_size, lda, ys + b * y_size, ldb,
                             zs + b * m * n))
          gemm<T>(adj_x, adj_y, m, n, k, xs + b * x_size, lda, ys + b * y_size, ldb, T(0),
                  zs + b * m * n, n);
    };
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    workers->ParallelFor(x.dim_size(0), 2 * m * n * k, products);
  }
};

// One product, its rows (of z, and of op(x)) cut into one piece per CPU thread.
template <typename T>
class MatMulOp : public ProductOp<2> {
 public:
  using ProductOp<2>::ProductOp;

 protected:
  void product(OpKernelContext* ctx, int64_t m, int64_t k, int64_t n, Tensor* z) override {
    const Tensor& x = ctx->input(0);
    const Tensor& y = ctx->input(1);
    const T* xs = x.flat<T>().data();
    const T* ys = y.flat<T>().data();
    T* zs = z->flat<T>().data();
    const int64_t lda = x.dim_size(1), ldb = y.dim_size(1);
    const bool adj_x = adj_x_, adj_y = adj_y_;
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    constexpr int64_t kMinRows = 32;  // fewer rows per piece: the packing of y dominates
    const int64_t pieces = std::max<int64_t>(
        1, std::min<int64_t>(workers->NumThreads(), m / kMinRows));
    auto rows = [=](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const int64_t r0 = m * p / pieces, r1 = m * (p + 1) / pieces;
        gemm<T>(adj_x, adj_y, r1 - r0, n, k, xs + (adj_x ? r0 : r0 * lda), lda, ys, ldb, T(0),
                zs + r0 * n, n);
      }
    };
    // a cost per piece far above the pool's sharding threshold: one task per piece
    workers->ParallelFor(pieces, 2 * (m / pieces + 1) * n * k, rows);
  }
};

}  // namespace

REGISTER_OP("TebdBatchMatMul")
    .Input("x: T")
    .Input("y: T")
    .Output("z: T")
    .Attr("T: {float, double}")
    .Attr("adj_x: bool = false")
    .Attr("adj_y: bool = false")
    .SetShapeFn(product_shape<3>)
    .Doc(R"doc(
z[b] = op(x[b]) op(y[b]) for every matrix b of the batch, op the transpose where adj_x / adj_y:
TensorFlow's BatchMatMulV2 on rank-3 inputs of one batch size (real numbers: the adjoint is the
transpose), computed as one dense product per matrix over the CPU threads.
)doc");

REGISTER_OP("TebdMatMul")
    .Input("x: T")
    .Input("y: T")
    .Output("z: T")
    .Attr("T: {float, double}")
    .Attr("adj_x: bool = false")
    .Attr("adj_y: bool = false")
    .SetShapeFn(product_shape<2>)
    .Doc(R"doc(
z = op(x) op(y), op the transpose where adj_x / adj_y: TensorFlow's MatMul (transpose_a,
transpose_b) of two real matrices, compiled for the building machine's processor.
)doc");

#define REGISTER_CPU(T)                                                                \
  REGISTER_KERNEL_BUILDER(                                                             \
      Name("TebdBatchMatMul").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),   \
      BatchMatMulOp<T>);                                                               \
  REGISTER_KERNEL_BUILDER(                                                             \
      Name("TebdMatMul").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),        \
      MatMulOp<T>);
REGISTER_CPU(float);
REGISTER_CPU(double);
#undef REGISTER_CPU

}  // namespace deepmd_tebd
