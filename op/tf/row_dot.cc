// TebdRowDot and TebdRowDotGrad: the dot product of two matrices row by row, and its gradient,
// each in one pass over the rows (spread over TensorFlow's CPU threads).
//
//   TebdRowDot(a, b)         c[i] = sum_j a[i, j] b[i, j]          a, b [rows, d] -> c [rows]
//   TebdRowDotGrad(a, b, z)  (z[i] b[i, j], z[i] a[i, j])          the gradient of <z, c>
//
// The fused embedding net's force pass, dE/ds = <dE/dg, dg/ds> per neighbour row, is one such
// product (deepmd_tebd/op/gradients.py); TensorFlow's ops take a product, a sum and, for the
// gradient, a broadcast and two products, each a pass over the [rows, d] matrices. The gradient
// of TebdRowDotGrad is made of the two ops again (gradients.py), so every order exists.
#include <algorithm>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace deepmd_tebd {
namespace {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

// a and b: two matrices of one shape; rows and d from it.
tensorflow::Status read_pair(OpKernelContext* ctx, const char* op, int64_t* rows, int64_t* d) {
  const Tensor& a = ctx->input(0);
  const Tensor& b = ctx->input(1);
  if (a.dims() != 2 || a.shape() != b.shape())
    return tensorflow::errors::InvalidArgument(op, ": a and b must be matrices of one shape, got ",
                                               a.shape().DebugString(), " and ",
                                               b.shape().DebugString());
  *rows = a.dim_size(0);
  *d = a.dim_size(1);
  return tensorflow::Status();
}

template <typename T>
class RowDotOp : public OpKernel {
 public:
  explicit RowDotOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}
  void Compute(OpKernelContext* ctx) override {
    int64_t rows = 0, d = 0;
    OP_REQUIRES_OK(ctx, read_pair(ctx, "TebdRowDot", &rows, &d));
    Tensor* c = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, tensorflow::TensorShape({rows}), &c));
    const T* a = ctx->input(0).flat<T>().data();
    const T* b = ctx->input(1).flat<T>().data();
    T* out = c->flat<T>().data();
    ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(
        rows, 4 * d, [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i) {
            T sum = 0;
            for (int64_t j = 0; j < d; ++j) sum += a[i * d + j] * b[i * d + j];
            out[i] = sum;
          }
        });
  }
};

template <typename T>
class RowDotGradOp : public OpKernel {
 public:
  explicit RowDotGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}
  void Compute(OpKernelContext* ctx) override {
    int64_t rows = 0, d = 0;
    OP_REQUIRES_OK(ctx, read_pair(ctx, "TebdRowDotGrad", &rows, &d));
    const Tensor& z = ctx->input(2);
    OP_REQUIRES(ctx, z.dims() == 1 && z.dim_size(0) == rows,
                tensorflow::errors::InvalidArgument("TebdRowDotGrad: z must be [", rows,
                                                    "], got ", z.shape().DebugString()));
    Tensor *grad_a = nullptr, *grad_b = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, ctx->input(0).shape(), &grad_a));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, ctx->input(0).shape(), &grad_b));
    const T* a = ctx->input(0).flat<T>().data();
    const T* b = ctx->input(1).flat<T>().data();
    const T* zs = z.flat<T>().data();
    T* ga = grad_a->flat<T>().data();
    T* gb = grad_b->flat<T>().data();
    ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(
        rows, 8 * d, [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i) {
            const T zi = zs[i];
            for (int64_t j = 0; j < d; ++j) {
              ga[i * d + j] = zi * b[i * d + j];
              gb[i * d + j] = zi * a[i * d + j];
            }
          }
        });
  }
};

tensorflow::Status row_dot_shape(InferenceContext* c) {
  ShapeHandle a;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &a));
  c->set_output(0, c->Vector(c->Dim(a, 0)));
  return tensorflow::Status();
}

tensorflow::Status row_dot_grad_shape(InferenceContext* c) {
  c->set_output(0, c->input(0));
  c->set_output(1, c->input(0));
  return tensorflow::Status();
}

}  // namespace

REGISTER_OP("TebdRowDot")
    .Input("a: T")
    .Input("b: T")
    .Output("c: T")
    .Attr("T: {float, double}")
    .SetShapeFn(row_dot_shape)
    .Doc(R"doc(
The dot product of a and b [rows, d] row by row: c[i] = sum_j a[i, j] b[i, j].
)doc");

REGISTER_OP("TebdRowDotGrad")
    .Input("a: T")
    .Input("b: T")
    .Input("z: T")
    .Output("grad_a: T")
    .Output("grad_b: T")
    .Attr("T: {float, double}")
    .SetShapeFn(row_dot_grad_shape)
    .Doc(R"doc(
The gradient of TebdRowDot: of <z, c> with respect to a (z[i] b[i, j]) and b (z[i] a[i, j]).
)doc");

#define REGISTER_CPU(T)                                                                  \
  REGISTER_KERNEL_BUILDER(                                                               \
      Name("TebdRowDot").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),          \
      RowDotOp<T>);                                                                      \
  REGISTER_KERNEL_BUILDER(                                                               \
      Name("TebdRowDotGrad").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),      \
      RowDotGradOp<T>);
REGISTER_CPU(float);
REGISTER_CPU(double);
#undef REGISTER_CPU

}  // namespace deepmd_tebd
