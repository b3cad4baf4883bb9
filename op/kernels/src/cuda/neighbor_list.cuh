// Device twins of extend_periodic and CellList (neighbor_list.h / neighbor_list.cc). They
// produce the same extended atoms in the same order, and the same bins with the same atoms in
// the same order, as the CPU code for the same input. (The neighbour selection does not depend
// on the bins, only on which atoms lie within rcut; the identical grid keeps even the rounding
// at bin boundaries the same as on the CPU.)
#pragma once
#include <cmath>

#include "device_utils.cuh"
#include "region.h"

namespace deepmd_tebd {
namespace gpu {

// A frame extended by its periodic images: local atoms first (wrapped into the cell), then the
// images ordered by shift (n_a, n_b, n_c) lexicographically from the most negative, and by
// local index within one shift. rank orders the extended atoms as DeePMD-kit's periodic copy
// does (see extend_periodic in neighbor_list.h); it breaks ties between equidistant neighbours.
template <typename T>
struct ExtendedFrame {
  DeviceBuffer<T> coord;         // [n*3]
  DeviceBuffer<int> type;        // [n]
  DeviceBuffer<int> mapping;     // [n] local atom of which extended atom k is an image
  DeviceBuffer<long long> rank;  // [n]
  int n = 0;
};

// Fills `ext` from the nloc local atoms (device pointers); `region` and `rcut` live on the host.
template <typename T>
void extend_periodic(ExtendedFrame<T>& ext, const T* coord, const int* type, int nloc,
                     const Region<T>& region, double rcut);

// Bins per cutoff, as in CellList: bins are no smaller than rcut / kCellReach, and every atom
// within rcut of a position lies in the (2 kCellReach + 1)^3 bins around the position's bin.
constexpr int kCellReach = 2;

// The uniform grid of a cell list: origin, bin size and bin count per direction.
struct CellGrid {
  double lo[3];
  double size[3];
  int n[3];
};

// Bin of a position, clamped to the grid (the computation of CellList<T>::bin_of).
template <typename T>
__device__ inline void bin_of(const CellGrid& g, const T* r, int* c) {
  for (int d = 0; d < 3; ++d) {
    const int k = static_cast<int>(floor((static_cast<double>(r[d]) - g.lo[d]) / g.size[d]));
    c[d] = min(max(k, 0), g.n[d] - 1);
  }
}

// Cell list over natoms positions, with the atoms' positions and types copied in bin order so
// that the neighbour scan reads contiguous memory.
template <typename T>
struct CellList {
  CellGrid grid;
  long long ncell = 0;
  DeviceBuffer<int> start;  // [ncell + 1] first slot of each bin in `atom`
  DeviceBuffer<int> atom;   // [natoms] atom indices grouped by bin, ascending within a bin
  DeviceBuffer<T> coord;    // [natoms*3] coord of atom[k]
  DeviceBuffer<int> type;   // [natoms] type of atom[k]
};

// Builds the cell list of `coord`/`type` (device pointers, natoms > 0) with the grid of
// CellList (bins >= rcut / kCellReach).
template <typename T>
void build_cell_list(CellList<T>& cells, const T* coord, const int* type, int natoms, double rcut);

}  // namespace gpu
}  // namespace deepmd_tebd
