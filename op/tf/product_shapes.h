// Shape checks shared by the force, virial and gradient kernels.
#pragma once
#include "common.h"
#include "tensorflow/core/framework/op_kernel.h"

namespace deepmd_tebd {

using tensorflow::OpKernelContext;
using tensorflow::Tensor;

// Shapes shared by the force, virial and gradient ops: net_deriv [nf, nloc*ndescrpt],
// in_deriv [nf, nloc*ndescrpt*3], nlist [nf, nloc*nnei], with ndescrpt = 4*nnei.
struct ProductShapes {
  int64_t nframes = 0;
  int nloc = 0, nall = 0, nnei = 0;
};

inline bool read_product_shapes(OpKernelContext* ctx, const Tensor& net_deriv,
                                const Tensor& in_deriv, const Tensor& nlist,
                                const Tensor& natoms, ProductShapes* s) {
  AtomCounts n;
  if (!read_natoms(ctx, natoms, &n)) return false;
  s->nloc = n.nloc;
  s->nall = n.nall;
  if (net_deriv.dims() != 2 || nlist.dims() != 2) {
    ctx->SetStatus(tensorflow::errors::InvalidArgument("net_deriv and nlist must be of rank 2"));
    return false;
  }
  s->nframes = net_deriv.dim_size(0);
  if (s->nloc == 0) return check_matrix(ctx, nlist, "nlist", s->nframes, 0);
  if (nlist.dim_size(1) % s->nloc != 0) {
    ctx->SetStatus(tensorflow::errors::InvalidArgument(
        "nlist width ", nlist.dim_size(1), " is not a multiple of nloc ", s->nloc));
    return false;
  }
  s->nnei = static_cast<int>(nlist.dim_size(1) / s->nloc);
  const int64_t ndescrpt = 4LL * s->nnei;
  return check_matrix(ctx, nlist, "nlist", s->nframes, int64_t(s->nloc) * s->nnei) &&
         check_matrix(ctx, net_deriv, "net_deriv", s->nframes, s->nloc * ndescrpt) &&
         check_matrix(ctx, in_deriv, "in_deriv", s->nframes, s->nloc * ndescrpt * 3);
}

}  // namespace deepmd_tebd
