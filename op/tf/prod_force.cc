// ProdForceSeA and ProdForceSeAGrad kernels.
#include "common.h"
#include "errors.h"
#include "prod_force.h"
#include "product_shapes.h"
#include "tensorflow/core/framework/op_kernel.h"

namespace deepmd_tebd {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using CPUDevice = Eigen::ThreadPoolDevice;
using GPUDevice = Eigen::GpuDevice;

template <typename Device, typename T>
struct ForceLauncher {
  static void force(T* f, const T* g, const T* d, const int* nl, int nloc, int nall, int nnei) {
    prod_force_a_cpu(f, g, d, nl, nloc, nall, nnei);
  }
  static void grad(T* out, const T* grad, const T* d, const int* nl, int nloc, int nnei) {
    prod_force_grad_a_cpu(out, grad, d, nl, nloc, nnei);
  }
};

#if GOOGLE_CUDA
template <typename T>
struct ForceLauncher<GPUDevice, T> {
  static void force(T* f, const T* g, const T* d, const int* nl, int nloc, int nall, int nnei) {
    prod_force_a_gpu(f, g, d, nl, nloc, nall, nnei);
  }
  static void grad(T* out, const T* grad, const T* d, const int* nl, int nloc, int nnei) {
    prod_force_grad_a_gpu(out, grad, d, nl, nloc, nnei);
  }
};
#endif

template <typename Device, typename T>
class ProdForceSeAOp : public OpKernel {
 public:
  explicit ProdForceSeAOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    int n_a_sel, n_r_sel;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("n_a_sel", &n_a_sel));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("n_r_sel", &n_r_sel));
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& net_deriv = ctx->input(0);
    const Tensor& in_deriv = ctx->input(1);
    const Tensor& nlist = ctx->input(2);
    ProductShapes s;
    if (!read_product_shapes(ctx, net_deriv, in_deriv, nlist, ctx->input(3), &s)) return;
    Tensor* force;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({s.nframes, 3LL * s.nall}), &force));
    run_kernel(ctx, [&] {
      for (int64_t f = 0; f < s.nframes; ++f)
        ForceLauncher<Device, T>::force(
            force->matrix<T>().data() + f * 3LL * s.nall,
            net_deriv.matrix<T>().data() + f * net_deriv.dim_size(1),
            in_deriv.matrix<T>().data() + f * in_deriv.dim_size(1),
            nlist.matrix<int>().data() + f * nlist.dim_size(1), s.nloc, s.nall, s.nnei);
    });
  }
};

template <typename Device, typename T>
class ProdForceSeAGradOp : public OpKernel {
 public:
  explicit ProdForceSeAGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    int n_a_sel, n_r_sel;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("n_a_sel", &n_a_sel));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("n_r_sel", &n_r_sel));
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& grad = ctx->input(0);
    const Tensor& net_deriv = ctx->input(1);
    const Tensor& in_deriv = ctx->input(2);
    const Tensor& nlist = ctx->input(3);
    ProductShapes s;
    if (!read_product_shapes(ctx, net_deriv, in_deriv, nlist, ctx->input(4), &s)) return;
    if (!check_matrix(ctx, grad, "grad", s.nframes, 3LL * s.nall)) return;
    Tensor* out;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, net_deriv.shape(), &out));
    run_kernel(ctx, [&] {
      for (int64_t f = 0; f < s.nframes; ++f)
        ForceLauncher<Device, T>::grad(out->matrix<T>().data() + f * out->dim_size(1),
                                       grad.matrix<T>().data() + f * grad.dim_size(1),
                                       in_deriv.matrix<T>().data() + f * in_deriv.dim_size(1),
                                       nlist.matrix<int>().data() + f * nlist.dim_size(1),
                                       s.nloc, s.nnei);
    });
  }
};

#define REGISTER(DEV, DEVICE, T)                                                              \
  REGISTER_KERNEL_BUILDER(                                                                    \
      Name("ProdForceSeA").Device(DEV).TypeConstraint<T>("T").HostMemory("natoms"),           \
      ProdForceSeAOp<DEVICE, T>);                                                             \
  REGISTER_KERNEL_BUILDER(                                                                    \
      Name("ProdForceSeAGrad").Device(DEV).TypeConstraint<T>("T").HostMemory("natoms"),       \
      ProdForceSeAGradOp<DEVICE, T>);
REGISTER(tensorflow::DEVICE_CPU, CPUDevice, float)
REGISTER(tensorflow::DEVICE_CPU, CPUDevice, double)
#if GOOGLE_CUDA
REGISTER(tensorflow::DEVICE_GPU, GPUDevice, float)
REGISTER(tensorflow::DEVICE_GPU, GPUDevice, double)
#endif
#undef REGISTER

}  // namespace deepmd_tebd
