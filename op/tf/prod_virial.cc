// ProdVirialSeA and ProdVirialSeAGrad kernels.
#include "common.h"
#include "errors.h"
#include "product_shapes.h"
#include "prod_virial.h"
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
struct VirialLauncher {
  static void virial(T* v, T* av, const T* g, const T* d, const T* rij, const int* nl, int nloc,
                     int nall, int nnei) {
    prod_virial_a_cpu(v, av, g, d, rij, nl, nloc, nall, nnei);
  }
  static void grad(T* out, const T* grad, const T* d, const T* rij, const int* nl, int nloc,
                   int nnei) {
    prod_virial_grad_a_cpu(out, grad, d, rij, nl, nloc, nnei);
  }
};

#if GOOGLE_CUDA
template <typename T>
struct VirialLauncher<GPUDevice, T> {
  static void virial(T* v, T* av, const T* g, const T* d, const T* rij, const int* nl, int nloc,
                     int nall, int nnei) {
    prod_virial_a_gpu(v, av, g, d, rij, nl, nloc, nall, nnei);
  }
  static void grad(T* out, const T* grad, const T* d, const T* rij, const int* nl, int nloc,
                   int nnei) {
    prod_virial_grad_a_gpu(out, grad, d, rij, nl, nloc, nnei);
  }
};
#endif

template <typename Device, typename T>
class ProdVirialSeAOp : public OpKernel {
 public:
  explicit ProdVirialSeAOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    int n_a_sel, n_r_sel;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("n_a_sel", &n_a_sel));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("n_r_sel", &n_r_sel));
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& net_deriv = ctx->input(0);
    const Tensor& in_deriv = ctx->input(1);
    const Tensor& rij = ctx->input(2);
    const Tensor& nlist = ctx->input(3);
    ProductShapes s;
    if (!read_product_shapes(ctx, net_deriv, in_deriv, nlist, ctx->input(4), &s)) return;
    if (!check_matrix(ctx, rij, "rij", s.nframes, 3LL * s.nloc * s.nnei)) return;
    Tensor *virial, *atom_virial;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({s.nframes, 9}), &virial));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({s.nframes, 9LL * s.nall}), &atom_virial));
    run_kernel(ctx, [&] {
      for (int64_t f = 0; f < s.nframes; ++f)
        VirialLauncher<Device, T>::virial(
            virial->matrix<T>().data() + f * 9,
            atom_virial->matrix<T>().data() + f * 9LL * s.nall,
            net_deriv.matrix<T>().data() + f * net_deriv.dim_size(1),
            in_deriv.matrix<T>().data() + f * in_deriv.dim_size(1),
            rij.matrix<T>().data() + f * rij.dim_size(1),
            nlist.matrix<int>().data() + f * nlist.dim_size(1), s.nloc, s.nall, s.nnei);
    });
  }
};

template <typename Device, typename T>
class ProdVirialSeAGradOp : public OpKernel {
 public:
  explicit ProdVirialSeAGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    int n_a_sel, n_r_sel;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("n_a_sel", &n_a_sel));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("n_r_sel", &n_r_sel));
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& grad = ctx->input(0);
    const Tensor& net_deriv = ctx->input(1);
    const Tensor& in_deriv = ctx->input(2);
    const Tensor& rij = ctx->input(3);
    const Tensor& nlist = ctx->input(4);
    ProductShapes s;
    if (!read_product_shapes(ctx, net_deriv, in_deriv, nlist, ctx->input(5), &s)) return;
    if (!check_matrix(ctx, rij, "rij", s.nframes, 3LL * s.nloc * s.nnei)) return;
    if (!check_matrix(ctx, grad, "grad", s.nframes, 9)) return;
    Tensor* out;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, net_deriv.shape(), &out));
    run_kernel(ctx, [&] {
      for (int64_t f = 0; f < s.nframes; ++f)
        VirialLauncher<Device, T>::grad(out->matrix<T>().data() + f * out->dim_size(1),
                                        grad.matrix<T>().data() + f * 9,
                                        in_deriv.matrix<T>().data() + f * in_deriv.dim_size(1),
                                        rij.matrix<T>().data() + f * rij.dim_size(1),
                                        nlist.matrix<int>().data() + f * nlist.dim_size(1),
                                        s.nloc, s.nnei);
    });
  }
};

#define REGISTER(DEV, DEVICE, T)                                                              \
  REGISTER_KERNEL_BUILDER(                                                                    \
      Name("ProdVirialSeA").Device(DEV).TypeConstraint<T>("T").HostMemory("natoms"),          \
      ProdVirialSeAOp<DEVICE, T>);                                                            \
  REGISTER_KERNEL_BUILDER(                                                                    \
      Name("ProdVirialSeAGrad").Device(DEV).TypeConstraint<T>("T").HostMemory("natoms"),      \
      ProdVirialSeAGradOp<DEVICE, T>);
REGISTER(tensorflow::DEVICE_CPU, CPUDevice, float)
REGISTER(tensorflow::DEVICE_CPU, CPUDevice, double)
#if GOOGLE_CUDA
REGISTER(tensorflow::DEVICE_GPU, GPUDevice, float)
REGISTER(tensorflow::DEVICE_GPU, GPUDevice, double)
#endif
#undef REGISTER

}  // namespace deepmd_tebd
