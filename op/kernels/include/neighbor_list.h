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

}  // namespace deepmd_tebd
