#include "env_mat.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "errors.h"
#include "neighbor_list.h"
#include "switch.h"

namespace deepmd_tebd {
namespace {

// Neighbours are ordered as DeePMD-kit orders them: by type, then by the squared distance in
// single precision computed from single-precision coordinates (in either precision of the op, so
// that near-equal distances tie), then by position in DeePMD-kit's extended atom array.
struct NeighborKey {
  int type;
  float dist2;
  long long rank;
  int index;
  bool operator<(const NeighborKey& o) const {
    if (type != o.type) return type < o.type;
    if (dist2 != o.dist2) return dist2 < o.dist2;
    return rank < o.rank;
  }
};

// Per-thread scratch space, reused across centres.
template <typename T>
struct Scratch {
  std::vector<int> candidates;
  std::vector<NeighborKey> keys;
  std::vector<int> slots;
  std::vector<T> row;
  std::vector<T> deriv;
};

// Fills the output rows of centre i from its candidate neighbours (indices into `coord`). A
// centre of negative type (a virtual atom) gets zero em and em_deriv rows; its neighbours and rij
// are listed when list_virtual (open boundaries and caller's lists, as DeePMD-kit does), else
// its rows are empty.
template <typename T>
void fill_centre(T* em, T* em_deriv, T* rij, int* nlist, int i, const T* coord, const int* type,
                 const int* mapping, const long long* rank, const T* davg, const T* dstd,
                 const EnvMatParams& p, bool list_virtual, Scratch<T>& s) {
  const int nnei = p.nnei;
  const int nem = nnei * 4;
  const int ti = type[i];
  if (ti < 0 && !list_virtual) {
    std::fill(em, em + nem, T(0));
    std::fill(em_deriv, em_deriv + nem * 3, T(0));
    std::fill(rij, rij + nnei * 3, T(0));
    std::fill(nlist, nlist + nnei, -1);
    return;
  }
  const float rcut = p.rcut;       // the switch takes the op's single-precision attributes
  const float rmin = p.rcut_smth;
  const float rcut2 = p.rcut * p.rcut;
  const T* ri = coord + 3 * i;
  const float ri32[3] = {static_cast<float>(ri[0]), static_cast<float>(ri[1]),
                         static_cast<float>(ri[2])};
  s.keys.clear();
  for (int j : s.candidates) {
    if (j == i || type[j] < 0) continue;
    const T* rj = coord + 3 * j;
    const T dx = rj[0] - ri[0], dy = rj[1] - ri[1], dz = rj[2] - ri[2];
    if (!(dx * dx + dy * dy + dz * dz < static_cast<T>(rcut2))) continue;
    const float fx = static_cast<float>(rj[0]) - ri32[0];
    const float fy = static_cast<float>(rj[1]) - ri32[1];
    const float fz = static_cast<float>(rj[2]) - ri32[2];
    const float d2 = fx * fx + fy * fy + fz * fz;
    if (d2 <= rcut2) s.keys.push_back({p.mixed_types ? 0 : type[j], d2, rank ? rank[j] : j, j});
  }
  std::sort(s.keys.begin(), s.keys.end());
  s.slots.assign(nnei, -1);
  {
    int block_start = 0, t = 0, filled = 0;
    for (const auto& key : s.keys) {
      while (t < key.type) {
        block_start += p.sel[t];
        ++t;
        filled = 0;
      }
      if (filled < p.sel[t]) s.slots[block_start + filled++] = key.index;
    }
  }
  std::fill(s.row.begin(), s.row.end(), T(0));
  std::fill(s.deriv.begin(), s.deriv.end(), T(0));
  for (int jj = 0; jj < nnei; ++jj) {
    const int j = s.slots[jj];
    T* rr = rij + 3 * jj;
    if (j < 0) {
      rr[0] = rr[1] = rr[2] = T(0);
      nlist[jj] = -1;
      continue;
    }
    for (int d = 0; d < 3; ++d) rr[d] = coord[3 * j + d] - ri[d];
    env_mat_a_slot(&s.row[4 * jj], &s.deriv[12 * jj], rr, rmin, rcut);
    nlist[jj] = mapping ? mapping[j] : j;
  }
  if (ti < 0) {
    std::fill(em, em + nem, T(0));
    std::fill(em_deriv, em_deriv + nem * 3, T(0));
    return;
  }
  const T* avg = davg + static_cast<size_t>(ti) * nem;
  const T* std_ = dstd + static_cast<size_t>(ti) * nem;
  for (int k = 0; k < nem; ++k) em[k] = (s.row[k] - avg[k]) / std_[k];
  for (int k = 0; k < nem * 3; ++k) em_deriv[k] = s.deriv[k] / std_[k / 3];
}

}  // namespace

template <typename T>
void prod_env_mat_a_cpu(T* em, T* em_deriv, T* rij, int* nlist, const T* coord, const int* type,
                        int nloc, int nall, const T* box, const ExternalNeighborList* external,
                        const T* davg, const T* dstd, const EnvMatParams& p,
                        const ParallelFor& parallel_for) {
  if (!external && nloc != nall)
    throw InvalidArgument("without an external neighbour list nloc must equal nall (got nloc " +
                          std::to_string(nloc) + ", nall " + std::to_string(nall) + ")");
  for (int i = 0; i < nall; ++i)
    if (type[i] >= p.ntypes)
      throw InvalidArgument("atom " + std::to_string(i) + " has type " + std::to_string(type[i]) +
                            " but the descriptor knows " + std::to_string(p.ntypes) + " types");

  // The caller's list, indexed by local atom.
  std::vector<int> ext_row;
  if (external) {
    ext_row.assign(nloc, -1);
    for (int ii = 0; ii < external->inum; ++ii) {
      const int i = external->ilist[ii];
      if (i < 0 || i >= nloc)
        throw InvalidArgument("external neighbour list: ilist entry " + std::to_string(i) +
                              " is not a local atom");
      ext_row[i] = ii;
      for (int k = 0; k < external->numneigh[ii]; ++k) {
        const int j = external->firstneigh[ii][k];
        if (j < 0 || j >= nall)
          throw InvalidArgument("external neighbour list: neighbour index " + std::to_string(j) +
                                " is outside the " + std::to_string(nall) + " atoms");
      }
    }
  }
  // Otherwise our own search: the frame itself, or the frame wrapped and extended by images.
  std::optional<NeighborSearch<T>> search;
  if (!external) search.emplace(coord, type, nall, box, p.rcut);
  const T* pos = search ? search->coord() : coord;
  const int* typ = search ? search->type() : type;
  const int* map = search ? search->mapping() : nullptr;
  const long long* rank = search ? search->rank() : nullptr;

  const bool list_virtual = external || !box;
  const int nnei = p.nnei;
  auto centres = [&](int begin, int end) {
    Scratch<T> s;
    s.row.resize(nnei * 4);
    s.deriv.resize(nnei * 12);
    for (int i = begin; i < end; ++i) {
      s.candidates.clear();
      if (search) {
        search->for_each_candidate(i, [&](int j) { s.candidates.push_back(j); });
      } else if (ext_row[i] >= 0) {
        const int ii = ext_row[i];
        s.candidates.assign(external->firstneigh[ii],
                            external->firstneigh[ii] + external->numneigh[ii]);
      }
      const size_t o = static_cast<size_t>(i) * nnei;
      fill_centre(em + o * 4, em_deriv + o * 12, rij + o * 3, nlist + o, i, pos, typ, map, rank,
                  davg, dstd, p, list_virtual, s);
    }
  };
  run_parallel(parallel_for, nloc, 32, centres);
}

void neighbor_types_cpu(int* ntype, bool* nmask, const int* nlist, const int* type, long long n,
                        int ntypes) {
  for (long long k = 0; k < n; ++k) {
    nmask[k] = nlist[k] >= 0;
    ntype[k] = nmask[k] ? type[nlist[k]] : ntypes;
  }
}

template void prod_env_mat_a_cpu<float>(float*, float*, float*, int*, const float*, const int*,
                                         int, int, const float*, const ExternalNeighborList*,
                                         const float*, const float*, const EnvMatParams&,
                                         const ParallelFor&);
template void prod_env_mat_a_cpu<double>(double*, double*, double*, int*, const double*,
                                          const int*, int, int, const double*,
                                          const ExternalNeighborList*, const double*,
                                          const double*, const EnvMatParams&,
                                          const ParallelFor&);

}  // namespace deepmd_tebd
