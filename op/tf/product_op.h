// The one kernel class of DeePMD-kit's four product ops (ProdForceSeA, ProdVirialSeA and their
// gradients ProdForceSeAGrad, ProdVirialSeAGrad): the inputs are read and checked, the outputs
// allocated and the kernel library called here, once: frame by frame on the CPU, all frames in
// one call on the GPU (on the op context's stream, temporaries from allocate_temp:
// device_context.h). Each op is described by a small Spec struct (prod_force.cc,
// prod_virial.cc) that names its optional inputs, its outputs and the kernel library calls.
#pragma once
#include <limits>
#include <vector>

#include "common.h"
#include "device_context.h"
#include "errors.h"
#include "tensorflow/core/framework/op_kernel.h"

namespace deepmd_tebd {

// Shapes shared by the product ops: net_deriv [nf, nloc*ndescrpt], in_deriv [nf, nloc*ndescrpt*3],
// nlist [nf, nloc*nnei], with ndescrpt = 4*nnei.
struct ProductShapes {
  int64_t nframes = 0;
  int nloc = 0, nall = 0, nnei = 0;
};

// Reads nframes, nloc, nall and nnei and checks the shapes of net_deriv, in_deriv and nlist.
// nnei (the width of nlist per local atom) must equal n_a_sel + n_r_sel: DeePMD-kit requires
// this in its gradient ops (source/op/prod_force_grad_multi_device.cc and
// source/op/prod_virial_grad_multi_device.cc, _Compute: "number of neighbors should match");
// here all four product ops check it. With nloc == 0 there is no width to compare.
inline bool read_product_shapes(OpKernelContext* ctx, const Tensor& net_deriv,
                                const Tensor& in_deriv, const Tensor& nlist,
                                const Tensor& natoms, int n_a_sel, int n_r_sel,
                                ProductShapes* s) {
  AtomCounts n;
  if (!read_natoms(ctx, natoms, &n)) return false;
  s->nloc = n.nloc;
  s->nall = n.nall;
  if (net_deriv.dims() != 2 || nlist.dims() != 2) {
    ctx->SetStatus(tensorflow::errors::InvalidArgument("net_deriv and nlist must be of rank 2"));
    return false;
  }
  s->nframes = net_deriv.dim_size(0);
  if (s->nloc == 0) return check_matrix(ctx, nlist, "nlist", s->nframes, 0);
  if (nlist.dim_size(1) % s->nloc != 0) {
    ctx->SetStatus(tensorflow::errors::InvalidArgument(
        "nlist width ", nlist.dim_size(1), " is not a multiple of nloc ", s->nloc));
    return false;
  }
  s->nnei = static_cast<int>(nlist.dim_size(1) / s->nloc);
  if (int64_t(s->nnei) != int64_t(n_a_sel) + n_r_sel) {
    ctx->SetStatus(tensorflow::errors::InvalidArgument(
        "nlist has ", s->nnei, " neighbours per atom (width ", nlist.dim_size(1), " / nloc ",
        s->nloc, ") but n_a_sel + n_r_sel = ", n_a_sel, " + ", n_r_sel, " = ",
        int64_t(n_a_sel) + n_r_sel));
    return false;
  }
  const int64_t ndescrpt = 4LL * s->nnei;
  return check_matrix(ctx, nlist, "nlist", s->nframes, int64_t(s->nloc) * s->nnei) &&
         check_matrix(ctx, net_deriv, "net_deriv", s->nframes, s->nloc * ndescrpt) &&
         check_matrix(ctx, in_deriv, "in_deriv", s->nframes, s->nloc * ndescrpt * 3);
}

// One frame of a product op call, as the kernel library takes it; on the GPU, the first of
// nframes frames stored one after the other.
template <typename T>
struct ProductFrame {
  T* out[2];           // the op's outputs (force | virial, atom_virial | grad_net)
  const T* grad;       // gradient ops: dL/d(output of the forward op); else null
  const T* net_deriv;  // [nloc*ndescrpt]
  const T* in_deriv;   // [nloc*ndescrpt*3]
  const T* rij;        // virial ops: [nloc*nnei*3]; else null
  const int* nlist;    // [nloc*nnei]
  int nloc, nall, nnei;
};

// Defines a Spec's kernel library calls: NAME_cpu(ARGS...) for one frame p and
// NAME_gpu(c, nframes, ARGS...) for nframes frames from p on; ARGS name fields of p.
#define DTK_PRODUCT_CALLS(NAME, ...)                                                         \
  template <typename T>                                                                      \
  static void cpu(const ProductFrame<T>& p) {                                                \
    NAME##_cpu(__VA_ARGS__);                                                                 \
  }                                                                                          \
  template <typename T>                                                                      \
  static void gpu(const dtk_gpu_context& c, int nframes, const ProductFrame<T>& p) {         \
    NAME##_gpu(c, nframes, __VA_ARGS__);                                                     \
  }

// Kernel of one product op. The inputs are [grad,] net_deriv, in_deriv, [rij,] nlist, natoms.
// Spec provides
//   kGrad, kRij                  whether the op takes grad (first input) and rij (after in_deriv)
//   grad_width(s)                (kGrad) columns of grad; the op returns one tensor shaped like
//                                net_deriv
//   output_widths(s)             (!kGrad) columns of each output (one or two), all
//                                [nframes, width]
//   cpu<T>(frame), gpu<T>(context, nframes, frame0)
//                                the kernel library calls, one frame on the CPU and all frames
//                                on the GPU (DTK_PRODUCT_CALLS)
template <typename Device, typename T, class Spec>
class ProductOp : public OpKernel {
 public:
  explicit ProductOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("n_a_sel", &n_a_sel_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("n_r_sel", &n_r_sel_));
  }

  void Compute(OpKernelContext* ctx) override {
    int k = 0;
    const Tensor* grad = Spec::kGrad ? &ctx->input(k++) : nullptr;
    const Tensor& net_deriv = ctx->input(k++);
    const Tensor& in_deriv = ctx->input(k++);
    const Tensor* rij = Spec::kRij ? &ctx->input(k++) : nullptr;
    const Tensor& nlist = ctx->input(k++);
    ProductShapes s;
    if (!read_product_shapes(ctx, net_deriv, in_deriv, nlist, ctx->input(k), n_a_sel_, n_r_sel_,
                             &s))
      return;
    if (rij && !check_matrix(ctx, *rij, "rij", s.nframes, 3LL * s.nloc * s.nnei)) return;
    Tensor* out[2] = {nullptr, nullptr};
    size_t nout = 1;
    if constexpr (Spec::kGrad) {
      if (!check_matrix(ctx, *grad, "grad", s.nframes, Spec::grad_width(s))) return;
      OP_REQUIRES_OK(ctx, ctx->allocate_output(0, net_deriv.shape(), &out[0]));
    } else {
      const std::vector<int64_t> widths = Spec::output_widths(s);
      nout = widths.size();
      for (size_t o = 0; o < nout; ++o)
        OP_REQUIRES_OK(ctx, ctx->allocate_output(static_cast<int>(o),
                                                 TensorShape({s.nframes, widths[o]}), &out[o]));
    }
    auto frame = [&](int64_t f) {
      ProductFrame<T> p{{nullptr, nullptr}, nullptr, frame_row<T>(net_deriv, f),
                        frame_row<T>(in_deriv, f), nullptr, frame_row<int>(nlist, f),
                        s.nloc, s.nall, s.nnei};
      for (size_t o = 0; o < nout; ++o) p.out[o] = frame_row<T>(out[o], f);
      if (grad) p.grad = frame_row<T>(*grad, f);
      if (rij) p.rij = frame_row<T>(*rij, f);
      return p;
    };
    run_kernel(ctx, [&] {
      if constexpr (kOnGpu<Device>) {
        if (s.nframes > std::numeric_limits<int>::max())
          throw InvalidArgument("more than 2^31 frames in one call");
        OpGpuContext gpu(ctx);
        Spec::template gpu<T>(gpu.get(), static_cast<int>(s.nframes), frame(0));
      } else {
        for (int64_t f = 0; f < s.nframes; ++f) Spec::template cpu<T>(frame(f));
      }
    });
  }

 private:
  int n_a_sel_ = 0, n_r_sel_ = 0;
};

// Registers the kernels of the product op NAME (described by SPEC) for float and double, on the
// CPU and, in CUDA builds, on the GPU; natoms stays in host memory on both.
#define DTK_REGISTER_PRODUCT_KERNEL(NAME, SPEC, DEV, DEVICE, T)                                \
  REGISTER_KERNEL_BUILDER(                                                                   \
      Name(NAME).Device(DEV).TypeConstraint<T>("T").HostMemory("natoms"),                    \
      ProductOp<DEVICE, T, SPEC>);
#if GOOGLE_CUDA
#define DTK_REGISTER_PRODUCT_GPU(NAME, SPEC)                                                 \
  DTK_REGISTER_PRODUCT_KERNEL(NAME, SPEC, tensorflow::DEVICE_GPU, GPUDevice, float)          \
  DTK_REGISTER_PRODUCT_KERNEL(NAME, SPEC, tensorflow::DEVICE_GPU, GPUDevice, double)
#else
#define DTK_REGISTER_PRODUCT_GPU(NAME, SPEC)
#endif
#define DTK_REGISTER_PRODUCT_OP(NAME, SPEC)                                                  \
  DTK_REGISTER_PRODUCT_KERNEL(NAME, SPEC, tensorflow::DEVICE_CPU, CPUDevice, float)          \
  DTK_REGISTER_PRODUCT_KERNEL(NAME, SPEC, tensorflow::DEVICE_CPU, CPUDevice, double)         \
  DTK_REGISTER_PRODUCT_GPU(NAME, SPEC)

}  // namespace deepmd_tebd
