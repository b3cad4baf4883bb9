// The arithmetic of one neighbour slot in ProdForceSeA, ProdVirialSeA and their gradients, shared
// by the CPU kernels (prod_force.cc, prod_virial.cc) and their CUDA twins (cuda/prod_force.cu,
// cuda/prod_virial.cu), so that both evaluate the same expressions in the same order.
// A slot has four entries a of net_deriv, g[a], and of in_deriv, dd[3a + d] (d = x, y, z).
#pragma once
#include "device.h"

namespace deepmd_tebd {

// c[d] = sum_a g[a] * dd[3a + d], summed over a in order: the force the slot adds to its
// neighbour and subtracts from its centre.
template <typename T>
DTK_HD void slot_force(T* c, const T* g, const T* dd) {
  c[0] = c[1] = c[2] = T(0);
  for (int a = 0; a < 4; ++a)
    for (int d = 0; d < 3; ++d) c[d] += g[a] * dd[3 * a + d];
}

// grad_net of the slot: out[a] = w . dd[3a .. 3a+2] for a weight vector w.
template <typename T>
DTK_HD void slot_grad_net(T* out, const T* w, const T* dd) {
  for (int a = 0; a < 4; ++a) out[a] = w[0] * dd[3 * a] + w[1] * dd[3 * a + 1] + w[2] * dd[3 * a + 2];
}

// grad_net of the slot in ProdForceSeAGrad: w = -grad_i + grad_j, grad_j = 0 for an empty slot
// (gj == nullptr); gi and gj point to the three components of grad for the centre and neighbour.
template <typename T>
DTK_HD void slot_force_grad(T* out, const T* gi, const T* gj, const T* dd) {
  T w[3];
  for (int d = 0; d < 3; ++d) w[d] = -gi[d] + (gj ? gj[d] : T(0));
  slot_grad_net(out, w, dd);
}

// grad_net of the slot in ProdVirialSeAGrad: w[d0] = sum_d1 grad[d0][d1] * rr[d1] (grad [3][3],
// rr = R_j - R_i); zero for an empty slot.
template <typename T>
DTK_HD void slot_virial_grad(T* out, const T* grad, const T* rr, bool filled, const T* dd) {
  T w[3];
  for (int d0 = 0; d0 < 3; ++d0)
    w[d0] = grad[3 * d0] * rr[0] + grad[3 * d0 + 1] * rr[1] + grad[3 * d0 + 2] * rr[2];
  if (filled) {
    slot_grad_net(out, w, dd);
  } else {
    for (int a = 0; a < 4; ++a) out[a] = T(0);
  }
}

}  // namespace deepmd_tebd
