// CUDA twin of prod_env_mat_a_cpu (env_mat.cc): same neighbours in the same slots, same
// arithmetic per slot, for nframes frames per call.
//
// Phase 1, every frame enqueued without waiting: the atom types are checked (one launch over all
// frames); periodic frames are wrapped and their images numbered (neighbor_list.cu), open frames
// get their coordinate bounds. Then the one read-back of the call: the first bad atom, the image
// count of every periodic frame and the bounds of every open frame.
// Phase 2, per frame, in buffers reused from frame to frame (Scratch):
//   1. periodic: the extended frame (same extended atoms, order and DeePMD-kit ranks as the CPU);
//   2. cell list over the searched positions (bins >= rcut / 2);
//   3. select_kernel: one warp per centre stages the neighbours within the cutoff (fill_centre's
//      tests), 32 at a time, and gives each its position among the neighbours of its type in the
//      order (d2, rank), found by a second visit of the centre's bins; that position is its slot
//      in the type's block, dropped when >= sel[t]. This equals the CPU's sort by (type, d2,
//      rank) followed by truncation to sel[t] per type, and needs no buffer sized by a count;
//   4. fill_slots_kernel: one thread per (centre, slot) computes the slot with env_mat_a_slot
//      and normalises it, and maps extended indices back to local atoms.
// Every launch, copy and temporary goes through the caller's dtk_gpu_context.
#include <climits>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "env_mat.h"
#include "errors.h"
#include "neighbor_list.cuh"
#include "switch.h"

namespace deepmd_tebd {
namespace gpu {
namespace {

// status[0] = min over atoms k (flattened over frames) with type >= ntypes of (k << 32 | type):
// the first bad atom and its type (all ones when there is none).
__global__ void first_bad_type_kernel(unsigned long long* status, const int* type, long long n,
                                      int ntypes) {
  for (long long k = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; k < n;
       k += static_cast<long long>(gridDim.x) * blockDim.x)
    if (type[k] >= ntypes)
      atomicMin(status, (static_cast<unsigned long long>(k) << 32) |
                            static_cast<unsigned>(type[k]));
}

// Device view of a cell list.
template <typename T>
struct CellView {
  CellGrid grid;
  const int* start;
  const int* atom;
  const T* coord;
  const int* type;
  bool mixed_types;  // every real neighbour counts as type 0 (EnvMatParams::mixed_types)
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
        f(keep, d2, j, cells.mixed_types && tj >= 0 ? 0 : tj);
      }
    }
  }
}

// Places the neighbours of each centre into its nlist row (extended indices; the row was set
// to -1). Neighbour e of type t goes to slot block_start[t] + q, q = the number of neighbours of
// type t before e in the order (d2, rank); dropped when q >= sel[t]. Ranks are unique, so the q
// of one type are distinct. One warp per centre: the neighbours are staged in shared memory as
// the bins are visited; each full batch of 32 (and the last one) is ranked by a second visit of
// the bins, which broadcasts every neighbour's key with shuffles. rank is the extended atom's
// DeePMD-kit rank (periodic) or null (open boundaries: the index).
constexpr int kStage = 64;  // staged neighbours per warp: up to 31 pending + a batch of 32

template <typename T>
__global__ void select_kernel(int* nlist, CellView<T> cells, const T* pos, const int* typ,
                              const long long* rank, int nloc, int nnei, float rcut2,
                              const int* sel, const int* block_start, bool list_virtual) {
  __shared__ float st_d2[kWarpsPerBlock][kStage];
  __shared__ long long st_rank[kWarpsPerBlock][kStage];
  __shared__ int st_j[kWarpsPerBlock][kStage];
  __shared__ int st_t[kWarpsPerBlock][kStage];
  const int lane = threadIdx.x & 31;
  const int wib = threadIdx.x >> 5;
  const unsigned below = (1u << lane) - 1u;  // lanes with a smaller id
  const long long nwarps = static_cast<long long>(gridDim.x) * kWarpsPerBlock;
  for (long long w = static_cast<long long>(blockIdx.x) * kWarpsPerBlock + wib; w < nloc;
       w += nwarps) {
    const int i = static_cast<int>(w);
    if (typ[i] < 0 && !list_virtual) continue;  // uniform across the warp
    const T ri[3] = {pos[3 * w], pos[3 * w + 1], pos[3 * w + 2]};
    int* row = nlist + w * nnei;
    int pending = 0;  // staged neighbours, the same in every lane

    // Ranks the first n (<= 32) staged neighbours, writes their slots, drops them from the stage.
    auto place_batch = [&](int n) {
      __syncwarp();
      float kd2 = 0.0f;
      long long kr = 0;
      int kj = -1, kt = -1;
      if (lane < n) {
        kd2 = st_d2[wib][lane];
        kr = st_rank[wib][lane];
        kj = st_j[wib][lane];
        kt = st_t[wib][lane];
      }
      int q = 0;
      for_each_candidate_batch(cells, i, ri, rcut2, [&](bool keep, float d2, int j, int tj) {
        unsigned kept = __ballot_sync(kFullMask, keep);
        const long long r = keep ? (rank ? rank[j] : j) : 0;
        while (kept) {
          const int src = __ffs(kept) - 1;
          kept &= kept - 1;
          const float df = __shfl_sync(kFullMask, d2, src);
          const long long rf = __shfl_sync(kFullMask, r, src);
          const int tf = __shfl_sync(kFullMask, tj, src);
          q += (tf == kt && (df < kd2 || (df == kd2 && rf < kr))) ? 1 : 0;
        }
      });
      if (lane < n && q < sel[kt]) row[block_start[kt] + q] = kj;
      const int rest = pending - n;  // < 32
      float md2 = 0.0f;
      long long mr = 0;
      int mj = 0, mt = 0;
      if (lane < rest) {
        md2 = st_d2[wib][n + lane];
        mr = st_rank[wib][n + lane];
        mj = st_j[wib][n + lane];
        mt = st_t[wib][n + lane];
      }
      __syncwarp();
      if (lane < rest) {
        st_d2[wib][lane] = md2;
        st_rank[wib][lane] = mr;
        st_j[wib][lane] = mj;
        st_t[wib][lane] = mt;
      }
      pending = rest;
    };

    for_each_candidate_batch(cells, i, ri, rcut2, [&](bool keep, float d2, int j, int tj) {
      const unsigned kept = __ballot_sync(kFullMask, keep);
      if (keep) {
        const int e = pending + __popc(kept & below);
        st_d2[wib][e] = d2;
        st_rank[wib][e] = rank ? rank[j] : j;
        st_j[wib][e] = j;
        st_t[wib][e] = tj;
      }
      pending += __popc(kept);
      if (pending >= 32) place_batch(32);
    });
    while (pending > 0) place_batch(pending < 32 ? pending : 32);
    __syncwarp();  // the stage is reused by the warp's next centre
  }
}

// One thread per (centre i, slot jj): rij, the raw slot (env_mat_a_slot), its normalisation and
// the neighbour index mapped to a local atom, exactly as fill_centre in env_mat.cc (a virtual
// centre's slots are listed when list_virtual, its em and em_deriv zero).
template <typename T>
__global__ void fill_slots_kernel(T* em, T* em_deriv, T* rij, int* nlist, const T* pos,
                                  const int* typ, const int* mapping, const T* davg,
                                  const T* dstd, int nloc, int nnei, float rmin, float rcut,
                                  bool list_virtual) {
  const long long total = static_cast<long long>(nloc) * nnei;
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
       idx < total; idx += static_cast<long long>(gridDim.x) * blockDim.x) {
    const long long i = idx / nnei;
    const int jj = static_cast<int>(idx - i * nnei);
    T* out = em + 4 * idx;
    T* out_deriv = em_deriv + 12 * idx;
    T* rr = rij + 3 * idx;
    const int ti = typ[i];
    if (ti < 0 && !list_virtual) {
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
    if (ti < 0) {
      for (int a = 0; a < 4; ++a) out[a] = T(0);
      for (int k = 0; k < 12; ++k) out_deriv[k] = T(0);
      continue;
    }
    const long long o = static_cast<long long>(ti) * nnei * 4 + 4LL * jj;
    const T* avg = davg + o;
    const T* sd = dstd + o;
    for (int a = 0; a < 4; ++a) out[a] = (row[a] - avg[a]) / sd[a];
    for (int k = 0; k < 12; ++k) out_deriv[k] = deriv[k] / sd[k / 3];
  }
}

// One thread per slot of every frame: neighbor_types_cpu's rule, the frame's types.
__global__ void neighbor_types_kernel(int* ntype, bool* nmask, const int* nlist, const int* type,
                                      long long total, long long per_frame, int nall,
                                      int ntypes) {
  for (long long k = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; k < total;
       k += static_cast<long long>(gridDim.x) * blockDim.x) {
    const int j = nlist[k];
    nmask[k] = j >= 0;
    ntype[k] = j >= 0 ? type[(k / per_frame) * nall + j] : ntypes;
  }
}

}  // namespace
}  // namespace gpu

void neighbor_types_gpu(const dtk_gpu_context& ctx, int* ntype, bool* nmask, const int* nlist,
                        const int* type, int nframes, int nloc, int nnei, int nall, int ntypes) {
  using namespace gpu;
  const long long per_frame = static_cast<long long>(nloc) * nnei;
  const long long total = per_frame * nframes;
  if (total == 0) return;
  neighbor_types_kernel<<<grid_for(total), kBlock, 0, ctx.stream>>>(ntype, nmask, nlist, type,
                                                                     total, per_frame, nall,
                                                                     ntypes);
  check_launch("neighbor_types_kernel");
}

template <typename T>
void prod_env_mat_a_gpu(const dtk_gpu_context& ctx, T* em, T* em_deriv, T* rij, int* nlist,
                        const T* coord, const int* type, int nframes, int nloc, int nall,
                        const T* box, const T* davg, const T* dstd, const EnvMatParams& p) {
  using namespace gpu;
  if (nloc != nall)
    throw InvalidArgument("without an external neighbour list nloc must equal nall (got nloc " +
                          std::to_string(nloc) + ", nall " + std::to_string(nall) + ")");
  if (p.ntypes < 0 || nframes < 0) throw InvalidArgument("ntypes and nframes must not be negative");
  const int nblocks = p.mixed_types ? 1 : p.ntypes;
  std::vector<int> layout(2 * static_cast<size_t>(nblocks));  // sel, then block starts
  long long nsel = 0;
  for (int t = 0; t < nblocks; ++t) {
    if (p.sel[t] < 0) throw InvalidArgument("sel[" + std::to_string(t) + "] is negative");
    layout[nblocks + t] = static_cast<int>(nsel);
    layout[t] = p.sel[t];
    nsel += p.sel[t];
  }
  if (nsel != p.nnei)
    throw InvalidArgument("nnei (" + std::to_string(p.nnei) + ") differs from the sum of sel (" +
                          std::to_string(nsel) + ")");
  if (nloc <= 0 || nframes == 0) return;
  std::vector<Region<T>> regions(box ? nframes : 0);
  for (int f = 0; box && f < nframes; ++f)
    if (!init_region(regions[f], box + 9LL * f))
      throw InvalidArgument("the simulation box is singular");

  // Phase 1. status: [0] the first bad atom (first_bad_type_kernel), [1 + f] the image count of
  // periodic frame f, then 6 doubles of bounds per open frame.
  const size_t nstatus = 1 + static_cast<size_t>(nframes) * 7;
  unsigned long long* status = device_alloc<unsigned long long>(ctx, nstatus, "status");
  long long* nimages = reinterpret_cast<long long*>(status + 1);
  double* bounds = reinterpret_cast<double*>(status + 1 + nframes);
  fill_bytes_async(ctx, status, 0xff, 1);
  fill_bytes_async(ctx, status + 1, 0, nstatus - 1);
  const long long ntotal = static_cast<long long>(nframes) * nall;
  first_bad_type_kernel<<<grid_for(ntotal), kBlock, 0, ctx.stream>>>(status, type, ntotal,
                                                                      p.ntypes);
  check_launch("first_bad_type_kernel");
  std::vector<PeriodicImages<T>> images(box ? nframes : 0);
  for (int f = 0; f < nframes; ++f) {
    const T* frame_coord = coord + 3LL * nall * f;
    if (box)
      find_images(ctx, images[f], frame_coord, nloc, regions[f], p.rcut, nimages + f);
    else
      coord_bounds(ctx, frame_coord, nall, bounds + 6LL * f);
  }
  std::vector<unsigned long long> host(nstatus);
  read_back(ctx, host.data(), status, nstatus);
  if (host[0] != ~0ULL) {
    const long long k = static_cast<long long>(host[0] >> 32);
    const int tk = static_cast<int>(static_cast<unsigned>(host[0] & 0xffffffffULL));
    throw InvalidArgument("atom " + std::to_string(k % nall) + " has type " + std::to_string(tk) +
                          " but the descriptor knows " + std::to_string(p.ntypes) + " types" +
                          (nframes > 1 ? " (frame " + std::to_string(k / nall) + ")" : ""));
  }

  // Phase 2.
  const float rcut = p.rcut;  // the switch takes the op's single-precision attributes
  const float rmin = p.rcut_smth;
  const float rcut2 = p.rcut * p.rcut;  // single precision, as in fill_centre
  const int nnei = p.nnei;
  const size_t nslot = static_cast<size_t>(nloc) * nnei;
  int* layout_dev = device_alloc<int>(ctx, layout.size(), "sel layout");
  copy_async(ctx, layout_dev, layout.data(), layout.size(), cudaMemcpyHostToDevice);
  fill_bytes_async(ctx, nlist, 0xff, nslot * nframes);  // -1 everywhere
  Scratch scratch(ctx);  // the extended frame and the cell list, reused frame after frame
  for (int f = 0; f < nframes; ++f) {
    const T* pos = coord + 3LL * nall * f;
    const int* typ = type + static_cast<long long>(nall) * f;
    const int* map = nullptr;
    const long long* rank = nullptr;  // null: open boundaries, ties broken by index
    int npos = nall;
    double lo[3], hi[3];
    if (box) {
      long long n = 0;
      std::memcpy(&n, &host[1 + f], sizeof(n));
      if (nloc + n > INT_MAX)
        throw InvalidArgument("periodic extension: " + std::to_string(nloc + n) +
                              " extended atoms exceed 2^31");
      npos = static_cast<int>(nloc + n);
      T* ext_coord = scratch.get<T>(kCellListSlots, 3 * static_cast<size_t>(npos),
                                    "extended coordinates");
      int* ext_type = scratch.get<int>(kCellListSlots + 1, npos, "extended types");
      int* ext_map = scratch.get<int>(kCellListSlots + 2, npos, "extended mapping");
      long long* ext_rank = scratch.get<long long>(kCellListSlots + 3, npos, "extended ranks");
      place_images(ctx, images[f], typ, nloc, ext_coord, ext_type, ext_map, ext_rank);
      image_bounds(images[f], lo, hi);
      pos = ext_coord;
      typ = ext_type;
      map = ext_map;
      rank = ext_rank;
    } else {
      std::memcpy(lo, &host[1 + nframes + 6 * f], 3 * sizeof(double));
      std::memcpy(hi, &host[1 + nframes + 6 * f + 3], 3 * sizeof(double));
    }
    CellList<T> cell_list;
    build_cell_list(ctx, scratch, cell_list, pos, typ, npos,
                    make_cell_grid(lo, hi, npos, p.rcut));
    const CellView<T> cells{cell_list.grid, cell_list.start, cell_list.atom, cell_list.coord,
                            cell_list.type, p.mixed_types};
    int* frame_nlist = nlist + nslot * f;
    select_kernel<T><<<grid_for_warps(nloc), kWarpBlock, 0, ctx.stream>>>(
        frame_nlist, cells, pos, typ, rank, nloc, nnei, rcut2, layout_dev,
        layout_dev + nblocks, box == nullptr);
    check_launch("select_kernel");
    if (nslot > 0) {
      fill_slots_kernel<T><<<grid_for(static_cast<long long>(nslot)), kBlock, 0, ctx.stream>>>(
          em + 4 * nslot * f, em_deriv + 12 * nslot * f, rij + 3 * nslot * f, frame_nlist, pos,
          typ, map, davg, dstd, nloc, nnei, rmin, rcut, box == nullptr);
      check_launch("fill_slots_kernel");
    }
  }
}

#define DTK_INSTANTIATE(T)                                                                     \
  template void prod_env_mat_a_gpu<T>(const dtk_gpu_context&, T*, T*, T*, int*, const T*,      \
                                      const int*, int, int, int, const T*, const T*, const T*, \
                                      const EnvMatParams&);
DTK_INSTANTIATE(float)
DTK_INSTANTIATE(double)
#undef DTK_INSTANTIATE

}  // namespace deepmd_tebd
