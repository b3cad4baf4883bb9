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
// from the most negative, and by local index within one shift.
template <typename T>
void extend_periodic(std::vector<T>& ext_coord, std::vector<int>& ext_type,
                     std::vector<int>& mapping, const T* coord, const int* type, int nloc,
                     const Region<T>& region, double rcut);

// Uniform grid of cubic-ish bins no smaller than rcut over the bounding box of `coord`.
// Every atom within rcut of a position lies in the 27 bins around the position's bin.
template <typename T>
class CellList {
 public:
  CellList(const T* coord, int natoms, double rcut);
  // Calls f(j) for every atom j in the bins adjacent to position r (a superset of the atoms
  // within rcut of r).
  template <class F>
  void for_each_candidate(const T* r, F&& f) const {
    int c[3];
    bin_of(r, c);
    for (int a = c[0] - 1; a <= c[0] + 1; ++a) {
      if (a < 0 || a >= n_[0]) continue;
      for (int b = c[1] - 1; b <= c[1] + 1; ++b) {
        if (b < 0 || b >= n_[1]) continue;
        for (int e = c[2] - 1; e <= c[2] + 1; ++e) {
          if (e < 0 || e >= n_[2]) continue;
          const long long cell = (static_cast<long long>(a) * n_[1] + b) * n_[2] + e;
          for (int k = start_[cell]; k < start_[cell + 1]; ++k) f(atoms_[k]);
        }
      }
    }
  }

 private:
  void bin_of(const T* r, int* c) const;
  double lo_[3];
  double size_[3];
  int n_[3];
  std::vector<int> start_;  // [ncell + 1]
  std::vector<int> atoms_;  // atom indices grouped by bin
};

}  // namespace deepmd_tebd
