// TebdNeighborStat: neighbour statistics of a batch of frames (CPU kernel; the registration and
// shape function are in ops.cc). It serves `dp neighbor-stat` and the automatic `sel` before training and never
// enters a model graph, so it carries this package's own name rather than DeePMD-kit's
// NeighborStat (whose outputs are per atom and per neighbour slot).
#include <string>

#include "common.h"
#include "errors.h"
#include "neighbor_stat.h"
#include "tensorflow/core/framework/op_kernel.h"

namespace deepmd_tebd {

// TebdNeighborStat on the CPU: neighbor_stat_cpu frame by frame.
template <typename T>
class NeighborStatOp : public OpKernel {
 public:
  explicit NeighborStatOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("rcut", &rcut_));
    OP_REQUIRES(ctx, rcut_ > 0, tensorflow::errors::InvalidArgument("rcut must be positive"));
  }

  void Compute(OpKernelContext* ctx) override {
    SearchInputs in(ctx);
    AtomCounts n;
    if (!read_natoms(ctx, in.natoms, &n)) return;
    OP_REQUIRES(ctx, n.nloc == n.nall,
                tensorflow::errors::InvalidArgument(
                    "neighbor statistics take no ghost atoms: nloc must equal nall, got ", n.nloc,
                    " and ", n.nall));
    int64_t nframes;
    if (!check_frames(ctx, in.coord, in.type, in.box, n.nloc, &nframes)) return;
    OP_REQUIRES(ctx,
                in.mesh.dims() == 1 && (in.mesh.NumElements() == 0 || in.mesh.NumElements() == 6),
                tensorflow::errors::InvalidArgument(
                    "mesh must have length 0 (open boundaries) or 6 (periodic box), got shape ",
                    in.mesh.shape().DebugString()));
    const bool periodic = in.mesh.NumElements() == 6;

    Tensor *max_nbor_size, *min_nbor_dist;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({nframes, n.ntypes}), &max_nbor_size));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({nframes}), &min_nbor_dist));
    int64_t frame = 0;
    run_kernel(ctx, [&] {
      try {
        for (frame = 0; frame < nframes; ++frame)
          neighbor_stat_cpu(frame_row<int>(max_nbor_size, frame),
                            min_nbor_dist->flat<T>().data() + frame,
                            frame_row<T>(in.coord, frame), frame_row<int>(in.type, frame), n.nloc,
                            n.ntypes, periodic ? frame_row<T>(in.box, frame) : nullptr,
                            static_cast<double>(rcut_));
      } catch (const InvalidArgument& e) {
        // the kernel sees one frame: say which one
        throw InvalidArgument("frame " + std::to_string(frame) + ": " + e.what());
      }
    });
  }

 private:
  float rcut_ = 0;
};

#define REGISTER_CPU(T)                                                                  \
  REGISTER_KERNEL_BUILDER(                                                               \
      Name("TebdNeighborStat").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),    \
      NeighborStatOp<T>);
REGISTER_CPU(float);
REGISTER_CPU(double);
#undef REGISTER_CPU

}  // namespace deepmd_tebd
