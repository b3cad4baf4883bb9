// ProdEnvMatA: the normalised se_e2_a environment matrix of every local atom, its derivative with
// respect to the centre coordinate, the relative positions and the formatted neighbour list.
#pragma once
#include "gpu_context.h"
#include "parallel.h"
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
  int ntypes;       // number of types; also the number of sel blocks unless mixed_types
  const int* sel;   // [ntypes] slots per neighbour type ([1] when mixed_types)
  int nnei;         // sum of sel
  float rcut;       // cutoff radius (the op's float attribute, used as is)
  float rcut_smth;  // start of the switching region
  // ProdEnvMatAMix: one block of sel[0] slots for the neighbours of every type, ordered by
  // distance alone (DeePMD-kit's "fake type" 0 for every real atom)
  bool mixed_types = false;
};

// One frame, its centres spread over `parallel_for` (parallel.h; empty: OpenMP's threads).
//   em       [nloc, nnei*4]     (R_raw - davg[type_i]) / dstd[type_i]
//   em_deriv [nloc, nnei*4*3]   d R_raw / d R_i, divided by dstd
//   rij      [nloc, nnei*3]     R_j - R_i, 0 for empty slots
//   nlist    [nloc, nnei]       neighbour index, -1 for empty slots
// Neighbour search:
//   box != nullptr            periodic; nloc == nall; nlist holds local indices (images mapped back)
//   external != nullptr       the caller's list; nlist holds indices into the nall atoms
//   both null                 open boundaries among the nall == nloc atoms
// Slots: one block of sel[t] slots per type t (one block for all types when mixed_types);
// inside a block neighbours within rcut ascend by distance (ties by index), the nearest sel[t]
// kept. Atoms of negative type (virtual atoms) are no neighbours; as centres they get zero em and
// em_deriv rows, and their neighbours and rij only without a box (open boundaries, caller's list),
// as DeePMD-kit's periodic copy lists none for them.
template <typename T>
void prod_env_mat_a_cpu(T* em, T* em_deriv, T* rij, int* nlist, const T* coord, const int* type,
                        int nloc, int nall, const T* box, const ExternalNeighborList* external,
                        const T* davg, const T* dstd, const EnvMatParams& params,
                        const ParallelFor& parallel_for = {});

// ProdEnvMatAMix's neighbour information of one frame from its nlist [n] (indices into the
// frame's atoms, -1 for empty slots) and the frame's atom types: ntype = the neighbour's type,
// ntypes for an empty slot; nmask = whether the slot holds a neighbour.
void neighbor_types_cpu(int* ntype, bool* nmask, const int* nlist, const int* type, long long n,
                        int ntypes);

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

// CUDA twin of neighbor_types_cpu for nframes frames (nlist, ntype, nmask [nframes, nloc*nnei],
// type [nframes, nall], device pointers), on ctx.stream.
void neighbor_types_gpu(const dtk_gpu_context& ctx, int* ntype, bool* nmask, const int* nlist,
                        const int* type, int nframes, int nloc, int nnei, int nall, int ntypes);

}  // namespace deepmd_tebd
