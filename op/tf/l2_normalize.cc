// TebdL2Normalize, its gradient and its gradient's gradient: y = x r over the last axis, with
// r = 1 / sqrt(max(|x|^2, 1e-12)) as tf.math.l2_normalize. Each op is one pass over the rows
// (TensorFlow's own ops take five to ten passes over tensors of that size for the same
// derivative), for the training step's attention layers on the CPU; frozen graphs keep
// TensorFlow's ops.
//
// Where |x|^2 >= 1e-12, with y = x r and J = dy/dx = r (I - y y^T) (symmetric):
//   TebdL2NormalizeGrad(x, u)        = J u = r (u - y (y.u))
//   TebdL2NormalizeGradGrad(x, u, w) = (d<w, J u>/dx, d<w, J u>/du) with
//     d/du = J w = r (w - y (y.w))
//     d/dx = -r^2 (y (w.u) - 3 y (w.y)(y.u) + (y.u) w + (w.y) u)
// Where the clamp holds (|x|^2 < 1e-12, as TensorFlow's Maximum sends the gradient to the
// clamp), r is a constant: J u = r u, d/du = r w, d/dx = 0.
#include <algorithm>
#include <cmath>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace deepmd_tebd {
namespace {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;

constexpr double kEpsilon = 1e-12;  // tf.math.l2_normalize's default

template <typename T>
T dot(const T* a, const T* b, int64_t d) {
  T sum = 0;
  for (int64_t j = 0; j < d; ++j) sum += a[j] * b[j];
  return sum;
}

// One row: r = 1 / |x| (clamped) and whether the clamp holds.
template <typename T>
struct Norm {
  T r;
  bool clamped;
  Norm(const T* x, int64_t d) {
    const T squares = dot(x, x, d), eps = static_cast<T>(kEpsilon);
    clamped = squares < eps;
    r = T(1) / std::sqrt(std::max(squares, eps));
  }
};

// The rows: in[k] and out[k] point at row i of input and output k.
template <typename T>
void normalize_row(const T* const* in, T* const* out, int64_t d) {
  const T* x = in[0];
  const Norm<T> n(x, d);
  for (int64_t j = 0; j < d; ++j) out[0][j] = x[j] * n.r;
}

// J u (TebdL2NormalizeGrad).
template <typename T>
void grad_row(const T* const* in, T* const* out, int64_t d) {
  const T *x = in[0], *u = in[1];
  const Norm<T> n(x, d);
  const T yu = n.clamped ? T(0) : dot(x, u, d) * n.r;
  for (int64_t j = 0; j < d; ++j) out[0][j] = n.r * (u[j] - x[j] * n.r * yu);
}

// Both gradients of <w, J u> (TebdL2NormalizeGradGrad).
template <typename T>
void grad_grad_row(const T* const* in, T* const* out, int64_t d) {
  const T *x = in[0], *u = in[1], *w = in[2];
  T *gx = out[0], *gu = out[1];
  const Norm<T> n(x, d);
  if (n.clamped) {
    for (int64_t j = 0; j < d; ++j) {
      gx[j] = 0;
      gu[j] = n.r * w[j];
    }
    return;
  }
  const T r = n.r, yu = dot(x, u, d) * r, yw = dot(x, w, d) * r, wu = dot(w, u, d);
  const T along_y = wu - 3 * yw * yu;
  for (int64_t j = 0; j < d; ++j) {
    const T y = x[j] * r;
    gu[j] = r * (w[j] - y * yw);
    gx[j] = -r * r * (y * along_y + yu * w[j] + yw * u[j]);
  }
}

// kIn inputs and kOut outputs, all of x's shape (rank >= 1, the last axis the vector), row by
// row over the CPU threads.
template <typename T, int kIn, int kOut, void (*kRow)(const T* const*, T* const*, int64_t)>
class RowsOp : public OpKernel {
 public:
  explicit RowsOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    OP_REQUIRES(ctx, x.dims() >= 1,
                tensorflow::errors::InvalidArgument(
                    type_string(), ": x needs at least one axis (the vector)"));
    const T* in[kIn];
    T* out[kOut];
    for (int k = 0; k < kIn; ++k) {
      OP_REQUIRES(ctx, ctx->input(k).shape() == x.shape(),
                  tensorflow::errors::InvalidArgument(
                      type_string(), ": input ", k, " has shape ",
                      ctx->input(k).shape().DebugString(), ", x has ", x.shape().DebugString()));
      in[k] = ctx->input(k).flat<T>().data();
    }
    for (int k = 0; k < kOut; ++k) {
      Tensor* t = nullptr;
      OP_REQUIRES_OK(ctx, ctx->allocate_output(k, x.shape(), &t));
      out[k] = t->flat<T>().data();
    }
    const int64_t d = x.dim_size(x.dims() - 1), rows = d == 0 ? 0 : x.NumElements() / d;
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    workers->ParallelFor(rows, 4 * (kIn + kOut) * d, [&](int64_t begin, int64_t end) {
      const T* row_in[kIn];
      T* row_out[kOut];
      for (int64_t i = begin; i < end; ++i) {
        for (int k = 0; k < kIn; ++k) row_in[k] = in[k] + i * d;
        for (int k = 0; k < kOut; ++k) row_out[k] = out[k] + i * d;
        kRow(row_in, row_out, d);
      }
    });
  }
};

template <typename T>
using L2NormalizeOp = RowsOp<T, 1, 1, normalize_row<T>>;
template <typename T>
using L2NormalizeGradOp = RowsOp<T, 2, 1, grad_row<T>>;
template <typename T>
using L2NormalizeGradGradOp = RowsOp<T, 3, 2, grad_grad_row<T>>;

tensorflow::Status same_as_x(tensorflow::shape_inference::InferenceContext* c) {
  for (int k = 0; k < c->num_outputs(); ++k) c->set_output(k, c->input(0));
  return tensorflow::Status();
}

}  // namespace

REGISTER_OP("TebdL2Normalize")
    .Input("x: T")
    .Output("y: T")
    .Attr("T: {float, double}")
    .SetShapeFn(same_as_x)
    .Doc(R"doc(
x / sqrt(max(sum(x^2), 1e-12)) over the last axis (tf.math.l2_normalize).
)doc");

REGISTER_OP("TebdL2NormalizeGrad")
    .Input("x: T")
    .Input("grad_y: T")
    .Output("grad_x: T")
    .Attr("T: {float, double}")
    .SetShapeFn(same_as_x)
    .Doc(R"doc(
The gradient of TebdL2Normalize: (dy/dx)^T grad_y.
)doc");

REGISTER_OP("TebdL2NormalizeGradGrad")
    .Input("x: T")
    .Input("grad_y: T")
    .Input("grad_grad_x: T")
    .Output("grad_x: T")
    .Output("grad_grad_y: T")
    .Attr("T: {float, double}")
    .SetShapeFn(same_as_x)
    .Doc(R"doc(
The gradient of TebdL2NormalizeGrad: of <grad_grad_x, (dy/dx)^T grad_y> with respect to x and
grad_y.
)doc");

#define REGISTER_CPU(T)                                                                      \
  REGISTER_KERNEL_BUILDER(                                                                   \
      Name("TebdL2Normalize").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),         \
      L2NormalizeOp<T>);                                                                     \
  REGISTER_KERNEL_BUILDER(                                                                   \
      Name("TebdL2NormalizeGrad").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),     \
      L2NormalizeGradOp<T>);                                                                 \
  REGISTER_KERNEL_BUILDER(                                                                   \
      Name("TebdL2NormalizeGradGrad").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), \
      L2NormalizeGradGradOp<T>);
REGISTER_CPU(float);
REGISTER_CPU(double);
#undef REGISTER_CPU

}  // namespace deepmd_tebd
