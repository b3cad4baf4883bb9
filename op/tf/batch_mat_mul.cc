// TebdBatchMatMul: z[b] = op(x[b]) op(y[b]) for every b of a batch of matrices (op: the matrix
// or its transpose), on the CPU. TensorFlow's BatchMatMulV2 computes the same products; for the
// small float64 matrices of DPA-1's attention (one [S, S] or [S, d] product per atom) it runs at
// about half the speed of a dense product. Here each matrix is one Eigen dense product, the
// batch spread over TensorFlow's CPU threads. It serves the training step only: frozen graphs
// keep BatchMatMulV2, which every TensorFlow runtime has (deepmd_tebd/model/kernels.py).
#define EIGEN_DONT_PARALLELIZE  // one product per thread: the batch is the parallel axis
#include <Eigen/Dense>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace deepmd_tebd {
namespace {

using tensorflow::shape_inference::DimensionHandle;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::shape_inference::ShapeHandle;
using tensorflow::Status;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::shape_inference::InferenceContext;

Status batch_mat_mul_shape(InferenceContext* c) {
  ShapeHandle x, y;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &x));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 3, &y));
  bool adj_x, adj_y;
  TF_RETURN_IF_ERROR(c->GetAttr("adj_x", &adj_x));
  TF_RETURN_IF_ERROR(c->GetAttr("adj_y", &adj_y));
  DimensionHandle batch, inner;
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(x, 0), c->Dim(y, 0), &batch));
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(x, adj_x ? 1 : 2), c->Dim(y, adj_y ? 2 : 1), &inner));
  c->set_output(0, c->MakeShape({batch, c->Dim(x, adj_x ? 2 : 1), c->Dim(y, adj_y ? 1 : 2)}));
  return Status();
}

template <typename T>
class BatchMatMulOp : public OpKernel {
 public:
  explicit BatchMatMulOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("adj_x", &adj_x_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("adj_y", &adj_y_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& y = ctx->input(1);
    OP_REQUIRES(ctx, x.dims() == 3 && y.dims() == 3 && x.dim_size(0) == y.dim_size(0),
                tensorflow::errors::InvalidArgument(
                    "x and y must be batches of matrices [batch, rows, columns] of one batch "
                    "size, got shapes ", x.shape().DebugString(), " and ",
                    y.shape().DebugString()));
    const int64_t batch = x.dim_size(0);
    const int64_t m = x.dim_size(adj_x_ ? 2 : 1), k = x.dim_size(adj_x_ ? 1 : 2);
    const int64_t n = y.dim_size(adj_y_ ? 1 : 2);
    OP_REQUIRES(ctx, y.dim_size(adj_y_ ? 2 : 1) == k,
                tensorflow::errors::InvalidArgument(
                    "the inner dimensions differ: x ", x.shape().DebugString(), " (adj_x ",
                    adj_x_, "), y ", y.shape().DebugString(), " (adj_y ", adj_y_, ")"));
    Tensor* z = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({batch, m, n}), &z));
    if (z->NumElements() == 0) return;
    using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    const T* xs = x.flat<T>().data();
    const T* ys = y.flat<T>().data();
    T* zs = z->flat<T>().data();
    const int64_t x_rows = x.dim_size(1), x_cols = x.dim_size(2);
    const int64_t y_rows = y.dim_size(1), y_cols = y.dim_size(2);
    const bool adj_x = adj_x_, adj_y = adj_y_;
    auto products = [=](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        Eigen::Map<const Matrix> xb(xs + b * x_rows * x_cols, x_rows, x_cols);
        Eigen::Map<const Matrix> yb(ys + b * y_rows * y_cols, y_rows, y_cols);
        Eigen::Map<Matrix> zb(zs + b * m * n, m, n);
        if (k == 0) {
          zb.setZero();
        } else if (!adj_x && !adj_y) {
          zb.noalias() = xb * yb;
        } else if (!adj_x) {
          zb.noalias() = xb * yb.transpose();
        } else if (!adj_y) {
          zb.noalias() = xb.transpose() * yb;
        } else {
          zb.noalias() = xb.transpose() * yb.transpose();
        }
      }
    };
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    workers->ParallelFor(batch, 2 * m * n * k, products);
  }

 private:
  bool adj_x_ = false, adj_y_ = false;
};

}  // namespace

REGISTER_OP("TebdBatchMatMul")
    .Input("x: T")
    .Input("y: T")
    .Output("z: T")
    .Attr("T: {float, double}")
    .Attr("adj_x: bool = false")
    .Attr("adj_y: bool = false")
    .SetShapeFn(batch_mat_mul_shape)
    .Doc(R"doc(
z[b] = op(x[b]) op(y[b]) for every matrix b of the batch, op the transpose where adj_x / adj_y:
TensorFlow's BatchMatMulV2 on rank-3 inputs of one batch size (real numbers: the adjoint is the
transpose), computed as one dense product per matrix over the CPU threads.
)doc");

#define REGISTER_CPU(T)                                                                \
  REGISTER_KERNEL_BUILDER(                                                             \
      Name("TebdBatchMatMul").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),   \
      BatchMatMulOp<T>);
REGISTER_CPU(float);
REGISTER_CPU(double);
#undef REGISTER_CPU

}  // namespace deepmd_tebd
