#include "neighbor_list.h"

#include <algorithm>
#include <cmath>

#include "errors.h"

namespace deepmd_tebd {

template <typename T>
void extend_periodic(std::vector<T>& ext_coord, std::vector<int>& ext_type,
                     std::vector<int>& mapping, std::vector<long long>& rank, const T* coord,
                     const int* type, int nloc, const Region<T>& region, double rcut) {
  std::vector<double> frac(static_cast<size_t>(nloc) * 3);
  ext_coord.resize(static_cast<size_t>(nloc) * 3);
  Region<double> region64{};
  double box64[9];
  for (int k = 0; k < 9; ++k) box64[k] = region.box[k];
  init_region(region64, box64);
  for (int i = 0; i < nloc; ++i) {
    wrap_into_cell(region, coord + 3 * i, &ext_coord[3 * i]);
    const double r[3] = {ext_coord[3 * i], ext_coord[3 * i + 1], ext_coord[3 * i + 2]};
    phys_to_frac(region64, r, &frac[3 * i]);
  }
  ext_type.assign(type, type + nloc);
  mapping.resize(nloc);
  rank.resize(nloc);
  for (int i = 0; i < nloc; ++i) mapping[i] = rank[i] = i;

  int nimg[3], ncell[3];
  double margin[3];
  long long width[3], offset[3];
  double images = nloc;  // the extended atoms it would take, bounded by the int indices
  for (int k = 0; k < 3; ++k) images *= 2.0 * std::ceil(rcut / region64.face[k]) + 1.0;
  if (!(images <= 2147483647.0))
    throw InvalidArgument("the cutoff " + std::to_string(rcut) +
                          " needs more periodic images of the box than can be indexed (" +
                          std::to_string(images) + " atoms); the cutoff is far larger than the box");
  for (int k = 0; k < 3; ++k) {
    margin[k] = rcut / region64.face[k];
    nimg[k] = static_cast<int>(std::ceil(margin[k]));
    margin[k] = margin[k] * (1.0 + 1e-10) + 1e-12;
    ncell[k] = std::max(1, static_cast<int>(region64.face[k] / rcut));
    offset[k] = static_cast<long long>(nimg[k] + 1) * ncell[k];
    width[k] = 2 * offset[k] + ncell[k];
  }
  // DeePMD-kit's cell of every local atom
  std::vector<int> cell(static_cast<size_t>(nloc) * 3);
  for (int i = 0; i < nloc; ++i)
    for (int k = 0; k < 3; ++k) {
      const int c = static_cast<int>(std::floor(frac[3 * i + k] * ncell[k]));
      cell[3 * i + k] = std::min(std::max(c, 0), ncell[k] - 1);
    }
  for (int a = -nimg[0]; a <= nimg[0]; ++a) {
    for (int b = -nimg[1]; b <= nimg[1]; ++b) {
      for (int c = -nimg[2]; c <= nimg[2]; ++c) {
        if (a == 0 && b == 0 && c == 0) continue;
        const int n[3] = {a, b, c};
        double shift[3];
        for (int d = 0; d < 3; ++d)
          shift[d] = a * region64.box[0 * 3 + d] + b * region64.box[1 * 3 + d] +
                     c * region64.box[2 * 3 + d];
        for (int i = 0; i < nloc; ++i) {
          bool inside = true;
          for (int k = 0; k < 3 && inside; ++k) {
            const double g = frac[3 * i + k] + n[k];
            inside = g >= -margin[k] && g <= 1.0 + margin[k];
          }
          if (!inside) continue;
          for (int d = 0; d < 3; ++d)
            ext_coord.push_back(static_cast<T>(static_cast<double>(ext_coord[3 * i + d]) + shift[d]));
          ext_type.push_back(type[i]);
          mapping.push_back(i);
          long long ghost_cell = 0;
          for (int k = 0; k < 3; ++k)
            ghost_cell = ghost_cell * width[k] + cell[3 * i + k] + n[k] * ncell[k] + offset[k];
          rank.push_back(nloc + ghost_cell * nloc + i);
        }
      }
    }
  }
}

template <typename T>
CellList<T>::CellList(const T* coord, int natoms, double rcut) {
  double hi[3];
  for (int d = 0; d < 3; ++d) {
    lo_[d] = natoms > 0 ? static_cast<double>(coord[d]) : 0.0;
    hi[d] = lo_[d];
  }
  for (int i = 1; i < natoms; ++i)
    for (int d = 0; d < 3; ++d) {
      const double x = coord[3 * i + d];
      lo_[d] = std::min(lo_[d], x);
      hi[d] = std::max(hi[d], x);
    }
  for (int d = 0; d < 3; ++d) {
    const double extent = hi[d] - lo_[d];
    n_[d] = std::max(1, static_cast<int>(std::floor(extent * kReach / rcut)));
  }
  // Sparse open systems would need far more bins than atoms: coarsen the grid (bins only grow).
  const long long max_cells = 4LL * natoms + 64;
  while (static_cast<long long>(n_[0]) * n_[1] * n_[2] > max_cells) {
    int& widest = n_[0] >= n_[1] ? (n_[0] >= n_[2] ? n_[0] : n_[2]) : (n_[1] >= n_[2] ? n_[1] : n_[2]);
    widest = std::max(1, widest / 2);
  }
  for (int d = 0; d < 3; ++d) {
    const double extent = hi[d] - lo_[d];
    size_[d] = n_[d] > 1 ? extent / n_[d] : std::max(extent, rcut / kReach);
  }
  const long long ncell = static_cast<long long>(n_[0]) * n_[1] * n_[2];
  std::vector<long long> cell_of(natoms);
  start_.assign(ncell + 1, 0);
  for (int i = 0; i < natoms; ++i) {
    int c[3];
    bin_of(coord + 3 * i, c);
    cell_of[i] = (static_cast<long long>(c[0]) * n_[1] + c[1]) * n_[2] + c[2];
    ++start_[cell_of[i] + 1];
  }
  for (long long k = 0; k < ncell; ++k) start_[k + 1] += start_[k];
  atoms_.resize(natoms);
  std::vector<int> fill(start_.begin(), start_.end() - 1);
  for (int i = 0; i < natoms; ++i) atoms_[fill[cell_of[i]]++] = i;
}

template <typename T>
void CellList<T>::bin_of(const T* r, int* c) const {
  for (int d = 0; d < 3; ++d) {
    int k = static_cast<int>(std::floor((static_cast<double>(r[d]) - lo_[d]) / size_[d]));
    c[d] = std::min(std::max(k, 0), n_[d] - 1);
  }
}

template <typename T>
NeighborSearch<T>::NeighborSearch(const T* coord, const int* type, int natoms, const T* box,
                                  double rcut)
    : cells_(extend_and_bin(coord, type, natoms, box, rcut)) {}

template <typename T>
CellList<T> NeighborSearch<T>::extend_and_bin(const T* coord, const int* type, int natoms,
                                              const T* box, double rcut) {
  coord_ = coord;
  type_ = type;
  size_ = natoms;
  if (box) {
    Region<T> region;
    if (!init_region(region, box)) throw InvalidArgument("the simulation box is singular");
    extend_periodic(ext_coord_, ext_type_, mapping_, rank_, coord, type, natoms, region, rcut);
    coord_ = ext_coord_.data();
    type_ = ext_type_.data();
    size_ = static_cast<int>(mapping_.size());
  }
  return CellList<T>(coord_, size_, rcut);
}

template void extend_periodic<float>(std::vector<float>&, std::vector<int>&, std::vector<int>&,
                                     std::vector<long long>&, const float*, const int*, int,
                                     const Region<float>&, double);
template void extend_periodic<double>(std::vector<double>&, std::vector<int>&, std::vector<int>&,
                                      std::vector<long long>&, const double*, const int*, int,
                                      const Region<double>&, double);
template class CellList<float>;
template class CellList<double>;
template class NeighborSearch<float>;
template class NeighborSearch<double>;

}  // namespace deepmd_tebd
