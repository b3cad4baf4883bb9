// ProdEnvMatA and ProdEnvMatAMix kernels: validate inputs, read the neighbour mode from mesh,
// allocate the outputs and call the kernel library: frame by frame on the CPU, all frames in one
// call on the GPU (on the op context's stream, temporaries from allocate_temp: device_context.h).
// ProdEnvMatAMix is ProdEnvMatA with one sel block for the neighbours of every type (ordered by
// distance alone), the mixed-type mesh sizes 1 and 7 accepted, and two more outputs: each
// slot's neighbour type (ntypes when empty) and whether it holds a neighbour.
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "common.h"
#include "device_context.h"
#include "env_mat.h"
#include "errors.h"
#include "tensorflow/core/framework/op_kernel.h"

namespace deepmd_tebd {

// The cost of one centre for TensorFlow's ParallelFor (cycles: about 15 us of a water centre).
constexpr int64_t kCentreCost = 40000;

// How the neighbours are found, from the length of mesh.
enum class NeighborMode { kOpen, kPeriodic, kPointerList, kTensorList };

// Attributes read once; inputs checked per call, then the kernel frame by frame. kMixed:
// ProdEnvMatAMix.
template <typename Device, typename T, bool kMixed>
class ProdEnvMatAOp : public OpKernel {
 public:
  explicit ProdEnvMatAOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    float rcut_a;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("rcut_a", &rcut_a));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("rcut_r", &rcut_r_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("rcut_r_smth", &rcut_r_smth_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("sel_a", &sel_a_));
    std::vector<int> sel_r;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("sel_r", &sel_r));
    OP_REQUIRES(ctx, !sel_a_.empty(), tensorflow::errors::InvalidArgument("sel_a is empty"));
    for (int s : sel_a_)
      OP_REQUIRES(ctx, s >= 0, tensorflow::errors::InvalidArgument("sel_a has a negative entry"));
    for (int s : sel_r)
      OP_REQUIRES(ctx, s == 0,
                  tensorflow::errors::InvalidArgument("sel_r must be all zeros for se_e2_a"));
    if (kMixed)
      OP_REQUIRES(ctx, sel_a_.size() == 1 && sel_r.size() == 1,
                  tensorflow::errors::InvalidArgument(
                      "the length of sel array should be 1 in this op"));
    OP_REQUIRES(ctx, rcut_r_ > 0 && rcut_r_smth_ <= rcut_r_,
                tensorflow::errors::InvalidArgument("need 0 < rcut_r and rcut_r_smth <= rcut_r"));
    nnei_ = std::accumulate(sel_a_.begin(), sel_a_.end(), 0);
  }

  void Compute(OpKernelContext* ctx) override {
    SearchInputs in(ctx);
    const Tensor& mesh = in.mesh;
    const Tensor& davg = ctx->input(5);
    const Tensor& dstd = ctx->input(6);
    AtomCounts n;
    if (!read_natoms(ctx, in.natoms, &n)) return;
    int64_t nframes;
    if (!check_frames(ctx, in.coord, in.type, in.box, n.nall, &nframes)) return;
    const int ndescrpt = nnei_ * 4;
    OP_REQUIRES(ctx, kMixed || n.ntypes == static_cast<int>(sel_a_.size()),
                tensorflow::errors::InvalidArgument("natoms describes ", n.ntypes,
                                                    " types but sel_a has ", sel_a_.size()));
    if (!check_matrix(ctx, davg, "davg", n.ntypes, ndescrpt)) return;
    if (!check_matrix(ctx, dstd, "dstd", n.ntypes, ndescrpt)) return;
    OP_REQUIRES(ctx, mesh.dims() == 1,
                tensorflow::errors::InvalidArgument("mesh must be of rank 1"));

    const int64_t mesh_len = mesh.NumElements();
    NeighborMode mode;
    if (mesh_len == 0 || (kMixed && mesh_len == 1)) {
      mode = NeighborMode::kOpen;
    } else if (mesh_len == 6 || (kMixed && mesh_len == 7)) {
      mode = NeighborMode::kPeriodic;
    } else if (mesh_len == 16) {
      mode = NeighborMode::kPointerList;
    } else if (mesh_len > 16) {
      mode = NeighborMode::kTensorList;
    } else if (mesh_len == 1 || mesh_len == 7) {
      ctx->SetStatus(
          tensorflow::errors::InvalidArgument("Mixed types are not supported by this OP."));
      return;
    } else {
      ctx->SetStatus(tensorflow::errors::InvalidArgument("invalid mesh tensor"));
      return;
    }
    if (mode == NeighborMode::kOpen || mode == NeighborMode::kPeriodic)
      OP_REQUIRES(ctx, n.nloc == n.nall,
                  tensorflow::errors::InvalidArgument(
                      "with mesh of length 0, 1, 6 or 7 there are no ghost atoms: nloc must "
                      "equal nall"));

    ExternalNeighborList external{0, nullptr, nullptr, nullptr};
    std::vector<const int*> firstneigh;
    if (mode == NeighborMode::kPointerList) {
      auto m = mesh.flat<int>();
      external.inum = m(1);
      std::memcpy(&external.ilist, &m(4), sizeof(int*));
      std::memcpy(&external.numneigh, &m(8), sizeof(int*));
      std::memcpy(&external.firstneigh, &m(12), sizeof(int**));
      OP_REQUIRES(ctx, external.inum <= n.nloc && external.ilist && external.numneigh &&
                           external.firstneigh,
                  tensorflow::errors::InvalidArgument("mesh of length 16 holds no valid list"));
    } else if (mode == NeighborMode::kTensorList) {
      const int* m = mesh.flat<int>().data();
      const int64_t header = 16 + 2LL * n.nloc;
      OP_REQUIRES(ctx, mesh_len >= header,
                  tensorflow::errors::InvalidArgument("mesh is too short for ", n.nloc,
                                                      " ilist and numneigh entries"));
      external.inum = n.nloc;
      external.ilist = m + 16;
      external.numneigh = m + 16 + n.nloc;
      int64_t offset = header;
      firstneigh.resize(n.nloc);
      for (int ii = 0; ii < n.nloc; ++ii) {
        firstneigh[ii] = m + offset;
        offset += external.numneigh[ii];
      }
      OP_REQUIRES(ctx, offset <= mesh_len,
                  tensorflow::errors::InvalidArgument("mesh is shorter than its neighbour counts"));
      external.firstneigh = firstneigh.data();
    }

    Tensor *em, *em_deriv, *rij, *nlist;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({nframes, int64_t(n.nloc) * ndescrpt}), &em));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({nframes, int64_t(n.nloc) * ndescrpt * 3}), &em_deriv));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({nframes, int64_t(n.nloc) * nnei_ * 3}), &rij));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, TensorShape({nframes, int64_t(n.nloc) * nnei_}), &nlist));
    Tensor *ntype = nullptr, *nmask = nullptr;
    if (kMixed) {
      OP_REQUIRES_OK(ctx, ctx->allocate_output(4, TensorShape({nframes, int64_t(n.nloc) * nnei_}), &ntype));
      OP_REQUIRES_OK(ctx, ctx->allocate_output(5, TensorShape({nframes, int64_t(n.nloc) * nnei_}), &nmask));
    }

    const EnvMatParams params{n.ntypes, sel_a_.data(), nnei_, rcut_r_, rcut_r_smth_, kMixed};
    const bool periodic = mode == NeighborMode::kPeriodic;
    const bool use_external = mode == NeighborMode::kPointerList || mode == NeighborMode::kTensorList;
    run_kernel(ctx, [&] {
      if constexpr (kOnGpu<Device>) {
        // box is in host memory (HostMemory("box") in the GPU registration)
        if (use_external)
          throw InvalidArgument("a caller-supplied neighbour list (mesh length >= 16) is only "
                                "supported by the CPU kernel");
        if (nframes > std::numeric_limits<int>::max())
          throw InvalidArgument("more than 2^31 frames in one call");
        OpGpuContext gpu(ctx);
        prod_env_mat_a_gpu(gpu.get(), frame_row<T>(em, 0), frame_row<T>(em_deriv, 0),
                           frame_row<T>(rij, 0), frame_row<int>(nlist, 0),
                           frame_row<T>(in.coord, 0), frame_row<int>(in.type, 0),
                           static_cast<int>(nframes), n.nloc, n.nall,
                           periodic ? frame_row<T>(in.box, 0) : nullptr, davg.matrix<T>().data(),
                           dstd.matrix<T>().data(), params);
        if (kMixed)
          neighbor_types_gpu(gpu.get(), frame_row<int>(ntype, 0), frame_row<bool>(nmask, 0),
                             frame_row<int>(nlist, 0), frame_row<int>(in.type, 0),
                             static_cast<int>(nframes), n.nloc, nnei_, n.nall, n.ntypes);
      } else {
        const ParallelFor on_workers = cpu_workers(ctx, kCentreCost);
        for (int64_t f = 0; f < nframes; ++f) {
          prod_env_mat_a_cpu(frame_row<T>(em, f), frame_row<T>(em_deriv, f), frame_row<T>(rij, f),
                             frame_row<int>(nlist, f), frame_row<T>(in.coord, f),
                             frame_row<int>(in.type, f), n.nloc, n.nall,
                             periodic ? frame_row<T>(in.box, f) : nullptr,
                             use_external ? &external : nullptr, davg.matrix<T>().data(),
                             dstd.matrix<T>().data(), params, on_workers);
          if (kMixed)
            neighbor_types_cpu(frame_row<int>(ntype, f), frame_row<bool>(nmask, f),
                               frame_row<int>(nlist, f), frame_row<int>(in.type, f),
                               int64_t(n.nloc) * nnei_, n.ntypes);
        }
      }
    });
  }

 private:
  float rcut_r_ = 0, rcut_r_smth_ = 0;
  std::vector<int> sel_a_;
  int nnei_ = 0;
};

#define REGISTER_CPU(T)                                                                 \
  REGISTER_KERNEL_BUILDER(                                                              \
      Name("ProdEnvMatA").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),        \
      ProdEnvMatAOp<CPUDevice, T, false>);                                              \
  REGISTER_KERNEL_BUILDER(                                                              \
      Name("ProdEnvMatAMix").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),     \
      ProdEnvMatAOp<CPUDevice, T, true>);
REGISTER_CPU(float);
REGISTER_CPU(double);
#undef REGISTER_CPU

#if GOOGLE_CUDA
#define REGISTER_GPU(T)                                                                 \
  REGISTER_KERNEL_BUILDER(Name("ProdEnvMatA")                                           \
                              .Device(tensorflow::DEVICE_GPU)                           \
                              .TypeConstraint<T>("T")                                   \
                              .HostMemory("natoms")                                     \
                              .HostMemory("box")                                        \
                              .HostMemory("mesh"),                                      \
                          ProdEnvMatAOp<GPUDevice, T, false>);                          \
  REGISTER_KERNEL_BUILDER(Name("ProdEnvMatAMix")                                        \
                              .Device(tensorflow::DEVICE_GPU)                           \
                              .TypeConstraint<T>("T")                                   \
                              .HostMemory("natoms")                                     \
                              .HostMemory("box")                                        \
                              .HostMemory("mesh"),                                      \
                          ProdEnvMatAOp<GPUDevice, T, true>);
REGISTER_GPU(float);
REGISTER_GPU(double);
#undef REGISTER_GPU
#endif

}  // namespace deepmd_tebd
