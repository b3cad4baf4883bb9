// TebdContractRowsGrad and TebdContractRowsGradGrad: the derivative of the embedding net's
// contraction with the environment matrix, A = R^T G(s) per atom (s = R[:, 0];
// TebdEmbeddingContract), with respect to R, and the gradient of that derivative.
//
// For the adjoint U = dL/dA of one atom (rows r of R [k, 4], G and dG/ds [k, M]):
//   dL/dR[r, c] = (G U^T)[r, c] + [c = 0] t[r],     t[r] = <R[r] U, dG[r]>,
// returned as `direct` (G U^T) and `along_s` (t = sum_c R[r, c] (dG U^T)[r, c]; the caller adds
// it to column 0 of the rows that are computed from their own s). No [k, M] matrix is written:
// the force pass of the training step reads G and dG once, eight dot products per row.
//
// TebdContractRowsGradGrad: for adjoints Zd of direct [k, 4] and zt of along_s [k],
//   dL/dG = Zd U,   dL/ddG = (zt R) U,   dL/dU = Zd^T G + (zt R)^T dG
// (and dL/dR[r, c] = zt[r] (dG U^T)[r, c], which the caller makes where it is needed: only a
// second derivative with respect to R needs it). The products with a dimension of 4 run on
// dense_gemm.h's thin_product, as TebdBatchMatMul's.
//
// Contraction groups (TebdEmbeddingContract's `group`): an atom's rows may contract into
// several A, one per group, A_q = R_q^T G_q over its rows of group q; U then holds one adjoint
// per (atom, group), [atoms * groups, 4, M], and each row takes its group's (row r of atom b:
// U[b * groups + group[b, r]]). An empty group: one group per atom.
#include <algorithm>
#include <string>
#include <vector>

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
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

// The shapes of rows [B, k, 4], g and dg [B, k, M], u [B * groups, 4, M] and group [B, k] in
// [0, groups) (or empty: one group); false (and the error set) when they do not fit.
struct Shapes {
  int64_t b = 0, k = 0, m = 0, groups = 1;
  const int32_t* group = nullptr;  // null: one group

  const int32_t* of_atom(int64_t atom) const {
    return group == nullptr ? nullptr : group + atom * k;
  }
};

bool read_shapes(OpKernelContext* ctx, Shapes* out) {
  const Tensor& rows = ctx->input(0);
  const Tensor& g = ctx->input(1);
  const Tensor& dg = ctx->input(2);
  const Tensor& u = ctx->input(3);
  const Tensor& group = ctx->input(4);
  const int64_t b = rows.dims() == 3 ? rows.dim_size(0) : -1;
  const bool grouped = group.NumElements() > 0;
  bool ok = rows.dims() == 3 && rows.dim_size(2) == 4 && g.dims() == 3 &&
            g.dim_size(0) == b && g.dim_size(1) == rows.dim_size(1) &&
            dg.shape() == g.shape() && u.dims() == 3 && u.dim_size(1) == 4 &&
            u.dim_size(2) == g.dim_size(2) &&
            (b == 0 ? u.dim_size(0) == 0 : u.dim_size(0) % b == 0 && u.dim_size(0) > 0) &&
            (!grouped || group.shape() == TensorShape({b, rows.dim_size(1)}));
  if (ok) {
    out->b = b;
    out->k = rows.dim_size(1);
    out->m = g.dim_size(2);
    out->groups = b == 0 ? 1 : u.dim_size(0) / b;
    ok = grouped || out->groups == 1;
    if (grouped) {
      out->group = group.flat<int32_t>().data();
      ok = ok && groups_in_range(out->group, group.NumElements(), out->groups);
    }
  }
  if (!ok) {
    ctx->CtxFailure(tensorflow::errors::InvalidArgument(
        "rows must be [atoms, slots, 4], g and dg [atoms, slots, width], u [atoms * groups, 4, "
        "width] and group [atoms, slots] in [0, groups) (empty: one group), got ",
        rows.shape().DebugString(), ", ", g.shape().DebugString(), ", ",
        dg.shape().DebugString(), ", ", u.shape().DebugString(), " and ",
        group.shape().DebugString()));
    return false;
  }
  return true;
}

template <typename T>
class ContractRowsGradOp : public OpKernel {
 public:
  explicit ContractRowsGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}
  void Compute(OpKernelContext* ctx) override {
    Shapes sh;
    if (!read_shapes(ctx, &sh)) return;
    const int64_t nb = sh.b, k = sh.k, m = sh.m;
    Tensor *direct = nullptr, *along = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, ctx->input(0).shape(), &direct));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({nb, k}), &along));
    const T* rows = ctx->input(0).flat<T>().data();
    const T* g = ctx->input(1).flat<T>().data();
    const T* dg = ctx->input(2).flat<T>().data();
    const T* u = ctx->input(3).flat<T>().data();
    T* d = direct->flat<T>().data();
    T* t = along->flat<T>().data();
    auto atoms = [&](int64_t begin, int64_t end) {
      std::vector<T> e(4 * k);
      for (int64_t b = begin; b < end; ++b) {
        for_group_runs(sh.of_atom(b), k, [&](int64_t r0, int64_t r1, int q) {
          const T* ub = u + (b * sh.groups + q) * 4 * m;
          const int64_t row = b * k + r0;
          thin_product<T>(false, true, r1 - r0, 4, m, g + row * m, m, ub, m, d + row * 4);
          thin_product<T>(false, true, r1 - r0, 4, m, dg + row * m, m, ub, m,
                          e.data() + r0 * 4);  // dG U^T
        });
        for (int64_t r = 0; r < k; ++r) {
          const T* rr = rows + (b * k + r) * 4;
          t[b * k + r] = rr[0] * e[4 * r] + rr[1] * e[4 * r + 1] + rr[2] * e[4 * r + 2] +
                         rr[3] * e[4 * r + 3];
        }
      }
    };
    ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(nb, 20 * k * m, atoms);
  }
};

template <typename T>
class ContractRowsGradGradOp : public OpKernel {
 public:
  explicit ContractRowsGradGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    std::string parts;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("parts", &parts));
    rows_ = parts != "u";
    u_ = parts != "g";
  }

  void Compute(OpKernelContext* ctx) override {
    Shapes sh;
    if (!read_shapes(ctx, &sh)) return;
    const int64_t nb = sh.b, k = sh.k, m = sh.m;
    const Tensor& zd = ctx->input(5);
    const Tensor& zt = ctx->input(6);
    OP_REQUIRES(ctx, zd.shape() == ctx->input(0).shape() &&
                         zt.shape() == TensorShape({nb, k}),
                tensorflow::errors::InvalidArgument(
                    "grad_direct must be ", ctx->input(0).shape().DebugString(),
                    " and grad_along_s [", nb, ", ", k, "], got ", zd.shape().DebugString(),
                    " and ", zt.shape().DebugString()));
    Tensor *grad_g = nullptr, *grad_dg = nullptr, *grad_u = nullptr;
    const TensorShape by_row = rows_ ? ctx->input(1).shape() : TensorShape({0, k, m});
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, by_row, &grad_g));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, by_row, &grad_dg));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(
                            2, u_ ? ctx->input(3).shape() : TensorShape({0, 4, m}), &grad_u));
    const T* rows = ctx->input(0).flat<T>().data();
    const T* g = ctx->input(1).flat<T>().data();
    const T* dg = ctx->input(2).flat<T>().data();
    const T* u = ctx->input(3).flat<T>().data();
    const T* zds = zd.flat<T>().data();
    const T* zts = zt.flat<T>().data();
    T* gg = grad_g->flat<T>().data();
    T* gdg = grad_dg->flat<T>().data();
    T* gu = grad_u->flat<T>().data();
    auto atoms = [&](int64_t begin, int64_t end) {
      std::vector<T> weighted(4 * k), part(4 * m);
      for (int64_t b = begin; b < end; ++b) {
        const T* rb = rows + b * k * 4;
        const T* ztb = zts + b * k;
        for (int64_t r = 0; r < k; ++r)
          for (int c = 0; c < 4; ++c) weighted[r * 4 + c] = ztb[r] * rb[r * 4 + c];
        if (u_) std::fill(gu + b * sh.groups * 4 * m, gu + (b + 1) * sh.groups * 4 * m, T(0));
        for_group_runs(sh.of_atom(b), k, [&](int64_t r0, int64_t r1, int q) {
          const int64_t row = b * k + r0, n = r1 - r0;
          const T* ub = u + (b * sh.groups + q) * 4 * m;
          const T* zdr = zds + row * 4;
          const T* wr = weighted.data() + r0 * 4;
          if (rows_) {
            thin_product<T>(false, false, n, m, 4, zdr, 4, ub, m, gg + row * m);  // Zd U
            thin_product<T>(false, false, n, m, 4, wr, 4, ub, m, gdg + row * m);  // (zt R) U
          }
          if (u_) {
            T* gub = gu + (b * sh.groups + q) * 4 * m;  // Zd^T G + (zt R)^T dG
            thin_product<T>(true, false, 4, m, n, zdr, 4, g + row * m, m, gub, true);
            thin_product<T>(true, false, 4, m, n, wr, 4, dg + row * m, m, part.data());
            for (int64_t j = 0; j < 4 * m; ++j) gub[j] += part[j];
          }
        });
      }
    };
    const int64_t cost = ((rows_ ? 20 : 0) + (u_ ? 20 : 0)) * k * m;
    ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(nb, cost, atoms);
  }

 private:
  bool rows_ = true, u_ = true;  // which adjoints to make: of g and dg_ds, of u
};

Status contract_rows_grad_shape(InferenceContext* c) {
  c->set_output(0, c->input(0));
  c->set_output(1, c->Matrix(c->Dim(c->input(0), 0), c->Dim(c->input(0), 1)));
  return Status();
}

Status contract_rows_grad_grad_shape(InferenceContext* c) {
  std::string parts;
  TF_RETURN_IF_ERROR(c->GetAttr("parts", &parts));
  ShapeHandle by_row = c->input(1), of_u = c->input(3);  // skipped parts: no entries
  if (parts == "u") TF_RETURN_IF_ERROR(c->ReplaceDim(c->input(1), 0, c->MakeDim(0), &by_row));
  if (parts == "g") TF_RETURN_IF_ERROR(c->ReplaceDim(c->input(3), 0, c->MakeDim(0), &of_u));
  c->set_output(0, by_row);
  c->set_output(1, by_row);
  c->set_output(2, of_u);
  return Status();
}

}  // namespace

REGISTER_OP("TebdContractRowsGrad")
    .Input("rows: T")
    .Input("g: T")
    .Input("dg_ds: T")
    .Input("u: T")
    .Input("group: int32")
    .Output("direct: T")
    .Output("along_s: T")
    .Attr("T: {float, double}")
    .SetShapeFn(contract_rows_grad_shape)
    .Doc(R"doc(
The derivative of A = rows^T g(s) per atom (s = rows[..., 0]) along the adjoint u of A:
direct [atoms, slots, 4] = g u^T, along_s [atoms, slots] = <rows u, dg_ds> per row (the part
through s, which the caller adds to column 0 of the rows computed from their own s). With
contraction groups (group [atoms, slots] in [0, groups), u [atoms * groups, 4, width]), row r
of atom b takes u[b * groups + group[b, r]]; group empty: u [atoms, 4, width].
)doc");

REGISTER_OP("TebdContractRowsGradGrad")
    .Input("rows: T")
    .Input("g: T")
    .Input("dg_ds: T")
    .Input("u: T")
    .Input("group: int32")
    .Input("grad_direct: T")
    .Input("grad_along_s: T")
    .Output("grad_g: T")
    .Output("grad_dg_ds: T")
    .Output("grad_u: T")
    .Attr("T: {float, double}")
    .Attr("parts: {'all', 'g', 'u'} = 'all'")
    .SetShapeFn(contract_rows_grad_grad_shape)
    .Doc(R"doc(
The gradient of TebdContractRowsGrad: of <grad_direct, direct> + <grad_along_s, along_s> with
respect to g, dg_ds and u (the one with respect to rows, grad_along_s times dg_ds u^T per row,
is left to the caller); group as TebdContractRowsGrad's. parts 'g': the adjoints of g and
dg_ds alone (grad_u has no entries), 'u': that of u alone (grad_g and grad_dg_ds have none), so
that a caller that makes the former elsewhere (TebdEmbeddingNetGrad's force inputs) leaves their
op unused.
)doc");

#define REGISTER_CPU(T)                                                                       \
  REGISTER_KERNEL_BUILDER(                                                                    \
      Name("TebdContractRowsGrad").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),     \
      ContractRowsGradOp<T>);                                                                 \
  REGISTER_KERNEL_BUILDER(                                                                    \
      Name("TebdContractRowsGradGrad").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), \
      ContractRowsGradGradOp<T>);
REGISTER_CPU(float);
REGISTER_CPU(double);
#undef REGISTER_CPU

}  // namespace deepmd_tebd
