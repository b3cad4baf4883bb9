// ProdVirialSeA and ProdVirialSeAGrad kernels: the op specs for ProductOp (product_op.h).
#include <vector>

#include "prod_virial.h"
#include "product_op.h"

namespace deepmd_tebd {

// ProdVirialSeA: virial [nframes, 9] and atom_virial [nframes, 9*nall] from net_deriv, in_deriv,
// rij and nlist.
struct ProdVirialSpec {
  static constexpr bool kGrad = false;
  static constexpr bool kRij = true;
  static std::vector<int64_t> output_widths(const ProductShapes& s) { return {9, 9LL * s.nall}; }
  DTK_PRODUCT_CALLS(prod_virial_a, p.out[0], p.out[1], p.net_deriv, p.in_deriv, p.rij, p.nlist,
                    p.nloc, p.nall, p.nnei)
};

// ProdVirialSeAGrad: grad_net (shaped like net_deriv) from grad = dL/dvirial [nframes, 9].
struct ProdVirialGradSpec {
  static constexpr bool kGrad = true;
  static constexpr bool kRij = true;
  static int64_t grad_width(const ProductShapes&) { return 9; }
  DTK_PRODUCT_CALLS(prod_virial_grad_a, p.out[0], p.grad, p.in_deriv, p.rij, p.nlist, p.nloc,
                    p.nnei)
};

DTK_REGISTER_PRODUCT_OP("ProdVirialSeA", ProdVirialSpec)
DTK_REGISTER_PRODUCT_OP("ProdVirialSeAGrad", ProdVirialGradSpec)

}  // namespace deepmd_tebd
