// Device twins of extend_periodic and CellList (neighbor_list.h / neighbor_list.cc), in two
// phases so that a kernel function reads back from the device once for all its frames:
//   find_images   (phase 1) wraps the local atoms and numbers the periodic images within rcut;
//                 the image count stays on the device until the caller's one read-back;
//   place_images  (phase 2) writes the extended frame: the same extended atoms in the same order,
//                 with the same DeePMD-kit ranks, as extend_periodic on the CPU;
//   build_cell_list bins positions on a grid the host knows without reading the device.
// The neighbour selection depends only on which atoms lie within rcut, not on the bins, so the
// grid may differ from the CPU's (the periodic grid spans the analytic bounds of the images).
// Every launch, copy and temporary goes through the dtk_gpu_context.
#pragma once
#include <cmath>

#include "device_utils.cuh"
#include "region.h"

namespace deepmd_tebd {
namespace gpu {

// The periodic shifts searched: every (n_a, n_b, n_c) with |n_k| <= nimg[k] except (0,0,0),
// numbered lexicographically from the most negative (n_a slowest), as the CPU loops visit them;
// and DeePMD-kit's ghost-cell grid used to rank the images.
struct ImageShifts {
  int nimg[3];
  double margin[3];     // fractional margin per direction, padded as in extend_periodic
  int nshift;           // (2 nimg_a + 1)(2 nimg_b + 1)(2 nimg_c + 1) - 1
  int ncell[3];         // DeePMD-kit cells per direction: max(1, floor(face / rcut))
  long long offset[3];  // (nimg + 1) * ncell
  long long width[3];   // 2 * offset + ncell

  __device__ void decode(int s, int* n) const {
    const int l1 = 2 * nimg[1] + 1, l2 = 2 * nimg[2] + 1;
    const int zero = (nimg[0] * l1 + nimg[1]) * l2 + nimg[2];  // number of (0,0,0)
    const int q = s < zero ? s : s + 1;                         // skip (0,0,0)
    n[2] = q % l2 - nimg[2];
    n[1] = (q / l2) % l1 - nimg[1];
    n[0] = q / (l1 * l2) - nimg[0];
  }
};

// One periodic frame between the phases: host-side plan and device temporaries.
template <typename T>
struct PeriodicImages {
  Region<T> region;
  Region<double> region64;  // the double-precision region of the T box
  ImageShifts shifts;
  long long nflat = 0;      // nshift * nloc candidate images
  T* wrapped = nullptr;     // [nloc*3] local atoms wrapped into the cell
  int* cell = nullptr;      // [nloc*3] DeePMD-kit cell of each wrapped atom
  int* offsets = nullptr;   // [nflat+1] exclusive scan of the image flags
};

// Phase 1 of one frame (nloc > 0 local atoms at device `coord`; `region` on the host): fills
// `img` and enqueues the wrap, the image flags and their scan; the number of images is copied to
// the device value *nimages. Throws InvalidArgument when the images exceed 2^31.
template <typename T>
void find_images(const dtk_gpu_context& ctx, PeriodicImages<T>& img, const T* coord, int nloc,
                 const Region<T>& region, double rcut, long long* nimages);

// Phase 2: writes the nloc local atoms and their images into the extended arrays (capacity nloc
// + the number of images read back).
template <typename T>
void place_images(const dtk_gpu_context& ctx, const PeriodicImages<T>& img, const int* type,
                  int nloc, T* ext_coord, int* ext_type, int* mapping, long long* rank);

// Bounds of every position place_images can write (host arithmetic, no read-back): the
// Cartesian bounding box of the fractional box [-margin, 1 + margin]^3, padded for rounding.
template <typename T>
void image_bounds(const PeriodicImages<T>& img, double* lo, double* hi);

// Enqueues the coordinate bounds of natoms > 0 positions into the device array out[6]
// (minima, then maxima, in double).
template <typename T>
void coord_bounds(const dtk_gpu_context& ctx, const T* coord, int natoms, double* out);

// Bins per cutoff: bins are no smaller than rcut / kCellReach, and every atom within rcut of a
// position lies in the (2 kCellReach + 1)^3 bins around the position's bin.
constexpr int kCellReach = 2;

// The uniform grid of a cell list: origin, bin size and bin count per direction.
struct CellGrid {
  double lo[3];
  double size[3];
  int n[3];
};

// The grid over [lo, hi] for natoms positions: bins at least rcut / kCellReach wide (with a
// relative slack of 1e-5 so that rounding cannot put two atoms within rcut more than kCellReach
// bins apart), at most 4 natoms + 64 bins. Throws InvalidArgument past 2^31 bins.
CellGrid make_cell_grid(const double* lo, const double* hi, int natoms, double rcut);

// Bin of a position, clamped to the grid.
template <typename T>
__device__ inline void bin_of(const CellGrid& g, const T* r, int* c) {
  for (int d = 0; d < 3; ++d) {
    const int k = static_cast<int>(floor((static_cast<double>(r[d]) - g.lo[d]) / g.size[d]));
    c[d] = min(max(k, 0), g.n[d] - 1);
  }
}

// Cell list over natoms positions, with the atoms' positions and types copied in bin order so
// that the neighbour scan reads contiguous memory. Device pointers from the caller's allocator.
template <typename T>
struct CellList {
  CellGrid grid;
  long long ncell = 0;
  int* start = nullptr;  // [ncell + 1] first slot of each bin in `atom`
  int* atom = nullptr;   // [natoms] atom indices grouped by bin, ascending within a bin
  T* coord = nullptr;    // [natoms*3] coord of atom[k]
  int* type = nullptr;   // [natoms] type of atom[k]
};

// Slots of a Scratch (device_utils.cuh) used by build_cell_list; callers use the others.
constexpr int kCellListSlots = 9;

// Builds the cell list of `coord`/`type` (device pointers, natoms > 0) on `grid`, in the slots
// [0, kCellListSlots) of `scratch`: the list lives until the next build in the same scratch.
template <typename T>
void build_cell_list(const dtk_gpu_context& ctx, Scratch& scratch, CellList<T>& cells,
                     const T* coord, const int* type, int natoms, const CellGrid& grid);

}  // namespace gpu
}  // namespace deepmd_tebd
