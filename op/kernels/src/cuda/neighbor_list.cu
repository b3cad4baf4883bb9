// Periodic extension and cell list on the device (see neighbor_list.cuh). Host-side decisions
// (image counts, margins, the ghost-cell grid) use the same code as neighbor_list.cc, and the
// per-atom arithmetic is the same, so the extended atoms, their order and ranks are identical to
// the CPU's. Every launch, copy and temporary goes through the dtk_gpu_context.
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include <algorithm>
#include <climits>
#include <cmath>
#include <string>

#include "errors.h"
#include "neighbor_list.cuh"

namespace deepmd_tebd {
namespace gpu {
namespace {

// Local atoms wrapped into the cell (in T, with the T region), the fractional coordinates of
// the wrapped positions (in double, with the double region built from the T box) and the
// DeePMD-kit cell of every local atom.
template <typename T>
__global__ void wrap_kernel(T* wrapped, double* frac, int* cell, const T* coord, int nloc,
                            Region<T> region, Region<double> region64, ImageShifts shifts) {
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < nloc;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    wrap_into_cell(region, coord + 3 * i, wrapped + 3 * i);
    const double r[3] = {wrapped[3 * i], wrapped[3 * i + 1], wrapped[3 * i + 2]};
    phys_to_frac(region64, r, frac + 3 * i);
    for (int k = 0; k < 3; ++k) {
      const int c = static_cast<int>(floor(frac[3 * i + k] * shifts.ncell[k]));
      cell[3 * i + k] = min(max(c, 0), shifts.ncell[k] - 1);
    }
  }
}

// flags[f] = 1 when image f = (shift s, atom i), f = s * nloc + i, lies within the margins;
// flags[nflat] = 0 so that an exclusive scan over nflat + 1 entries ends with the total.
__global__ void image_flag_kernel(int* flags, const double* frac, int nloc, long long nflat,
                                  ImageShifts shifts) {
  for (long long f = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; f <= nflat;
       f += static_cast<long long>(gridDim.x) * blockDim.x) {
    if (f == nflat) {
      flags[f] = 0;
      continue;
    }
    const int s = static_cast<int>(f / nloc);
    const long long i = f - static_cast<long long>(s) * nloc;
    int n[3];
    shifts.decode(s, n);
    bool inside = true;
    for (int k = 0; k < 3 && inside; ++k) {
      const double g = frac[3 * i + k] + n[k];
      inside = g >= -shifts.margin[k] && g <= 1.0 + shifts.margin[k];
    }
    flags[f] = inside ? 1 : 0;
  }
}

template <typename T>
__global__ void place_locals_kernel(T* ext, int* ext_type, int* mapping, long long* rank,
                                    const T* wrapped, const int* type, int nloc) {
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < nloc;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    for (int d = 0; d < 3; ++d) ext[3 * i + d] = wrapped[3 * i + d];
    ext_type[i] = type[i];
    mapping[i] = static_cast<int>(i);
    rank[i] = i;
  }
}

// Writes the kept images at nloc + offsets[f] (offsets: exclusive scan of the flags). As in
// extend_periodic: position = T(double(wrapped position) + shift), the shift summed in double;
// rank = nloc + ghost_cell * nloc + i with the ghost cell numbered lexicographically on the
// extended DeePMD-kit grid.
template <typename T>
__global__ void place_images_kernel(T* ext, int* ext_type, int* mapping, long long* rank,
                                    const T* wrapped, const int* cell, const int* type,
                                    const int* offsets, int nloc, long long nflat,
                                    ImageShifts shifts, Region<double> region64) {
  for (long long f = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; f < nflat;
       f += static_cast<long long>(gridDim.x) * blockDim.x) {
    const int o = offsets[f];
    if (offsets[f + 1] == o) continue;  // flag 0
    const int s = static_cast<int>(f / nloc);
    const long long i = f - static_cast<long long>(s) * nloc;
    int n[3];
    shifts.decode(s, n);
    const long long e = static_cast<long long>(nloc) + o;
    for (int d = 0; d < 3; ++d) {
      const double shift = n[0] * region64.box[0 * 3 + d] + n[1] * region64.box[1 * 3 + d] +
                           n[2] * region64.box[2 * 3 + d];
      ext[3 * e + d] = static_cast<T>(static_cast<double>(wrapped[3 * i + d]) + shift);
    }
    ext_type[e] = type[i];
    mapping[e] = static_cast<int>(i);
    long long ghost_cell = 0;
    for (int k = 0; k < 3; ++k)
      ghost_cell = ghost_cell * shifts.width[k] + cell[3 * i + k] +
                   static_cast<long long>(n[k]) * shifts.ncell[k] + shifts.offset[k];
    rank[e] = nloc + ghost_cell * nloc + i;
  }
}

// Block-wide reduction of per-thread bounds v[6] (minima in 0..2, maxima in 3..5) through the
// shared array sh; the result is left in sh[q][0].
__device__ void block_reduce_bounds(double (*sh)[kBlock], const double* v) {
  const int t = threadIdx.x;
  for (int q = 0; q < 6; ++q) sh[q][t] = v[q];
  __syncthreads();
  for (int stride = kBlock / 2; stride > 0; stride >>= 1) {
    if (t < stride) {
      for (int q = 0; q < 3; ++q) sh[q][t] = fmin(sh[q][t], sh[q][t + stride]);
      for (int q = 3; q < 6; ++q) sh[q][t] = fmax(sh[q][t], sh[q][t + stride]);
    }
    __syncthreads();
  }
}

// Per-block minimum and maximum of the coordinates in double: partial[6*b + d] = lo_d,
// partial[6*b + 3 + d] = hi_d. Launched with kBlock threads.
template <typename T>
__global__ void bounds_kernel(double* partial, const T* coord, int natoms) {
  __shared__ double sh[6][kBlock];
  double v[6] = {INFINITY, INFINITY, INFINITY, -INFINITY, -INFINITY, -INFINITY};
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < natoms;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    for (int d = 0; d < 3; ++d) {
      const double x = static_cast<double>(coord[3 * i + d]);
      v[d] = fmin(v[d], x);
      v[3 + d] = fmax(v[3 + d], x);
    }
  }
  block_reduce_bounds(sh, v);
  if (threadIdx.x == 0)
    for (int q = 0; q < 6; ++q) partial[6 * blockIdx.x + q] = sh[q][0];
}

// Reduces nparts rows of bounds_kernel output into out[6]. One block of kBlock threads.
__global__ void bounds_finish_kernel(double* out, const double* partial, int nparts) {
  __shared__ double sh[6][kBlock];
  double v[6] = {INFINITY, INFINITY, INFINITY, -INFINITY, -INFINITY, -INFINITY};
  const int t = threadIdx.x;
  for (int b = t; b < nparts; b += blockDim.x) {
    for (int q = 0; q < 3; ++q) v[q] = fmin(v[q], partial[6 * b + q]);
    for (int q = 3; q < 6; ++q) v[q] = fmax(v[q], partial[6 * b + q]);
  }
  block_reduce_bounds(sh, v);
  if (t == 0)
    for (int q = 0; q < 6; ++q) out[q] = sh[q][0];
}

// Bin of every atom, the bin populations, and the identity permutation to be sorted by bin.
template <typename T>
__global__ void bin_kernel(unsigned* cell_of, int* count, int* index, const T* coord, int natoms,
                           CellGrid grid) {
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < natoms;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    int c[3];
    bin_of(grid, coord + 3 * i, c);
    const long long cell = (static_cast<long long>(c[0]) * grid.n[1] + c[1]) * grid.n[2] + c[2];
    cell_of[i] = static_cast<unsigned>(cell);
    atomicAdd(count + cell, 1);
    index[i] = static_cast<int>(i);
  }
}

// Copies positions and types into bin order.
template <typename T>
__global__ void gather_kernel(T* sorted_coord, int* sorted_type, const int* atom, const T* coord,
                              const int* type, int natoms) {
  for (long long k = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; k < natoms;
       k += static_cast<long long>(gridDim.x) * blockDim.x) {
    const long long a = atom[k];
    for (int d = 0; d < 3; ++d) sorted_coord[3 * k + d] = coord[3 * a + d];
    sorted_type[k] = type[a];
  }
}

// *count = *last (the image total at the end of the scan), widened to long long.
__global__ void copy_count_kernel(long long* count, const int* last) { *count = *last; }

}  // namespace

template <typename T>
void find_images(const dtk_gpu_context& ctx, PeriodicImages<T>& img, const T* coord, int nloc,
                 const Region<T>& region, double rcut, long long* nimages) {
  // Image counts, margins and the ghost-cell grid: the same host computation as
  // extend_periodic (CPU), on the double-precision region of the T box.
  img.region = region;
  double box64[9];
  for (int k = 0; k < 9; ++k) box64[k] = region.box[k];
  init_region(img.region64, box64);
  ImageShifts& shifts = img.shifts;
  for (int k = 0; k < 3; ++k) {
    shifts.margin[k] = rcut / img.region64.face[k];
    shifts.nimg[k] = static_cast<int>(std::ceil(shifts.margin[k]));
    shifts.margin[k] = shifts.margin[k] * (1.0 + 1e-10) + 1e-12;
    shifts.ncell[k] = std::max(1, static_cast<int>(img.region64.face[k] / rcut));
    shifts.offset[k] = static_cast<long long>(shifts.nimg[k] + 1) * shifts.ncell[k];
    shifts.width[k] = 2 * shifts.offset[k] + shifts.ncell[k];
  }
  const long long nshift = (2LL * shifts.nimg[0] + 1) * (2LL * shifts.nimg[1] + 1) *
                               (2LL * shifts.nimg[2] + 1) - 1;
  img.nflat = nshift * nloc;
  // The flags and their scan are int: the candidate images must stay below 2^31.
  if (img.nflat >= INT_MAX)
    throw InvalidArgument("periodic extension: " + std::to_string(nshift) + " shifts of " +
                          std::to_string(nloc) +
                          " atoms exceed the 2^31 candidate images supported on the device");
  shifts.nshift = static_cast<int>(nshift);
  const long long nflat = img.nflat;

  img.wrapped = device_alloc<T>(ctx, 3 * static_cast<size_t>(nloc), "wrapped coordinates");
  double* frac = device_alloc<double>(ctx, 3 * static_cast<size_t>(nloc), "fractional coordinates");
  img.cell = device_alloc<int>(ctx, 3 * static_cast<size_t>(nloc), "ghost cells");
  wrap_kernel<T><<<grid_for(nloc), kBlock, 0, ctx.stream>>>(img.wrapped, frac, img.cell, coord,
                                                            nloc, img.region, img.region64, shifts);
  check_launch("wrap_kernel");

  img.offsets = device_alloc<int>(ctx, static_cast<size_t>(nflat) + 1, "image offsets");
  image_flag_kernel<<<grid_for(nflat + 1), kBlock, 0, ctx.stream>>>(img.offsets, frac, nloc, nflat,
                                                                    shifts);
  check_launch("image_flag_kernel");
  int* flags = img.offsets;
  const long long nscan = nflat + 1;
  run_cub(
      ctx,
      [&](void* temp, size_t& bytes, cudaStream_t stream) {
        return cub::DeviceScan::ExclusiveSum(temp, bytes, flags, nscan, stream);
      },
      "cub::DeviceScan::ExclusiveSum (periodic images)");
  copy_count_kernel<<<1, 1, 0, ctx.stream>>>(nimages, img.offsets + nflat);
  check_launch("copy_count_kernel");
}

template <typename T>
void place_images(const dtk_gpu_context& ctx, const PeriodicImages<T>& img, const int* type,
                  int nloc, T* ext_coord, int* ext_type, int* mapping, long long* rank) {
  place_locals_kernel<T><<<grid_for(nloc), kBlock, 0, ctx.stream>>>(ext_coord, ext_type, mapping,
                                                                    rank, img.wrapped, type, nloc);
  check_launch("place_locals_kernel");
  if (img.nflat > 0) {
    place_images_kernel<T><<<grid_for(img.nflat), kBlock, 0, ctx.stream>>>(
        ext_coord, ext_type, mapping, rank, img.wrapped, img.cell, type, img.offsets, nloc,
        img.nflat, img.shifts, img.region64);
    check_launch("place_images_kernel");
  }
}

template <typename T>
void image_bounds(const PeriodicImages<T>& img, double* lo, double* hi) {
  for (int d = 0; d < 3; ++d) {
    lo[d] = INFINITY;
    hi[d] = -INFINITY;
  }
  const double* box = img.region64.box;
  for (int corner = 0; corner < 8; ++corner) {
    double f[3];
    for (int k = 0; k < 3; ++k)
      f[k] = (corner >> k) & 1 ? 1.0 + img.shifts.margin[k] : -img.shifts.margin[k];
    for (int d = 0; d < 3; ++d) {
      const double x = f[0] * box[d] + f[1] * box[3 + d] + f[2] * box[6 + d];
      lo[d] = std::min(lo[d], x);
      hi[d] = std::max(hi[d], x);
    }
  }
  // positions are rounded to T after the shift: pad by a relative 1e-5 of the extent
  for (int d = 0; d < 3; ++d) {
    const double pad = 1e-5 * (hi[d] - lo[d]) + 1e-6;
    lo[d] -= pad;
    hi[d] += pad;
  }
}

template <typename T>
void coord_bounds(const dtk_gpu_context& ctx, const T* coord, int natoms, double* out) {
  // min and max are exact, so any reduction order gives the same values
  const unsigned nparts = std::min(grid_for(natoms), 1024u);
  double* partial = device_alloc<double>(ctx, 6 * static_cast<size_t>(nparts), "bounds");
  bounds_kernel<T><<<nparts, kBlock, 0, ctx.stream>>>(partial, coord, natoms);
  check_launch("bounds_kernel");
  bounds_finish_kernel<<<1, kBlock, 0, ctx.stream>>>(out, partial, static_cast<int>(nparts));
  check_launch("bounds_finish_kernel");
}

CellGrid make_cell_grid(const double* lo, const double* hi, int natoms, double rcut) {
  CellGrid g;
  const double min_bin = rcut / kCellReach * (1.0 + 1e-5);
  for (int d = 0; d < 3; ++d) {
    g.lo[d] = lo[d];
    const double extent = hi[d] - lo[d];
    g.n[d] = std::max(1, static_cast<int>(std::floor(extent / min_bin)));
  }
  const long long max_cells = 4LL * natoms + 64;
  while (static_cast<long long>(g.n[0]) * g.n[1] * g.n[2] > max_cells) {
    int& widest = g.n[0] >= g.n[1] ? (g.n[0] >= g.n[2] ? g.n[0] : g.n[2])
                                    : (g.n[1] >= g.n[2] ? g.n[1] : g.n[2]);
    widest = std::max(1, widest / 2);
  }
  for (int d = 0; d < 3; ++d) {
    const double extent = hi[d] - lo[d];
    g.size[d] = g.n[d] > 1 ? extent / g.n[d] : std::max(extent, min_bin);
  }
  if (static_cast<long long>(g.n[0]) * g.n[1] * g.n[2] >= INT_MAX)
    throw InvalidArgument("cell list: too many bins");
  return g;
}

template <typename T>
void build_cell_list(const dtk_gpu_context& ctx, Scratch& scratch, CellList<T>& cells,
                     const T* coord, const int* type, int natoms, const CellGrid& grid) {
  cells.grid = grid;
  const long long ncell = static_cast<long long>(grid.n[0]) * grid.n[1] * grid.n[2];
  cells.ncell = ncell;

  // Counting sort by bin: populations -> exclusive scan -> bin starts; a stable radix sort of
  // (bin, index) gives the atoms of each bin in ascending index, as the CPU fills them.
  unsigned* cell_of = scratch.get<unsigned>(0, natoms, "cell list keys");
  unsigned* sorted_cell = scratch.get<unsigned>(1, natoms, "cell list keys");
  int* index = scratch.get<int>(2, natoms, "cell list index");
  cells.start = scratch.get<int>(3, ncell + 1, "cell list starts");
  fill_bytes_async(ctx, cells.start, 0, ncell + 1);
  bin_kernel<T><<<grid_for(natoms), kBlock, 0, ctx.stream>>>(cell_of, cells.start, index, coord,
                                                             natoms, grid);
  check_launch("bin_kernel");
  int* start = cells.start;
  const long long nstart = ncell + 1;
  run_cub(
      ctx,
      [&](void* temp, size_t& bytes, cudaStream_t stream) {
        return cub::DeviceScan::ExclusiveSum(temp, bytes, start, nstart, stream);
      },
      "cub::DeviceScan::ExclusiveSum (cell starts)", &scratch, 4);

  int end_bit = 1;
  while (end_bit < 31 && (1LL << end_bit) < ncell) ++end_bit;  // bins are < 2^end_bit
  cells.atom = scratch.get<int>(5, natoms, "cell list atoms");
  int* values_out = cells.atom;
  run_cub(
      ctx,
      [&](void* temp, size_t& bytes, cudaStream_t stream) {
        return cub::DeviceRadixSort::SortPairs(temp, bytes, cell_of, sorted_cell, index,
                                               values_out, natoms, 0, end_bit, stream);
      },
      "cub::DeviceRadixSort::SortPairs (cell list)", &scratch, 6);

  cells.coord = scratch.get<T>(7, 3 * static_cast<size_t>(natoms), "cell list coordinates");
  cells.type = scratch.get<int>(8, natoms, "cell list types");
  gather_kernel<T><<<grid_for(natoms), kBlock, 0, ctx.stream>>>(cells.coord, cells.type,
                                                                cells.atom, coord, type, natoms);
  check_launch("gather_kernel");
}

#define DTK_INSTANTIATE(T)                                                                       \
  template void find_images<T>(const dtk_gpu_context&, PeriodicImages<T>&, const T*, int,        \
                               const Region<T>&, double, long long*);                            \
  template void place_images<T>(const dtk_gpu_context&, const PeriodicImages<T>&, const int*,    \
                                int, T*, int*, int*, long long*);                                \
  template void image_bounds<T>(const PeriodicImages<T>&, double*, double*);                     \
  template void coord_bounds<T>(const dtk_gpu_context&, const T*, int, double*);                 \
  template void build_cell_list<T>(const dtk_gpu_context&, Scratch&, CellList<T>&, const T*,     \
                                   const int*, int, const CellGrid&);
DTK_INSTANTIATE(float)
DTK_INSTANTIATE(double)
#undef DTK_INSTANTIATE

}  // namespace gpu
}  // namespace deepmd_tebd
