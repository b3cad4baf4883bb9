// Kernels of TabulateFusionSeA, TabulateFusionSeAGrad and TabulateFusionSeAGradGrad: read and
// check the inputs, allocate the outputs, call the kernel library (tabulate.h) once per call.
#include "../kernels/include/tabulate.h"

#include "common.h"
#include "errors.h"

namespace deepmd_tebd {

// The shapes shared by the three ops, read from table, table_info, em_x and em.
struct TableShapes {
  int nloc = 0, nnei = 0;
};

// Checks table [nspline, 6*M], table_info [>= 5], em [nloc, nnei, 4] and em_x (nloc*nnei
// values); M is last_layer_size (forward) or the descriptor's last dimension (gradients).
inline bool read_table_shapes(OpKernelContext* ctx, int64_t last_layer_size, TableShapes* s) {
  const Tensor& table = ctx->input(0);
  const Tensor& info = ctx->input(1);
  const Tensor& em_x = ctx->input(2);
  const Tensor& em = ctx->input(3);
  auto fail = [&](const std::string& what) {
    ctx->SetStatus(tensorflow::errors::InvalidArgument(what));
    return false;
  };
  if (table.dims() != 2 || table.dim_size(1) != 6 * last_layer_size)
    return fail("table must have shape [nspline, 6 * " + std::to_string(last_layer_size) +
                "], got " + table.shape().DebugString());
  if (info.dims() != 1 || info.NumElements() < 5)
    return fail("table_info must be a vector of at least 5 values (lower, upper, max, stride0, "
                "stride1), got " + info.shape().DebugString());
  if (em.dims() != 3 || em.dim_size(2) != 4)
    return fail("em must have shape [nloc, nnei, 4], got " + em.shape().DebugString());
  if (em_x.dims() != 2 || em_x.NumElements() != em.dim_size(0) * em.dim_size(1))
    return fail("em_x must have shape [nloc * nnei, 1] with nloc * nnei = " +
                std::to_string(em.dim_size(0) * em.dim_size(1)) + ", got " +
                em_x.shape().DebugString());
  s->nloc = static_cast<int>(em.dim_size(0));
  s->nnei = static_cast<int>(em.dim_size(1));
  return true;
}

// Checks that a tensor named `name` has exactly `shape`.
inline bool check_shape(OpKernelContext* ctx, const Tensor& t, const char* name,
                        const TensorShape& shape) {
  if (t.shape() == shape) return true;
  ctx->SetStatus(tensorflow::errors::InvalidArgument(name, " must have shape ",
                                                     shape.DebugString(), ", got ",
                                                     t.shape().DebugString()));
  return false;
}

template <typename T>
const T* ptr(const Tensor& t) {
  return t.flat<T>().data();
}
template <typename T>
T* ptr(Tensor* t) {
  return t->flat<T>().data();
}

// The stream of the op's GPU device (GPU kernels only).
template <typename Device>
cudaStream_t op_stream(OpKernelContext* ctx) {
  if constexpr (kOnGpu<Device>)
    return reinterpret_cast<cudaStream_t>(ctx->eigen_device<Device>().stream());
  else
    return nullptr;
}

// Calls NAME_cpu(args...) or NAME_gpu(args..., stream of the op).
#define DTK_TABULATE_CALL(DEVICE, CTX, NAME, ...)                 \
  do {                                                            \
    if constexpr (::deepmd_tebd::kOnGpu<DEVICE>)                  \
      NAME##_gpu(__VA_ARGS__, op_stream<DEVICE>(CTX));            \
    else                                                          \
      NAME##_cpu(__VA_ARGS__);                                    \
  } while (false)

template <typename Device, typename T>
class TabulateFusionSeAOp : public OpKernel {
 public:
  explicit TabulateFusionSeAOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("last_layer_size", &last_layer_size_));
    OP_REQUIRES(ctx, last_layer_size_ > 0,
                tensorflow::errors::InvalidArgument("last_layer_size must be positive"));
  }

  void Compute(OpKernelContext* ctx) override {
    TableShapes s;
    if (!read_table_shapes(ctx, last_layer_size_, &s)) return;
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({s.nloc, 4, last_layer_size_}), &out));
    if (s.nloc == 0) return;
    run_kernel(ctx, [&] {
      DTK_TABULATE_CALL(Device, ctx, tabulate_fusion_se_a, ptr<T>(out), ptr<T>(ctx->input(0)),
                        ptr<T>(ctx->input(1)), ptr<T>(ctx->input(2)), ptr<T>(ctx->input(3)),
                        s.nloc, s.nnei, last_layer_size_);
    });
  }

 private:
  int last_layer_size_ = 0;
};

// Gradient ops: M is the last dimension of the descriptor input; dy (grad) or dz_dy_dem_x and
// dz_dy_dem (grad-grad) are checked against the forward shapes.
inline bool read_descriptor_width(OpKernelContext* ctx, int descriptor_input, TableShapes* s,
                                  int* m_size) {
  const Tensor& descriptor = ctx->input(descriptor_input);
  if (descriptor.dims() != 3) {
    ctx->SetStatus(tensorflow::errors::InvalidArgument(
        "descriptor must have shape [nloc, 4, M], got ", descriptor.shape().DebugString()));
    return false;
  }
  *m_size = static_cast<int>(descriptor.dim_size(2));
  return read_table_shapes(ctx, *m_size, s) &&
         check_shape(ctx, descriptor, "descriptor", TensorShape({s->nloc, 4, *m_size}));
}

template <typename Device, typename T>
class TabulateFusionSeAGradOp : public OpKernel {
 public:
  explicit TabulateFusionSeAGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    TableShapes s;
    int m_size = 0;
    if (!read_descriptor_width(ctx, 5, &s, &m_size)) return;
    const Tensor& dy = ctx->input(4);
    if (!check_shape(ctx, dy, "dy", TensorShape({s.nloc, 4, m_size}))) return;
    Tensor *dy_dem_x = nullptr, *dy_dem = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, ctx->input(2).shape(), &dy_dem_x));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, ctx->input(3).shape(), &dy_dem));
    if (s.nloc == 0) return;
    run_kernel(ctx, [&] {
      DTK_TABULATE_CALL(Device, ctx, tabulate_fusion_se_a_grad, ptr<T>(dy_dem_x), ptr<T>(dy_dem),
                        ptr<T>(ctx->input(0)), ptr<T>(ctx->input(1)), ptr<T>(ctx->input(2)),
                        ptr<T>(ctx->input(3)), ptr<T>(dy), s.nloc, s.nnei, m_size);
    });
  }
};

template <typename Device, typename T>
class TabulateFusionSeAGradGradOp : public OpKernel {
 public:
  explicit TabulateFusionSeAGradGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("is_sorted", &is_sorted_));
  }

  void Compute(OpKernelContext* ctx) override {
    TableShapes s;
    int m_size = 0;
    if (!read_descriptor_width(ctx, 6, &s, &m_size)) return;
    const Tensor& dz_dy_dem_x = ctx->input(4);
    const Tensor& dz_dy_dem = ctx->input(5);
    if (!check_shape(ctx, dz_dy_dem_x, "dz_dy_dem_x", ctx->input(2).shape()) ||
        !check_shape(ctx, dz_dy_dem, "dz_dy_dem", ctx->input(3).shape()))
      return;
    Tensor* dz_dy = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({s.nloc, 4, m_size}), &dz_dy));
    if (s.nloc == 0) return;
    run_kernel(ctx, [&] {
      DTK_TABULATE_CALL(Device, ctx, tabulate_fusion_se_a_grad_grad, ptr<T>(dz_dy),
                        ptr<T>(ctx->input(0)), ptr<T>(ctx->input(1)), ptr<T>(ctx->input(2)),
                        ptr<T>(ctx->input(3)), ptr<T>(dz_dy_dem_x), ptr<T>(dz_dy_dem), s.nloc,
                        s.nnei, m_size, is_sorted_);
    });
  }

 private:
  bool is_sorted_ = true;
};

// table_info stays in host memory on the GPU, as in DeePMD-kit (its values are launch
// parameters).
#define DTK_REGISTER_TABULATE(DEV, DEVICE, T)                                               \
  REGISTER_KERNEL_BUILDER(                                                                  \
      Name("TabulateFusionSeA").Device(DEV).TypeConstraint<T>("T").HostMemory("table_info"), \
      TabulateFusionSeAOp<DEVICE, T>);                                                      \
  REGISTER_KERNEL_BUILDER(Name("TabulateFusionSeAGrad")                                     \
                              .Device(DEV)                                                  \
                              .TypeConstraint<T>("T")                                       \
                              .HostMemory("table_info"),                                    \
                          TabulateFusionSeAGradOp<DEVICE, T>);                              \
  REGISTER_KERNEL_BUILDER(Name("TabulateFusionSeAGradGrad")                                 \
                              .Device(DEV)                                                  \
                              .TypeConstraint<T>("T")                                       \
                              .HostMemory("table_info"),                                    \
                          TabulateFusionSeAGradGradOp<DEVICE, T>);

DTK_REGISTER_TABULATE(tensorflow::DEVICE_CPU, CPUDevice, float)
DTK_REGISTER_TABULATE(tensorflow::DEVICE_CPU, CPUDevice, double)
#if GOOGLE_CUDA
DTK_REGISTER_TABULATE(tensorflow::DEVICE_GPU, GPUDevice, float)
DTK_REGISTER_TABULATE(tensorflow::DEVICE_GPU, GPUDevice, double)
#endif

}  // namespace deepmd_tebd
