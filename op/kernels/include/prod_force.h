// ProdForceSeA and its gradient: forces from the network derivative dE/dR~ (net_deriv).
#pragma once

namespace deepmd_tebd {

// One frame. net_deriv [nloc, nnei*4], in_deriv [nloc, nnei*4*3], nlist [nloc, nnei].
// force [nall*3] is overwritten: F_i -= g.in_deriv for the centre, F_j += g.in_deriv for the
// neighbour j in each slot.
template <typename T>
void prod_force_a_cpu(T* force, const T* net_deriv, const T* in_deriv, const int* nlist, int nloc,
                      int nall, int nnei);

// Gradient of a scalar L through the force: grad [nall*3] = dL/dF -> grad_net [nloc, nnei*4].
template <typename T>
void prod_force_grad_a_cpu(T* grad_net, const T* grad, const T* in_deriv, const int* nlist,
                           int nloc, int nnei);

template <typename T>
void prod_force_a_gpu(T* force, const T* net_deriv, const T* in_deriv, const int* nlist, int nloc,
                      int nall, int nnei);
template <typename T>
void prod_force_grad_a_gpu(T* grad_net, const T* grad, const T* in_deriv, const int* nlist,
                           int nloc, int nnei);

}  // namespace deepmd_tebd
