// Input checks and small helpers shared by the op kernels.
#pragma once
#include <string>
#include <type_traits>

#include "parallel.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"

namespace deepmd_tebd {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using CPUDevice = Eigen::ThreadPoolDevice;
using GPUDevice = Eigen::GpuDevice;

// Whether an op kernel instantiated for Device runs on the GPU (only CUDA builds register any).
template <typename Device>
inline constexpr bool kOnGpu = !std::is_same<Device, CPUDevice>::value;

// The kernel library's ParallelFor (parallel.h) on TensorFlow's CPU threads, which the op's
// graph shares; cost: cycles per item, for TensorFlow's sharding.
inline ParallelFor cpu_workers(OpKernelContext* ctx, int64_t cost) {
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  return [workers, cost](int n, const std::function<void(int, int)>& body) {
    workers->ParallelFor(n, cost, [&](int64_t begin, int64_t end) { body(begin, end); });
  };
}

// Frame f of a [nframes, width] tensor: a pointer to its row.
template <typename T>
const T* frame_row(const Tensor& t, int64_t f) {
  return t.matrix<T>().data() + f * t.dim_size(1);
}
template <typename T>
T* frame_row(Tensor* t, int64_t f) {
  return t->matrix<T>().data() + f * t->dim_size(1);
}

// natoms = [nloc, nall, count of type 0, ...]: at least 3 entries, host memory.
struct AtomCounts {
  int nloc = 0;
  int nall = 0;
  int ntypes = 0;
};

// Reads natoms into `out`; false (with the status set) when it is malformed.
inline bool read_natoms(tensorflow::OpKernelContext* ctx, const tensorflow::Tensor& natoms,
                        AtomCounts* out) {
  if (natoms.dims() != 1 || natoms.NumElements() < 3) {
    ctx->SetStatus(tensorflow::errors::InvalidArgument(
        "natoms must be a vector [nloc, nall, count per type...] of length >= 3, got shape ",
        natoms.shape().DebugString()));
    return false;
  }
  auto v = natoms.flat<int>();
  out->nloc = v(0);
  out->nall = v(1);
  out->ntypes = static_cast<int>(natoms.NumElements()) - 2;
  if (out->nloc < 0 || out->nall < out->nloc) {
    ctx->SetStatus(tensorflow::errors::InvalidArgument("natoms: need 0 <= nloc <= nall, got nloc ",
                                                       out->nloc, ", nall ", out->nall));
    return false;
  }
  return true;
}

// Checks that `t` is a matrix [rows, cols]; rows < 0 accepts any number of rows.
inline bool check_matrix(tensorflow::OpKernelContext* ctx, const tensorflow::Tensor& t,
                         const char* name, int64_t rows, int64_t cols) {
  if (t.dims() != 2 || (rows >= 0 && t.dim_size(0) != rows) || t.dim_size(1) != cols) {
    ctx->SetStatus(tensorflow::errors::InvalidArgument(
        name, " must have shape [", rows < 0 ? std::string("nframes") : std::to_string(rows), ", ",
        cols, "], got ", t.shape().DebugString()));
    return false;
  }
  return true;
}

// The first five inputs of the neighbour-search ops (ProdEnvMatA, TebdNeighborStat): coord, type,
// natoms, box, mesh.
struct SearchInputs {
  explicit SearchInputs(OpKernelContext* ctx)
      : coord(ctx->input(0)),
        type(ctx->input(1)),
        natoms(ctx->input(2)),
        box(ctx->input(3)),
        mesh(ctx->input(4)) {}
  const Tensor& coord;
  const Tensor& type;
  const Tensor& natoms;
  const Tensor& box;
  const Tensor& mesh;
};

// Checks the per-frame inputs of a neighbour search: coord [nframes, nall*3], type [nframes, nall],
// box [nframes, 9]; nframes is taken from coord.
inline bool check_frames(tensorflow::OpKernelContext* ctx, const tensorflow::Tensor& coord,
                         const tensorflow::Tensor& type, const tensorflow::Tensor& box, int nall,
                         int64_t* nframes) {
  if (coord.dims() != 2) {
    ctx->SetStatus(tensorflow::errors::InvalidArgument("coord must be of rank 2 [nframes, nall*3]"));
    return false;
  }
  *nframes = coord.dim_size(0);
  return check_matrix(ctx, coord, "coord", *nframes, 3LL * nall) &&
         check_matrix(ctx, type, "type", *nframes, nall) &&
         check_matrix(ctx, box, "box", *nframes, 9);
}

}  // namespace deepmd_tebd
