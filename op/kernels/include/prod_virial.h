// ProdVirialSeA and its gradient: virial and per-atom virial from the network derivative.
#pragma once

namespace deepmd_tebd {

// The virial kernels of one device, one frame each. DEV is cpu (host pointers) or gpu (CUDA device
// pointers; defined in the CUDA build only): the twins share this signature. PREFIX is
// `template <typename T>` for the declarations below and `template` for the explicit
// instantiations (T = float, double) in prod_virial.cc and cuda/prod_virial.cu.
//   prod_virial_a_DEV       for each filled slot (centre i, neighbour j) and its four entries a:
//                           V[d0][d1] += g[i,a] in_deriv[i,a,d0] rij[i,slot,d1], and the same
//                           into atom_virial[j]; virial [9] and atom_virial [nall*9] are
//                           overwritten.
//   prod_virial_grad_a_DEV  gradient of a scalar L through the virial: grad [9] = dL/dV
//                           -> grad_net [nloc, nnei*4].
#define DTK_PROD_VIRIAL_KERNELS(PREFIX, DEV, T)                                                 \
  PREFIX void prod_virial_a_##DEV(T* virial, T* atom_virial, const T* net_deriv,               \
                                  const T* in_deriv, const T* rij, const int* nlist, int nloc,  \
                                  int nall, int nnei);                                          \
  PREFIX void prod_virial_grad_a_##DEV(T* grad_net, const T* grad, const T* in_deriv,          \
                                       const T* rij, const int* nlist, int nloc, int nnei);

// prod_virial_a_cpu, prod_virial_grad_a_cpu
DTK_PROD_VIRIAL_KERNELS(template <typename T>, cpu, T)
// prod_virial_a_gpu, prod_virial_grad_a_gpu
DTK_PROD_VIRIAL_KERNELS(template <typename T>, gpu, T)

}  // namespace deepmd_tebd
