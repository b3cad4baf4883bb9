// TebdLayerNorm, its gradient and its gradient's gradient: the layer normalisation of DPA-1's
// attention over the last axis (width d),
//   c = x - mean(x), s = 1 / sqrt(mean(c^2) + eps), n = c s, y = n gamma + beta,
// each op one pass over the rows, for the training step on the CPU (frozen graphs keep
// TensorFlow's ops). With J = dn/dx = s P, P z = z - mean(z) - n <n, z> / d (symmetric):
//   TebdLayerNormGrad(x, gamma, u) = (s P (u gamma), sum_rows u n, sum_rows u)
//   TebdLayerNormGradGrad: the gradients of <w_x, dx> + <w_gamma, dgamma> + <w_beta, dbeta>,
//     with g = u gamma, h = s P w_x:
//     d/du     = gamma h + w_gamma n + w_beta
//     d/dgamma = sum_rows u h
//     d/dx     = s P (w_gamma u) - s^2 / d (n (<w_x, g> - d mean(g) mean(w_x)
//                                            - 3 / d <w_x, n> <g, n>)
//                                         + <g, n> (w_x - mean(w_x)) + <w_x, n> (g - mean(g)))
// The sums over rows are made per contiguous range of rows, one range per CPU thread, and
// added in range order, so results do not depend on scheduling.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace deepmd_tebd {
namespace {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Status;
using tensorflow::Tensor;
using tensorflow::TensorShape;

template <typename T>
T sum_of(const T* a, int64_t d) {
  T sum = 0;
  for (int64_t j = 0; j < d; ++j) sum += a[j];
  return sum;
}

template <typename T>
T dot(const T* a, const T* b, int64_t d) {
  T sum = 0;
  for (int64_t j = 0; j < d; ++j) sum += a[j] * b[j];
  return sum;
}

// One row's normalised n (into `n`) and its factor s.
template <typename T>
T normalise(const T* x, int64_t d, T eps, T* n) {
  const T mean = sum_of(x, d) / T(d);
  for (int64_t j = 0; j < d; ++j) n[j] = x[j] - mean;
  const T s = T(1) / std::sqrt(dot(n, n, d) / T(d) + eps);
  for (int64_t j = 0; j < d; ++j) n[j] *= s;
  return s;
}

// out = s P z (adds when `add`).
template <typename T>
void project(const T* z, const T* n, T s, int64_t d, bool add, T* out) {
  const T mean = sum_of(z, d) / T(d), along = dot(z, n, d) / T(d);
  for (int64_t j = 0; j < d; ++j) {
    const T v = s * (z[j] - mean - n[j] * along);
    out[j] = add ? out[j] + v : v;
  }
}

// The checks and views every op shares: x [..., d] (rank >= 1), gamma and eps as the forward
// has them, the other row inputs of x's shape.
template <typename T>
struct Rows {
  const T* x = nullptr;
  const T* gamma = nullptr;
  T eps = 0;
  int64_t rows = 0, d = 0;
};

template <typename T>
Status read_rows(OpKernelContext* ctx, const std::vector<int>& same_as_x, Rows<T>* r) {
  const Tensor& x = ctx->input(0);
  const std::string& op = ctx->op_kernel().type_string();
  if (x.dims() < 1)
    return tensorflow::errors::InvalidArgument(op, ": x needs at least one axis");
  r->d = x.dim_size(x.dims() - 1);
  if (ctx->input(1).shape() != TensorShape({r->d}))
    return tensorflow::errors::InvalidArgument(op, ": gamma has shape ",
                                               ctx->input(1).shape().DebugString(),
                                               ", x's last axis is ", r->d);
  if (ctx->input(2).NumElements() != 1)
    return tensorflow::errors::InvalidArgument(op, ": eps must be a scalar");
  for (int k : same_as_x) {
    if (ctx->input(k).shape() != x.shape())
      return tensorflow::errors::InvalidArgument(op, ": input ", k, " has shape ",
                                                 ctx->input(k).shape().DebugString(),
                                                 ", x has ", x.shape().DebugString());
  }
  r->x = x.flat<T>().data();
  r->gamma = ctx->input(1).flat<T>().data();
  r->eps = ctx->input(2).flat<T>().data()[0];
  r->rows = r->d == 0 ? 0 : x.NumElements() / r->d;
  return Status();
}

// The number of row ranges: one per CPU thread, at most one per row.
int64_t range_count(OpKernelContext* ctx, int64_t rows) {
  const int threads = ctx->device()->tensorflow_cpu_worker_threads()->workers->NumThreads();
  return std::max<int64_t>(1, std::min<int64_t>(threads, rows));
}

// Runs fn(range k, first row, end row, work space of 3 rows) over the nranges contiguous ranges
// of rows.
template <typename T, typename Fn>
void for_ranges(OpKernelContext* ctx, int64_t nranges, int64_t rows, int64_t d, int64_t passes,
                Fn fn) {
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  workers->ParallelFor(nranges, std::max<int64_t>(4 * passes * d * rows / nranges, 1 << 16),
                       [&](int64_t begin, int64_t end) {
                         std::vector<T> work(3 * d);
                         for (int64_t k = begin; k < end; ++k)
                           fn(k, rows * k / nranges, rows * (k + 1) / nranges, work.data());
                       });
}

// Adds the per-range sums [nranges, d] in range order into out [d].
template <typename T>
void add_ranges(const std::vector<T>& sums, int64_t nranges, int64_t d, T* out) {
  std::fill(out, out + d, T(0));
  for (int64_t k = 0; k < nranges; ++k)
    for (int64_t j = 0; j < d; ++j) out[j] += sums[k * d + j];
}

template <typename T>
class LayerNormOp : public OpKernel {
 public:
  explicit LayerNormOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}
  void Compute(OpKernelContext* ctx) override {
    Rows<T> r;
    OP_REQUIRES_OK(ctx, read_rows(ctx, {}, &r));
    OP_REQUIRES(ctx, ctx->input(3).shape() == ctx->input(1).shape(),
                tensorflow::errors::InvalidArgument("TebdLayerNorm: beta has shape ",
                                                    ctx->input(3).shape().DebugString()));
    Tensor* y = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, ctx->input(0).shape(), &y));
    const T* beta = ctx->input(3).flat<T>().data();
    T* out = y->flat<T>().data();
    for_ranges<T>(ctx, range_count(ctx, r.rows), r.rows, r.d, 2,
                  [&](int64_t, int64_t first, int64_t end, T*) {
      for (int64_t i = first; i < end; ++i) {
        T* row = out + i * r.d;
        normalise(r.x + i * r.d, r.d, r.eps, row);
        for (int64_t j = 0; j < r.d; ++j) row[j] = row[j] * r.gamma[j] + beta[j];
      }
    });
  }
};

template <typename T>
class LayerNormGradOp : public OpKernel {
 public:
  explicit LayerNormGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}
  void Compute(OpKernelContext* ctx) override {
    Rows<T> r;
    OP_REQUIRES_OK(ctx, read_rows(ctx, {3}, &r));
    Tensor *dx = nullptr, *dgamma = nullptr, *dbeta = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, ctx->input(0).shape(), &dx));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, ctx->input(1).shape(), &dgamma));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, ctx->input(1).shape(), &dbeta));
    const T* u = ctx->input(3).flat<T>().data();
    T* out = dx->flat<T>().data();
    const int64_t d = r.d, nranges = range_count(ctx, r.rows);
    std::vector<T> sum_gamma(nranges * d, T(0)), sum_beta(nranges * d, T(0));
    for_ranges<T>(
        ctx, nranges, r.rows, d, 4, [&](int64_t k, int64_t first, int64_t end, T* work) {
          T *n = work, *g = work + d;
          T *sg = sum_gamma.data() + k * d, *sb = sum_beta.data() + k * d;
          for (int64_t i = first; i < end; ++i) {
            const T* ui = u + i * d;
            const T s = normalise(r.x + i * d, d, r.eps, n);
            for (int64_t j = 0; j < d; ++j) {
              g[j] = ui[j] * r.gamma[j];
              sg[j] += ui[j] * n[j];
              sb[j] += ui[j];
            }
            project(g, n, s, d, false, out + i * d);
          }
        });
    add_ranges(sum_gamma, nranges, d, dgamma->flat<T>().data());
    add_ranges(sum_beta, nranges, d, dbeta->flat<T>().data());
  }
};

template <typename T>
class LayerNormGradGradOp : public OpKernel {
 public:
  explicit LayerNormGradGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}
  void Compute(OpKernelContext* ctx) override {
    Rows<T> r;
    OP_REQUIRES_OK(ctx, read_rows(ctx, {3, 4}, &r));
    const int64_t d = r.d;
    for (int k : {5, 6})
      OP_REQUIRES(ctx, ctx->input(k).shape() == TensorShape({d}),
                  tensorflow::errors::InvalidArgument(
                      "TebdLayerNormGradGrad: input ", k, " has shape ",
                      ctx->input(k).shape().DebugString(), ", x's last axis is ", d));
    Tensor *gx = nullptr, *ggamma = nullptr, *gu = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, ctx->input(0).shape(), &gx));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, ctx->input(1).shape(), &ggamma));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, ctx->input(0).shape(), &gu));
    const T* u = ctx->input(3).flat<T>().data();
    const T* wx = ctx->input(4).flat<T>().data();
    const T* wgamma = ctx->input(5).flat<T>().data();
    const T* wbeta = ctx->input(6).flat<T>().data();
    T *out_x = gx->flat<T>().data(), *out_u = gu->flat<T>().data();
    const int64_t nranges = range_count(ctx, r.rows);
    std::vector<T> sum_gamma(nranges * d, T(0));
    for_ranges<T>(
        ctx, nranges, r.rows, d, 8, [&](int64_t k, int64_t first, int64_t end, T* work) {
          T *n = work, *g = work + d, *h = work + 2 * d;
          T* sg = sum_gamma.data() + k * d;
          for (int64_t i = first; i < end; ++i) {
            const T *ui = u + i * d, *w = wx + i * d;
            T *ox = out_x + i * d, *ou = out_u + i * d;
            const T s = normalise(r.x + i * d, d, r.eps, n);
            project(w, n, s, d, false, h);
            for (int64_t j = 0; j < d; ++j) {
              g[j] = ui[j] * r.gamma[j];
              ou[j] = r.gamma[j] * h[j] + wgamma[j] * n[j] + wbeta[j];
              sg[j] += ui[j] * h[j];
            }
            const T mean_w = sum_of(w, d) / T(d), mean_g = sum_of(g, d) / T(d);
            const T wn = dot(w, n, d), gn = dot(g, n, d), wg = dot(w, g, d);
            const T along_n = wg - T(d) * mean_g * mean_w - T(3) / T(d) * wn * gn;
            const T scale = -s * s / T(d);
            for (int64_t j = 0; j < d; ++j)
              ox[j] = scale * (n[j] * along_n + gn * (w[j] - mean_w) + wn * (g[j] - mean_g));
            for (int64_t j = 0; j < d; ++j) h[j] = wgamma[j] * ui[j];  // h reused: w_gamma u
            project(h, n, s, d, true, ox);
          }
        });
    add_ranges(sum_gamma, nranges, d, ggamma->flat<T>().data());
  }
};

Status like_x_and_gamma(tensorflow::shape_inference::InferenceContext* c) {
  c->set_output(0, c->input(0));
  if (c->num_outputs() == 3) {  // the two gradient ops
    const bool grad = c->num_inputs() == 4;
    c->set_output(1, c->input(1));
    c->set_output(2, grad ? c->input(1) : c->input(0));
  }
  return Status();
}

}  // namespace

REGISTER_OP("TebdLayerNorm")
    .Input("x: T")
    .Input("gamma: T")
    .Input("eps: T")
    .Input("beta: T")
    .Output("y: T")
    .Attr("T: {float, double}")
    .SetShapeFn(like_x_and_gamma)
    .Doc(R"doc(
(x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps) * gamma + beta over the last axis.
)doc");

REGISTER_OP("TebdLayerNormGrad")
    .Input("x: T")
    .Input("gamma: T")
    .Input("eps: T")
    .Input("grad_y: T")
    .Output("grad_x: T")
    .Output("grad_gamma: T")
    .Output("grad_beta: T")
    .Attr("T: {float, double}")
    .SetShapeFn(like_x_and_gamma)
    .Doc(R"doc(
The gradient of TebdLayerNorm with respect to x, gamma and beta.
)doc");

REGISTER_OP("TebdLayerNormGradGrad")
    .Input("x: T")
    .Input("gamma: T")
    .Input("eps: T")
    .Input("grad_y: T")
    .Input("grad_grad_x: T")
    .Input("grad_grad_gamma: T")
    .Input("grad_grad_beta: T")
    .Output("grad_x: T")
    .Output("grad_gamma: T")
    .Output("grad_grad_y: T")
    .Attr("T: {float, double}")
    .SetShapeFn(like_x_and_gamma)
    .Doc(R"doc(
The gradient of TebdLayerNormGrad: of <grad_grad_x, grad_x> + <grad_grad_gamma, grad_gamma>
+ <grad_grad_beta, grad_beta> with respect to x, gamma and grad_y.
)doc");

#define REGISTER_CPU(T)                                                                      \
  REGISTER_KERNEL_BUILDER(                                                                   \
      Name("TebdLayerNorm").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),           \
      LayerNormOp<T>);                                                                       \
  REGISTER_KERNEL_BUILDER(                                                                   \
      Name("TebdLayerNormGrad").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),       \
      LayerNormGradOp<T>);                                                                   \
  REGISTER_KERNEL_BUILDER(                                                                   \
      Name("TebdLayerNormGradGrad").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),   \
      LayerNormGradGradOp<T>);
REGISTER_CPU(float);
REGISTER_CPU(double);
#undef REGISTER_CPU

}  // namespace deepmd_tebd
