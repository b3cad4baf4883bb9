// The one neighbour-list builder: periodic images of a cell and a cell list over any set of
// positions, with cost linear in the number of atoms.
#pragma once
#include <vector>

#include "region.h"

namespace deepmd_tebd {

// Periodic extension of one frame. Local atoms come first, wrapped into the cell; then every
// periodic image that lies within `rcut` of the cell (any number of images per direction, so
// cells shorter than 2*rcut, or than rcut, are handled). mapping[k] is the local atom that
// extended atom k is an image of. Images are ordered by shift (n_a, n_b, n_c) lexicographically
// from the most negative, and by local index within one shift; image position = wrapped position
// + shift, summed in double and rounded to T.
//
// rank[k] orders the extended atoms as DeePMD-kit's periodic copy does, so that neighbours at
// equal distance are taken in the same order: local atoms by index, then images by their ghost
// cell (DeePMD-kit's cell grid of max(1, floor(face / rcut)) cells per direction, extended by the
// shift, lexicographic) and by local index within a cell.
template <typename T>
void extend_periodic(std::vector<T>& ext_coord, std::vector<int>& ext_type,
                     std::vector<int>& mapping, std::vector<long long>& rank, const T* coord,
                     const int* type, int nloc, const Region<T>& region, double rcut);

// Uniform grid of bins no smaller than rcut/2 over the bounding box of `coord`. Every atom within
// rcut of a position lies in the 5x5x5 bins around the position's bin (half-cutoff bins visit
// about a third fewer atoms than cutoff-sized bins with their 27 neighbours).
template <typename T>
class CellList {
 public:
  CellList(const T* coord, int natoms, double rcut);
  // Calls f(j) for every atom j in the bins around position r (a superset of the atoms within
  // rcut of r).
  template <class F>
  void for_each_candidate(const T* r, F&& f) const {
    int c[3];
    bin_of(r, c);
    for (int a = c[0] - kReach; a <= c[0] + kReach; ++a) {
      if (a < 0 || a >= n_[0]) continue;
      for (int b = c[1] - kReach; b <= c[1] + kReach; ++b) {
        if (b < 0 || b >= n_[1]) continue;
        const long long row = (static_cast<long long>(a) * n_[1] + b) * n_[2];
        const int e0 = c[2] - kReach < 0 ? 0 : c[2] - kReach;
        const int e1 = c[2] + kReach >= n_[2] ? n_[2] - 1 : c[2] + kReach;
        // bins e0..e1 of one row are contiguous in atoms_
        for (int k = start_[row + e0]; k < start_[row + e1 + 1]; ++k) f(atoms_[k]);
      }
    }
  }

 private:
  static constexpr int kReach = 2;  // bins per cutoff
  void bin_of(const T* r, int* c) const;
  double lo_[3];
  double size_[3];
  int n_[3];
  std::vector<int> start_;  // [ncell + 1]
  std::vector<int> atoms_;  // atom indices grouped by bin
};

// One frame prepared for a neighbour search: the one setup of the periodic images and the cell
// list, shared by ProdEnvMatA (env_mat.cc) and the neighbour statistics (neighbor_stat.cc).
// box == nullptr: open boundaries; the searched positions are the natoms atoms themselves.
// Otherwise periodic: the natoms atoms are local, and the searched positions are those atoms
// wrapped into the cell followed by their periodic images within rcut (extend_periodic). Position
// k < natoms is atom k in either case. Throws InvalidArgument when the box is singular.
template <typename T>
class NeighborSearch {
 public:
  NeighborSearch(const T* coord, const int* type, int natoms, const T* box, double rcut);
  NeighborSearch(const NeighborSearch&) = delete;
  NeighborSearch& operator=(const NeighborSearch&) = delete;

  int size() const { return size_; }                  // number of searched positions
  const T* coord() const { return coord_; }           // [size()*3]
  const int* type() const { return type_; }           // [size()]
  // Local atom of each searched position; nullptr for open boundaries (the identity).
  const int* mapping() const { return mapping_.empty() ? nullptr : mapping_.data(); }
  // DeePMD-kit's order of the searched positions (extend_periodic); nullptr for open boundaries.
  const long long* rank() const { return rank_.empty() ? nullptr : rank_.data(); }
  // Calls f(j) for every searched position j in the bins around position i (a superset of the
  // positions within rcut of it; j == i included).
  template <class F>
  void for_each_candidate(int i, F&& f) const {
    cells_.for_each_candidate(coord_ + 3 * static_cast<long long>(i), f);
  }

 private:
  // Fills the periodic extension (when box is set) and the views, then bins the searched
  // positions (called once, from the constructor, before any other member is used).
  CellList<T> extend_and_bin(const T* coord, const int* type, int natoms, const T* box,
                             double rcut);
  std::vector<T> ext_coord_;
  std::vector<int> ext_type_, mapping_;
  std::vector<long long> rank_;
  const T* coord_ = nullptr;
  const int* type_ = nullptr;
  int size_ = 0;
  CellList<T> cells_;  // built last, over the searched positions
};

}  // namespace deepmd_tebd
