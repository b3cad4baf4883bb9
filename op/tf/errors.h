// Translation of kernel-library exceptions into TensorFlow statuses, in one place.
#pragma once
#include <exception>
#include <new>

#include "../kernels/include/errors.h"
#include "tensorflow/core/framework/op_kernel.h"

namespace deepmd_tebd {

// Runs f(), which calls the kernel library, and turns its exceptions into the op's status.
template <class F>
void run_kernel(tensorflow::OpKernelContext* ctx, F&& f) {
  try {
    f();
  } catch (const InvalidArgument& e) {
    ctx->SetStatus(tensorflow::errors::InvalidArgument(e.what()));
  } catch (const DeviceOutOfMemory& e) {
    ctx->SetStatus(tensorflow::errors::ResourceExhausted(e.what()));
  } catch (const DeviceError& e) {
    ctx->SetStatus(tensorflow::errors::Internal(e.what()));
  } catch (const std::bad_alloc&) {
    ctx->SetStatus(tensorflow::errors::ResourceExhausted("out of host memory in ", ctx->op_kernel().type_string()));
  } catch (const std::exception& e) {
    ctx->SetStatus(tensorflow::errors::Internal(e.what()));
  }
}

}  // namespace deepmd_tebd
