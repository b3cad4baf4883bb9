// Exceptions thrown by the TensorFlow-free kernels. The op wrappers translate them into
// TensorFlow statuses in one place (op/tf/errors.h); the C API of the kernel library turns them
// into return codes and a message.
#pragma once
#include <stdexcept>
#include <string>

namespace deepmd_tebd {

// An input that violates the kernel's contract (shapes, sizes, mesh layout, box).
struct InvalidArgument : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// A CUDA runtime failure (launch, copy).
struct DeviceError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The caller's allocation callback (gpu_context.h) had no device memory left.
struct DeviceOutOfMemory : DeviceError {
  using DeviceError::DeviceError;
};

}  // namespace deepmd_tebd
