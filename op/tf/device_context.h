// The dtk_gpu_context (gpu_context.h) of one op call on the GPU: the stream of the op's context
// (OpKernelContext::eigen_gpu_device().stream()) and temporaries from context->allocate_temp.
// The temporaries are tensors held until the OpGpuContext is destroyed at the end of Compute;
// TensorFlow's GPU allocator then hands their memory only to work enqueued later on the same
// stream, so the kernels that use them are done with it.
#pragma once
#include <cstddef>
#include <deque>

#include "errors.h"
#include "gpu_context.h"
#include "tensorflow/core/framework/op_kernel.h"
#if GOOGLE_CUDA
#include "unsupported/Eigen/CXX11/Tensor"
#endif

namespace deepmd_tebd {

class OpGpuContext {
 public:
  explicit OpGpuContext(tensorflow::OpKernelContext* ctx) : ctx_(ctx) {
#if GOOGLE_CUDA
    context_.stream = ctx->eigen_gpu_device().stream();
#else
    throw DeviceError("the op library was built without CUDA");
#endif
    context_.alloc = &OpGpuContext::allocate;
    context_.user = this;
  }
  OpGpuContext(const OpGpuContext&) = delete;
  OpGpuContext& operator=(const OpGpuContext&) = delete;

  const dtk_gpu_context& get() const { return context_; }

 private:
  // dtk_device_alloc: one DT_INT8 tensor of `bytes` from allocate_temp; null when it fails
  // (the kernel library then throws DeviceOutOfMemory, a ResourceExhausted status).
  static void* allocate(void* user, size_t bytes) {
    auto* self = static_cast<OpGpuContext*>(user);
    tensorflow::Tensor t;
    const auto shape = tensorflow::TensorShape({static_cast<int64_t>(bytes)});
    if (!self->ctx_->allocate_temp(tensorflow::DT_INT8, shape, &t).ok()) return nullptr;
    self->temps_.push_back(std::move(t));
    return self->temps_.back().flat<int8_t>().data();
  }

  tensorflow::OpKernelContext* ctx_;
  dtk_gpu_context context_{nullptr, nullptr, nullptr};
  std::deque<tensorflow::Tensor> temps_;
};

}  // namespace deepmd_tebd
