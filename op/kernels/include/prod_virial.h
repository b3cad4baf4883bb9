// ProdVirialSeA and its gradient: virial and per-atom virial from the network derivative.
#pragma once

namespace deepmd_tebd {

// One frame. For each filled slot (centre i, neighbour j) and its four entries a:
//   V[d0][d1] += g[i,a] in_deriv[i,a,d0] rij[i,slot,d1], and the same into atom_virial[j].
// virial [9] and atom_virial [nall*9] are overwritten.
template <typename T>
void prod_virial_a_cpu(T* virial, T* atom_virial, const T* net_deriv, const T* in_deriv,
                       const T* rij, const int* nlist, int nloc, int nall, int nnei);

// Gradient of a scalar L through the virial: grad [9] = dL/dV -> grad_net [nloc, nnei*4].
template <typename T>
void prod_virial_grad_a_cpu(T* grad_net, const T* grad, const T* in_deriv, const T* rij,
                            const int* nlist, int nloc, int nnei);

template <typename T>
void prod_virial_a_gpu(T* virial, T* atom_virial, const T* net_deriv, const T* in_deriv,
                       const T* rij, const int* nlist, int nloc, int nall, int nnei);
template <typename T>
void prod_virial_grad_a_gpu(T* grad_net, const T* grad, const T* in_deriv, const T* rij,
                            const int* nlist, int nloc, int nnei);

}  // namespace deepmd_tebd
