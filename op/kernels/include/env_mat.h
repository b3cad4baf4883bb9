// ProdEnvMatA: the normalised se_e2_a environment matrix of every local atom, its derivative with
// respect to the centre coordinate, the relative positions and the formatted neighbour list.
#pragma once
#include "gpu_context.h"
#include "region.h"

namespace deepmd_tebd {

// A neighbour list supplied by the caller (LAMMPS and the C++ API): for ii < inum, the atom
// ilist[ii] (an index < nloc) has numneigh[ii] neighbours firstneigh[ii][0..) (indices < nall).
struct ExternalNeighborList {
  int inum;
  const int* ilist;
  const int* numneigh;
  const int* const* firstneigh;
};

// Static parameters of the descriptor.
struct EnvMatParams {
  int ntypes;       // number of types; also the number of sel blocks
  const int* sel;   // [ntypes] slots per neighbour type
  int nnei;         // sum of sel
  float rcut;       // cutoff radius (the op's float attribute, used as is)
  float rcut_smth;  // start of the switching region
};

// One frame.
//   em       [nloc, nnei*4]     (R_raw - davg[type_i]) / dstd[type_i]
//   em_deriv [nloc, nnei*4*3]   d R_raw / d R_i, divided by dstd
//   rij      [nloc, nnei*3]     R_j - R_i, 0 for empty slots
//   nlist    [nloc, nnei]       neighbour index, -1 for empty slots
// Neighbour search:
//   box != nullptr            periodic; nloc == nall; nlist holds local indices (images mapped back)
//   external != nullptr       the caller's list; nlist holds indices into the nall atoms
//   both null                 open boundaries among the nall == nloc atoms
// Slots: one block of sel[t] slots per type t; inside a block neighbours within rcut ascend by
// distance (ties by index), the nearest sel[t] kept. Centres of negative type get zero rows.
template <typename T>
void prod_env_mat_a_cpu(T* em, T* em_deriv, T* rij, int* nlist, const T* coord, const int* type,
                        int nloc, int nall, const T* box, const ExternalNeighborList* external,
                        const T* davg, const T* dstd, const EnvMatParams& params);

// CUDA twin for nframes frames at once, on ctx.stream with temporaries from ctx.alloc
// (gpu_context.h): the same contract per frame on device pointers (coord [nframes, nall*3], type
// [nframes, nall], davg, dstd and the outputs, [nframes, ...] each); `box` ([nframes*9], or null
// for open boundaries) and `params.sel` stay on the HOST. External lists are not supported on the
// device. Reads back from the device once per call (the type check and the image counts or
// coordinate bounds of all frames).
template <typename T>
void prod_env_mat_a_gpu(const dtk_gpu_context& ctx, T* em, T* em_deriv, T* rij, int* nlist,
                        const T* coord, const int* type, int nframes, int nloc, int nall,
                        const T* box, const T* davg, const T* dstd, const EnvMatParams& params);

}  // namespace deepmd_tebd
