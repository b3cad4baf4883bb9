// Simulation cell: box rows are the cell vectors a, b, c (Cartesian, row-major [3][3]).
// A position r and its fractional coordinates f are related by r_d = sum_k f_k * box[k][d].
#pragma once
#include <cmath>

#include "device.h"

namespace deepmd_tebd {

// A cell with its inverse, face distances and volume, filled by init_region.
template <typename T>
struct Region {
  T box[9];      // rows a, b, c
  T inv[9];      // inverse of box: f_k = sum_d r_d * inv[d][k]
  T face[3];     // distance between the two faces of the cell spanned by the other two vectors
  T volume;
};

// Fills `region` from a box; returns false when the box is singular (zero volume).
template <typename T>
DTK_HD bool init_region(Region<T>& region, const T* box) {
  for (int i = 0; i < 9; ++i) region.box[i] = box[i];
  const T* h = box;
  // cofactors of h (adjugate transposed), row-major
  T c00 = h[4] * h[8] - h[5] * h[7];
  T c01 = h[5] * h[6] - h[3] * h[8];
  T c02 = h[3] * h[7] - h[4] * h[6];
  T c10 = h[2] * h[7] - h[1] * h[8];
  T c11 = h[0] * h[8] - h[2] * h[6];
  T c12 = h[1] * h[6] - h[0] * h[7];
  T c20 = h[1] * h[5] - h[2] * h[4];
  T c21 = h[2] * h[3] - h[0] * h[5];
  T c22 = h[0] * h[4] - h[1] * h[3];
  T det = h[0] * c00 + h[1] * c01 + h[2] * c02;
  region.volume = det < 0 ? -det : det;
  if (!(region.volume > T(0))) return false;
  T idet = T(1) / det;
  // inv = adj(h) / det, adj = transpose of the cofactor matrix
  region.inv[0] = c00 * idet; region.inv[1] = c10 * idet; region.inv[2] = c20 * idet;
  region.inv[3] = c01 * idet; region.inv[4] = c11 * idet; region.inv[5] = c21 * idet;
  region.inv[6] = c02 * idet; region.inv[7] = c12 * idet; region.inv[8] = c22 * idet;
  // |b x c| = |cofactor row 0|, etc.
  T n0 = std::sqrt(c00 * c00 + c01 * c01 + c02 * c02);
  T n1 = std::sqrt(c10 * c10 + c11 * c11 + c12 * c12);
  T n2 = std::sqrt(c20 * c20 + c21 * c21 + c22 * c22);
  region.face[0] = region.volume / n0;
  region.face[1] = region.volume / n1;
  region.face[2] = region.volume / n2;
  return true;
}

// Fractional coordinates f of the position r.
template <typename T>
DTK_HD void phys_to_frac(const Region<T>& region, const T* r, T* f) {
  for (int k = 0; k < 3; ++k)
    f[k] = r[0] * region.inv[0 * 3 + k] + r[1] * region.inv[1 * 3 + k] + r[2] * region.inv[2 * 3 + k];
}

// Position r of the fractional coordinates f.
template <typename T>
DTK_HD void frac_to_phys(const Region<T>& region, const T* f, T* r) {
  for (int d = 0; d < 3; ++d)
    r[d] = f[0] * region.box[0 * 3 + d] + f[1] * region.box[1 * 3 + d] + f[2] * region.box[2 * 3 + d];
}

// Wraps a position into the cell: fractional coordinates in [0, 1).
template <typename T>
DTK_HD void wrap_into_cell(const Region<T>& region, const T* r, T* out) {
  T f[3];
  phys_to_frac(region, r, f);
  for (int k = 0; k < 3; ++k) {
    f[k] -= std::floor(f[k]);
    if (f[k] >= T(1)) f[k] -= T(1);  // f slightly below 0 can round up to exactly 1
  }
  frac_to_phys(region, f, out);
}

}  // namespace deepmd_tebd
