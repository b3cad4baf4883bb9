// Small helpers shared by the CUDA kernels: error checking, an owning device buffer, launch
// geometry for grid-stride loops and warp reductions. CUDA runtime API only.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <string>

#include "errors.h"

namespace deepmd_tebd {
namespace gpu {

// Throws DeviceError naming the failed call and the CUDA error string.
inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw DeviceError(std::string(what) + ": " + cudaGetErrorName(status) + ": " +
                      cudaGetErrorString(status));
}

// Checks the launch of the kernel just enqueued (configuration errors, earlier sticky errors).
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

// Owning device allocation of n elements (no allocation for n == 0). Not copyable.
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t n) { resize(n); }
  ~DeviceBuffer() { release(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  // Discards the contents and allocates n elements.
  void resize(size_t n) {
    release();
    if (n > 0) check(cudaMalloc(reinterpret_cast<void**>(&ptr_), n * sizeof(T)), "cudaMalloc");
    size_ = n;
  }
  T* get() const { return ptr_; }
  size_t size() const { return size_; }

  void upload(const T* host, size_t n) {
    if (n > 0) check(cudaMemcpy(ptr_, host, n * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy H2D");
  }
  void download(T* host, size_t n) const {
    if (n > 0) check(cudaMemcpy(host, ptr_, n * sizeof(T), cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
  }

 private:
  void release() {
    // Errors of cudaFree are ignored: a destructor may run while an exception propagates.
    if (ptr_) cudaFree(ptr_);
    ptr_ = nullptr;
    size_ = 0;
  }
  T* ptr_ = nullptr;
  size_t size_ = 0;
};

// Copies one value from device memory (synchronous).
template <typename T>
T read_device_value(const T* device_ptr) {
  T value;
  check(cudaMemcpy(&value, device_ptr, sizeof(T), cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
  return value;
}

// Runs a CUB device algorithm: first call sizes the temporary storage, second call runs it.
// f(void* temp, size_t& bytes) -> cudaError_t.
template <class F>
void run_cub(F&& f, const char* what) {
  size_t bytes = 0;
  check(f(nullptr, bytes), what);
  DeviceBuffer<unsigned char> temp(bytes > 0 ? bytes : 1);
  check(f(temp.get(), bytes), what);
}

constexpr int kBlock = 256;      // threads per block of the element-wise kernels
constexpr int kWarpBlock = 128;  // threads per block of the warp-per-centre kernels
constexpr int kWarpsPerBlock = kWarpBlock / 32;
constexpr unsigned kFullMask = 0xffffffffu;

// Blocks for a grid-stride loop over n items with `block` threads each (at least one block;
// capped, the loops stride over the rest).
inline unsigned grid_for(long long n, int block = kBlock) {
  long long blocks = (n + block - 1) / block;
  if (blocks < 1) blocks = 1;
  if (blocks > (1LL << 24)) blocks = 1LL << 24;
  return static_cast<unsigned>(blocks);
}

// Blocks for kernels that give one warp to each of n centres.
inline unsigned grid_for_warps(long long n) { return grid_for(n * 32, kWarpBlock); }

// Sum over the 32 lanes of a warp; every lane gets the result. All lanes must call it.
template <typename T>
__device__ inline T warp_sum(T v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}

}  // namespace gpu
}  // namespace deepmd_tebd
