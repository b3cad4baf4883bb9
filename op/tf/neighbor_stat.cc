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

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;

template <typename T>
class NeighborStatOp : public OpKernel {
 public:
  explicit NeighborStatOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("rcut", &rcut_));
    OP_REQUIRES(ctx, rcut_ > 0, tensorflow::errors::InvalidArgument("rcut must be positive"));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& coord = ctx->input(0);
    const Tensor& type = ctx->input(1);
    const Tensor& natoms = ctx->input(2);
    const Tensor& box = ctx->input(3);
    const Tensor& mesh = ctx->input(4);
    AtomCounts n;
    if (!read_natoms(ctx, natoms, &n)) return;
    OP_REQUIRES(ctx, n.nloc == n.nall,
                tensorflow::errors::InvalidArgument(
                    "neighbor statistics take no ghost atoms: nloc must equal nall, got ", n.nloc,
                    " and ", n.nall));
    int64_t nframes;
    if (!check_frames(ctx, coord, type, box, n.nloc, &nframes)) return;
    OP_REQUIRES(ctx, mesh.dims() == 1 && (mesh.NumElements() == 0 || mesh.NumElements() == 6),
                tensorflow::errors::InvalidArgument(
                    "mesh must have length 0 (open boundaries) or 6 (periodic box), got shape ",
                    mesh.shape().DebugString()));
    const bool periodic = mesh.NumElements() == 6;

    Tensor *max_nbor_size, *min_nbor_dist;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({nframes, n.ntypes}), &max_nbor_size));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({nframes}), &min_nbor_dist));
    int64_t frame = 0;
    run_kernel(ctx, [&] {
      try {
        for (frame = 0; frame < nframes; ++frame)
          neighbor_stat_cpu(max_nbor_size->matrix<int>().data() + frame * n.ntypes,
                            min_nbor_dist->flat<T>().data() + frame,
                            coord.matrix<T>().data() + frame * coord.dim_size(1),
                            type.matrix<int>().data() + frame * n.nloc, n.nloc, n.ntypes,
                            periodic ? box.matrix<T>().data() + frame * 9 : nullptr,
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
