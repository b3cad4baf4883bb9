// ProdVirialSeA and its gradient: virial and per-atom virial from the network derivative.
#pragma once
#include "gpu_context.h"

namespace deepmd_tebd {

// The virial kernels of one device. DEV is cpu (host pointers, one frame) or gpu (CUDA device
// pointers, nframes frames one after the other, grad [nframes, 9] in the gradient; CUDA build
// only). LEAD is DTK_CPU_LEAD or DTK_GPU_LEAD (gpu_context.h); otherwise the twins share this
// signature. PREFIX is
// `template <typename T>` for the declarations below and `template` for the explicit
// instantiations (T = float, double) in prod_virial.cc and cuda/prod_virial.cu.
//   prod_virial_a_DEV       for each filled slot (centre i, neighbour j) and its four entries a:
//                           V[d0][d1] += g[i,a] in_deriv[i,a,d0] rij[i,slot,d1], and the same
//                           into atom_virial[j]; virial [9] and atom_virial [nall*9] are
//                           overwritten.
//   prod_virial_grad_a_DEV  gradient of a scalar L through the virial: grad [9] = dL/dV
//                           -> grad_net [nloc, nnei*4].
#define DTK_PROD_VIRIAL_KERNELS(PREFIX, DEV, LEAD, T)                                           \
  PREFIX void prod_virial_a_##DEV(LEAD T* virial, T* atom_virial, const T* net_deriv,              \
                                  const T* in_deriv, const T* rij, const int* nlist, int nloc,  \
                                  int nall, int nnei);                                          \
  PREFIX void prod_virial_grad_a_##DEV(LEAD T* grad_net, const T* grad, const T* in_deriv,         \
                                       const T* rij, const int* nlist, int nloc, int nnei);

// prod_virial_a_cpu, prod_virial_grad_a_cpu
DTK_PROD_VIRIAL_KERNELS(template <typename T>, cpu, DTK_CPU_LEAD, T)
// prod_virial_a_gpu, prod_virial_grad_a_gpu
DTK_PROD_VIRIAL_KERNELS(template <typename T>, gpu, DTK_GPU_LEAD, T)

}  // namespace deepmd_tebd
