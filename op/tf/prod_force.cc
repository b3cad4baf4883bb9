// ProdForceSeA and ProdForceSeAGrad kernels: the op specs for ProductOp (product_op.h).
#include <vector>

#include "prod_force.h"
#include "product_op.h"

namespace deepmd_tebd {

// ProdForceSeA: force [nframes, 3*nall] from net_deriv, in_deriv and nlist.
struct ProdForceSpec {
  static constexpr bool kGrad = false;
  static constexpr bool kRij = false;
  static std::vector<int64_t> output_widths(const ProductShapes& s) { return {3LL * s.nall}; }
  DTK_PRODUCT_CALLS(prod_force_a, p.out[0], p.net_deriv, p.in_deriv, p.nlist, p.nloc, p.nall,
                    p.nnei)
};

// ProdForceSeAGrad: grad_net (shaped like net_deriv) from grad = dL/dforce [nframes, 3*nall].
struct ProdForceGradSpec {
  static constexpr bool kGrad = true;
  static constexpr bool kRij = false;
  static int64_t grad_width(const ProductShapes& s) { return 3LL * s.nall; }
  DTK_PRODUCT_CALLS(prod_force_grad_a, p.out[0], p.grad, p.in_deriv, p.nlist, p.nloc, p.nall,
                    p.nnei)
};

DTK_REGISTER_PRODUCT_OP("ProdForceSeA", ProdForceSpec)
DTK_REGISTER_PRODUCT_OP("ProdForceSeAGrad", ProdForceGradSpec)

}  // namespace deepmd_tebd
