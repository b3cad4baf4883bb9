// CUDA twin of prod_env_mat_a_cpu (env_mat.cc): same neighbours in the same slots, same
// arithmetic per slot.
//
// Pipeline for one frame:
//   1. periodic: wrap and extend by images (neighbor_list.cu): same extended atoms, order and
//      DeePMD-kit ranks as the CPU;
//   2. cell list over the searched positions, same grid as the CPU's CellList;
//   3. count_kernel: per centre, the number of neighbours that pass fill_centre's cutoff tests
//      (warp per centre);
//   4. exclusive scan of the counts -> per-centre segments of a candidate buffer;
//   5. collect_kernel: writes (d2, rank, index, type) of those neighbours into the segment;
//   6. select_kernel: the position of each candidate among the candidates of its type, ordered
//      by (d2, rank), is its slot in the type's block; positions >= sel[t] are dropped. This
//      equals the CPU's sort by (type, d2, rank) followed by truncation to sel[t] per type;
//   7. fill_slots_kernel: one thread per (centre, slot) computes the slot with env_mat_a_slot
//      and normalises it, and maps extended indices back to local atoms.
#include <cub/device/device_scan.cuh>

#include <cmath>
#include <string>
#include <vector>

#include "env_mat.h"
#include "errors.h"
#include "neighbor_list.cuh"
#include "switch.h"

namespace deepmd_tebd {
namespace gpu {
namespace {

// Lowest index of an atom whose type is >= ntypes (stays nall when there is none).
__global__ void first_bad_type_kernel(int* first, const int* type, int nall, int ntypes) {
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < nall;
       i += static_cast<long long>(gridDim.x) * blockDim.x)
    if (type[i] >= ntypes) atomicMin(first, static_cast<int>(i));
}

// Device view of a cell list.
template <typename T>
struct CellView {
  CellGrid grid;
  const int* start;
  const int* atom;
  const T* coord;
  const int* type;
};

// Visits the candidates of centre i (position ri) in the (2 kCellReach + 1)^3 bins around ri's
// bin, 32 at a time; the bins of one grid row are contiguous in the cell list, so each row is
// one range, as in CellList::for_each_candidate. Lane l of the warp gets candidate k0 + l of the
// current batch. f(keep, d2, j, tj) is called by all 32 lanes for every batch (lanes past the
// end of a range get keep = false), so f may use warp-wide intrinsics.
// The test is fill_centre's (env_mat.cc): j != i, type[j] >= 0, |r_j - r_i|^2 < rcut2 in T, and
// d2 <= rcut2 where d2 is the squared distance in single precision from single-precision
// coordinates (the sort key); rcut2 = rcut * rcut in single precision.
template <typename T, class F>
__device__ void for_each_candidate_batch(const CellView<T>& cells, int i, const T* ri,
                                         float rcut2, F&& f) {
  const int lane = threadIdx.x & 31;
  const float ri32[3] = {static_cast<float>(ri[0]), static_cast<float>(ri[1]),
                         static_cast<float>(ri[2])};
  const CellGrid& g = cells.grid;
  int c[3];
  bin_of(g, ri, c);
  for (int a = c[0] - kCellReach; a <= c[0] + kCellReach; ++a) {
    if (a < 0 || a >= g.n[0]) continue;
    for (int b = c[1] - kCellReach; b <= c[1] + kCellReach; ++b) {
      if (b < 0 || b >= g.n[1]) continue;
      const long long row = (static_cast<long long>(a) * g.n[1] + b) * g.n[2];
      const int e0 = c[2] - kCellReach < 0 ? 0 : c[2] - kCellReach;
      const int e1 = c[2] + kCellReach >= g.n[2] ? g.n[2] - 1 : c[2] + kCellReach;
      const int k_begin = cells.start[row + e0];
      const int k_end = cells.start[row + e1 + 1];
      for (int k0 = k_begin; k0 < k_end; k0 += 32) {
        const int k = k0 + lane;
        bool keep = false;
        float d2 = 0.0f;
        int j = -1, tj = -1;
        if (k < k_end) {
          j = cells.atom[k];
          tj = cells.type[k];
          if (j != i && tj >= 0) {
            const T* rj = cells.coord + 3 * static_cast<long long>(k);
            const T dx = rj[0] - ri[0], dy = rj[1] - ri[1], dz = rj[2] - ri[2];
            if (dx * dx + dy * dy + dz * dz < static_cast<T>(rcut2)) {
              const float fx = static_cast<float>(rj[0]) - ri32[0];
              const float fy = static_cast<float>(rj[1]) - ri32[1];
              const float fz = static_cast<float>(rj[2]) - ri32[2];
              d2 = fx * fx + fy * fy + fz * fz;
              keep = d2 <= rcut2;
            }
          }
        }
        f(keep, d2, j, tj);
      }
    }
  }
}

// count[i] = number of neighbours of centre i within the cutoff (0 for centres of negative
// type). One warp per centre.
template <typename T>
__global__ void count_kernel(long long* count, CellView<T> cells, const T* pos, const int* typ,
                             int nloc, float rcut2) {
  const int lane = threadIdx.x & 31;
  const long long nwarps = static_cast<long long>(gridDim.x) * kWarpsPerBlock;
  for (long long w = static_cast<long long>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
       w < nloc; w += nwarps) {
    const int i = static_cast<int>(w);
    int n = 0;
    if (typ[i] >= 0) {
      const T ri[3] = {pos[3 * w], pos[3 * w + 1], pos[3 * w + 2]};
      for_each_candidate_batch(cells, i, ri, rcut2,
                               [&](bool keep, float, int, int) { n += keep ? 1 : 0; });
    }
    n = warp_sum(n);
    if (lane == 0) count[w] = n;
  }
}

// Writes the neighbours of centre i into its segment [offset[i], offset[i+1]) of the candidate
// buffer: sort key (d2, rank), extended index and type; rank is the extended atom's DeePMD-kit
// rank (periodic) or its index (open boundaries). Same visit as count_kernel, so the segment is
// filled exactly. One warp per centre.
template <typename T>
__global__ void collect_kernel(float* cand_d2, long long* cand_rank, int* cand_j, int* cand_t,
                               const long long* offset, CellView<T> cells, const T* pos,
                               const int* typ, const long long* rank, int nloc, float rcut2) {
  const int lane = threadIdx.x & 31;
  const unsigned below = (1u << lane) - 1u;  // lanes with a smaller id
  const long long nwarps = static_cast<long long>(gridDim.x) * kWarpsPerBlock;
  for (long long w = static_cast<long long>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
       w < nloc; w += nwarps) {
    const int i = static_cast<int>(w);
    if (typ[i] < 0) continue;  // uniform across the warp
    const T ri[3] = {pos[3 * w], pos[3 * w + 1], pos[3 * w + 2]};
    long long next = offset[w];
    const long long end = offset[w + 1];
    for_each_candidate_batch(cells, i, ri, rcut2, [&](bool keep, float d2, int j, int tj) {
      const unsigned kept = __ballot_sync(kFullMask, keep);
      if (keep) {
        const long long e = next + __popc(kept & below);
        if (e < end) {  // always true: the count pass saw the same candidates
          cand_d2[e] = d2;
          cand_rank[e] = rank ? rank[j] : j;
          cand_j[e] = j;
          cand_t[e] = tj;
        }
      }
      next += __popc(kept);
    });
  }
}

// Sort key of a candidate: type, then (d2, rank).
struct CandidateKey {
  float d2;
  long long rank;
  int type;
};

// Key of candidate k of a segment that ends at `end`; k >= end gets d2 0, rank -1 and the type
// `absent_type`.
__device__ inline CandidateKey candidate_key(const float* cand_d2, const long long* cand_rank,
                                             const int* cand_t, long long k, long long end,
                                             int absent_type) {
  if (k < end) return {cand_d2[k], cand_rank[k], cand_t[k]};
  return {0.0f, -1, absent_type};
}

// Places the candidates of centre i into nlist (extended indices; the row was set to -1).
// Candidate e of type t goes to slot block_start[t] + q, q = the number of candidates of type t
// before e in the order (d2, rank); dropped when q >= sel[t]. Ranks are unique, so the q of one
// type are distinct. This equals fill_centre's sort by (type, d2, rank) and truncation to sel[t]
// per type. One warp per centre; each lane places one candidate of the current batch, comparing
// it with all candidates of the segment, which are loaded 32 at a time and broadcast with
// shuffles.
__global__ void select_kernel(int* nlist, const float* cand_d2, const long long* cand_rank,
                              const int* cand_j, const int* cand_t, const long long* offset,
                              const int* sel, const int* block_start, int nloc, int nnei) {
  const int lane = threadIdx.x & 31;
  const long long nwarps = static_cast<long long>(gridDim.x) * kWarpsPerBlock;
  for (long long w = static_cast<long long>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
       w < nloc; w += nwarps) {
    const long long begin = offset[w];
    const long long end = offset[w + 1];
    int* row = nlist + w * nnei;
    for (long long e0 = begin; e0 < end; e0 += 32) {
      const long long e = e0 + lane;
      const bool mine = e < end;
      const CandidateKey ke = candidate_key(cand_d2, cand_rank, cand_t, e, end, -1);
      int q = 0;
      for (long long f0 = begin; f0 < end; f0 += 32) {
        // lanes past the end carry type -2, which matches neither a candidate nor an absent e
        const CandidateKey kf = candidate_key(cand_d2, cand_rank, cand_t, f0 + lane, end, -2);
        const int nf = static_cast<int>(end - f0 < 32 ? end - f0 : 32);
        for (int src = 0; src < nf; ++src) {
          const float df = __shfl_sync(kFullMask, kf.d2, src);
          const long long rf = __shfl_sync(kFullMask, kf.rank, src);
          const int tf = __shfl_sync(kFullMask, kf.type, src);
          q += (tf == ke.type && (df < ke.d2 || (df == ke.d2 && rf < ke.rank))) ? 1 : 0;
        }
      }
      if (mine && q < sel[ke.type]) row[block_start[ke.type] + q] = cand_j[e];
    }
  }
}

// One thread per (centre i, slot jj): rij, the raw slot (env_mat_a_slot), its normalisation and
// the neighbour index mapped to a local atom, exactly as fill_centre in env_mat.cc.
template <typename T>
__global__ void fill_slots_kernel(T* em, T* em_deriv, T* rij, int* nlist, const T* pos,
                                  const int* typ, const int* mapping, const T* davg,
                                  const T* dstd, int nloc, int nnei, float rmin, float rcut) {
  const long long total = static_cast<long long>(nloc) * nnei;
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
       idx < total; idx += static_cast<long long>(gridDim.x) * blockDim.x) {
    const long long i = idx / nnei;
    const int jj = static_cast<int>(idx - i * nnei);
    T* out = em + 4 * idx;
    T* out_deriv = em_deriv + 12 * idx;
    T* rr = rij + 3 * idx;
    const int ti = typ[i];
    if (ti < 0) {
      for (int a = 0; a < 4; ++a) out[a] = T(0);
      for (int k = 0; k < 12; ++k) out_deriv[k] = T(0);
      for (int d = 0; d < 3; ++d) rr[d] = T(0);
      nlist[idx] = -1;
      continue;
    }
    const int j = nlist[idx];  // extended index or -1
    T row[4] = {T(0), T(0), T(0), T(0)};
    T deriv[12];
    for (int k = 0; k < 12; ++k) deriv[k] = T(0);
    T d[3] = {T(0), T(0), T(0)};
    if (j >= 0) {
      for (int q = 0; q < 3; ++q) d[q] = pos[3 * static_cast<long long>(j) + q] - pos[3 * i + q];
      env_mat_a_slot(row, deriv, d, rmin, rcut);
      nlist[idx] = mapping ? mapping[j] : j;
    }
    for (int q = 0; q < 3; ++q) rr[q] = d[q];
    const long long o = static_cast<long long>(ti) * nnei * 4 + 4LL * jj;
    const T* avg = davg + o;
    const T* sd = dstd + o;
    for (int a = 0; a < 4; ++a) out[a] = (row[a] - avg[a]) / sd[a];
    for (int k = 0; k < 12; ++k) out_deriv[k] = deriv[k] / sd[k / 3];
  }
}

}  // namespace
}  // namespace gpu

template <typename T>
void prod_env_mat_a_gpu(T* em, T* em_deriv, T* rij, int* nlist, const T* coord, const int* type,
                        int nloc, int nall, const T* box, const T* davg, const T* dstd,
                        const EnvMatParams& p) {
  using namespace gpu;
  if (nloc != nall)
    throw InvalidArgument("without an external neighbour list nloc must equal nall (got nloc " +
                          std::to_string(nloc) + ", nall " + std::to_string(nall) + ")");
  if (p.ntypes < 0) throw InvalidArgument("ntypes must not be negative");
  std::vector<int> layout(2 * static_cast<size_t>(p.ntypes));  // sel, then block starts
  long long nsel = 0;
  for (int t = 0; t < p.ntypes; ++t) {
    if (p.sel[t] < 0) throw InvalidArgument("sel[" + std::to_string(t) + "] is negative");
    layout[p.ntypes + t] = static_cast<int>(nsel);
    layout[t] = p.sel[t];
    nsel += p.sel[t];
  }
  if (nsel != p.nnei)
    throw InvalidArgument("nnei (" + std::to_string(p.nnei) + ") differs from the sum of sel (" +
                          std::to_string(nsel) + ")");
  if (nloc <= 0) return;

  {
    DeviceBuffer<int> first(1);
    first.upload(&nall, 1);
    first_bad_type_kernel<<<grid_for(nall), kBlock>>>(first.get(), type, nall, p.ntypes);
    check_launch("first_bad_type_kernel");
    const int i = read_device_value(first.get());
    if (i < nall) {
      const int ti = read_device_value(type + i);
      throw InvalidArgument("atom " + std::to_string(i) + " has type " + std::to_string(ti) +
                            " but the descriptor knows " + std::to_string(p.ntypes) + " types");
    }
  }

  // The positions searched: the frame itself, or the frame wrapped and extended by images.
  const T* pos = coord;
  const int* typ = type;
  const int* map = nullptr;
  const long long* rank = nullptr;  // null: open boundaries, ties broken by index
  int npos = nall;
  ExtendedFrame<T> ext;
  if (box) {
    T host_box[9];
    check(cudaMemcpy(host_box, box, sizeof(host_box), cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
    Region<T> region;
    if (!init_region(region, host_box)) throw InvalidArgument("the simulation box is singular");
    extend_periodic(ext, coord, type, nloc, region, p.rcut);
    pos = ext.coord.get();
    typ = ext.type.get();
    map = ext.mapping.get();
    rank = ext.rank.get();
    npos = ext.n;
  }
  CellList<T> cell_list;
  build_cell_list(cell_list, pos, typ, npos, p.rcut);
  const CellView<T> cells{cell_list.grid, cell_list.start.get(), cell_list.atom.get(),
                          cell_list.coord.get(), cell_list.type.get()};

  const float rcut = p.rcut;       // the switch takes the op's single-precision attributes
  const float rmin = p.rcut_smth;
  const float rcut2 = p.rcut * p.rcut;  // single precision, as in fill_centre
  const int nnei = p.nnei;

  // Candidates within the cutoff per centre, and their segments.
  DeviceBuffer<long long> offset(static_cast<size_t>(nloc) + 1);
  check(cudaMemsetAsync(offset.get(), 0, (static_cast<size_t>(nloc) + 1) * sizeof(long long)),
        "cudaMemsetAsync");
  count_kernel<T><<<grid_for_warps(nloc), kWarpBlock>>>(offset.get(), cells, pos, typ, nloc,
                                                        rcut2);
  check_launch("count_kernel");
  long long* offsets = offset.get();
  const long long noffset = static_cast<long long>(nloc) + 1;
  run_cub(
      [&](void* temp, size_t& bytes) {
        return cub::DeviceScan::ExclusiveSum(temp, bytes, offsets, noffset);
      },
      "cub::DeviceScan::ExclusiveSum (candidate segments)");
  const long long ncand = read_device_value(offset.get() + nloc);

  const size_t ncand_alloc = ncand > 0 ? static_cast<size_t>(ncand) : 1;
  DeviceBuffer<float> cand_d2(ncand_alloc);
  DeviceBuffer<long long> cand_rank(ncand_alloc);
  DeviceBuffer<int> cand_j(ncand_alloc), cand_t(ncand_alloc);
  collect_kernel<T><<<grid_for_warps(nloc), kWarpBlock>>>(
      cand_d2.get(), cand_rank.get(), cand_j.get(), cand_t.get(), offset.get(), cells, pos, typ,
      rank, nloc, rcut2);
  check_launch("collect_kernel");

  // Slots: -1 everywhere (all bytes 0xff), then the selected neighbours.
  const size_t nslot = static_cast<size_t>(nloc) * nnei;
  if (nslot > 0) check(cudaMemsetAsync(nlist, 0xff, nslot * sizeof(int)), "cudaMemsetAsync");
  DeviceBuffer<int> layout_dev(layout.size() > 0 ? layout.size() : 1);
  layout_dev.upload(layout.data(), layout.size());
  select_kernel<<<grid_for_warps(nloc), kWarpBlock>>>(
      nlist, cand_d2.get(), cand_rank.get(), cand_j.get(), cand_t.get(), offset.get(),
      layout_dev.get(), layout_dev.get() + p.ntypes, nloc, nnei);
  check_launch("select_kernel");

  if (nslot > 0) {
    fill_slots_kernel<T><<<grid_for(static_cast<long long>(nslot)), kBlock>>>(
        em, em_deriv, rij, nlist, pos, typ, map, davg, dstd, nloc, nnei, rmin, rcut);
    check_launch("fill_slots_kernel");
  }
  // The temporaries are freed on return (cudaFree waits for the kernels that use them); report
  // execution errors of this call here.
  check(cudaDeviceSynchronize(), "prod_env_mat_a_gpu");
}

template void prod_env_mat_a_gpu<float>(float*, float*, float*, int*, const float*, const int*,
                                         int, int, const float*, const float*, const float*,
                                         const EnvMatParams&);
template void prod_env_mat_a_gpu<double>(double*, double*, double*, int*, const double*,
                                          const int*, int, int, const double*, const double*,
                                          const double*, const EnvMatParams&);

}  // namespace deepmd_tebd
