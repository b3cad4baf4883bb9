// Small helpers shared by the CUDA kernels: error checking, temporaries from the caller's
// allocator, stream-ordered copies, launch geometry for grid-stride loops and warp reductions.
// CUDA runtime API only; every operation takes the stream of a dtk_gpu_context.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <string>

#include "errors.h"
#include "gpu_context.h"

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

// n elements of device memory from the caller's allocator (gpu_context.h), valid for the work
// enqueued on ctx.stream during the current kernel-function call. At least one element is
// allocated, so the pointer is never null.
template <typename T>
T* device_alloc(const dtk_gpu_context& ctx, size_t n, const char* what) {
  const size_t bytes = (n > 0 ? n : 1) * sizeof(T);
  void* p = ctx.alloc ? ctx.alloc(ctx.user, bytes) : nullptr;
  if (!p)
    throw DeviceOutOfMemory(std::string("no device memory for ") + what + " (" +
                            std::to_string(bytes) + " bytes)");
  return static_cast<T*>(p);
}

// Copies n elements between host and device on ctx.stream (no-op for n == 0).
template <typename T>
void copy_async(const dtk_gpu_context& ctx, T* dst, const T* src, size_t n, cudaMemcpyKind kind) {
  if (n > 0) check(cudaMemcpyAsync(dst, src, n * sizeof(T), kind, ctx.stream), "cudaMemcpyAsync");
}

// Sets n elements to the byte `value` on ctx.stream (no-op for n == 0).
template <typename T>
void fill_bytes_async(const dtk_gpu_context& ctx, T* dst, int value, size_t n) {
  if (n > 0) check(cudaMemsetAsync(dst, value, n * sizeof(T), ctx.stream), "cudaMemsetAsync");
}

// The one host read-back of a kernel function: copies n elements to host memory and waits for
// ctx.stream to reach the copy.
template <typename T>
void read_back(const dtk_gpu_context& ctx, T* host, const T* device, size_t n) {
  copy_async(ctx, host, device, n, cudaMemcpyDeviceToHost);
  check(cudaStreamSynchronize(ctx.stream), "cudaStreamSynchronize");
}

// Device buffers reused by the frames of one kernel-function call: slot k is reallocated from the
// caller's allocator only when a frame needs more than it already holds. Safe because the work
// of all frames is ordered on the one stream.
class Scratch {
 public:
  static constexpr int kSlots = 16;
  explicit Scratch(const dtk_gpu_context& ctx) : ctx_(ctx) {}
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  // n elements in slot `slot` (0 <= slot < kSlots), valid until the slot is asked for more.
  template <typename T>
  T* get(int slot, size_t n, const char* what) {
    const size_t bytes = (n > 0 ? n : 1) * sizeof(T);
    if (bytes > capacity_[slot]) {
      buffer_[slot] = device_alloc<unsigned char>(ctx_, bytes, what);
      capacity_[slot] = bytes;
    }
    return reinterpret_cast<T*>(buffer_[slot]);
  }

 private:
  const dtk_gpu_context& ctx_;
  unsigned char* buffer_[kSlots] = {};
  size_t capacity_[kSlots] = {};
};

// Runs a CUB device algorithm on ctx.stream: the first call sizes the temporary storage (from
// `scratch` slot `slot` when given, else a fresh allocation), the second runs it.
// f(void* temp, size_t& bytes, cudaStream_t stream) -> cudaError_t.
template <class F>
void run_cub(const dtk_gpu_context& ctx, F&& f, const char* what, Scratch* scratch = nullptr,
             int slot = 0) {
  size_t bytes = 0;
  check(f(nullptr, bytes, ctx.stream), what);
  void* temp = scratch ? scratch->get<unsigned char>(slot, bytes, what)
                       : device_alloc<unsigned char>(ctx, bytes, what);
  check(f(temp, bytes, ctx.stream), what);
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
