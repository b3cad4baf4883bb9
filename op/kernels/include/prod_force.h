// ProdForceSeA and its gradient: forces from the network derivative dE/dR~ (net_deriv).
#pragma once
#include "gpu_context.h"

namespace deepmd_tebd {

// The force kernels of one device. DEV is cpu (host pointers, one frame) or gpu (CUDA device
// pointers, nframes frames stored one after the other; defined in the CUDA build only). LEAD is
// the leading parameters: none on the CPU, the context and the frame count on the GPU
// (DTK_GPU_LEAD; every launch and memset on ctx.stream, no read-back); otherwise the twins share
// this signature. PREFIX is `template <typename T>` for the declarations below and `template`
// for the explicit instantiations (T = float, double) in prod_force.cc and cuda/prod_force.cu.
//   prod_force_a_DEV       net_deriv [nloc, nnei*4], in_deriv [nloc, nnei*4*3], nlist [nloc, nnei]
//                          -> force [nall*3], overwritten: F_i -= g.in_deriv for the centre,
//                          F_j += g.in_deriv for the neighbour j in each slot.
//   prod_force_grad_a_DEV  gradient of a scalar L through the force: grad [nall*3] = dL/dF
//                          -> grad_net [nloc, nnei*4].
#define DTK_PROD_FORCE_KERNELS(PREFIX, DEV, LEAD, T)                                            \
  PREFIX void prod_force_a_##DEV(LEAD T* force, const T* net_deriv, const T* in_deriv,             \
                                 const int* nlist, int nloc, int nall, int nnei);               \
  PREFIX void prod_force_grad_a_##DEV(LEAD T* grad_net, const T* grad, const T* in_deriv,      \
                                      const int* nlist, int nloc, int nall, int nnei);

// prod_force_a_cpu, prod_force_grad_a_cpu
DTK_PROD_FORCE_KERNELS(template <typename T>, cpu, DTK_CPU_LEAD, T)
// prod_force_a_gpu, prod_force_grad_a_gpu
DTK_PROD_FORCE_KERNELS(template <typename T>, gpu, DTK_GPU_LEAD, T)

}  // namespace deepmd_tebd
