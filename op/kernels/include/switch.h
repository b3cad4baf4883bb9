// The smooth switching function of the se_e2_a environment matrix and the per-slot algebra,
// shared by the CPU and CUDA kernels.
#pragma once
#include <cmath>

#include "device.h"

namespace deepmd_tebd {

// sw(r) = 1 for r < rmin; u^3 (-6u^2 + 15u - 10) + 1 with u = (r - rmin)/(rmax - rmin) for
// rmin <= r < rmax; 0 beyond. dsw = d sw / d r. rmin and rmax are the op's single-precision
// attributes, and the width rmax - rmin is taken in single precision; the expressions are
// DeePMD-kit's (source/lib/include/switcher.h) operation for operation, so that the values agree
// to the last bit (which matters where a neighbour at the cut-off has a tiny row, e.g. under the
// normalisation of DPA-1's angular gate).
template <typename T>
DTK_HD void spline5_switch(T& sw, T& dsw, T r, float rmin_attr, float rmax_attr) {
  const T rmin = static_cast<T>(rmin_attr);
  const T rmax = static_cast<T>(rmax_attr);
  if (r < rmin) {
    sw = T(1);
    dsw = T(0);
  } else if (r < rmax) {
    const T width = static_cast<T>(rmax_attr - rmin_attr);
    T u = (r - rmin) / width;
    T du = T(1) / width;
    sw = u * u * u * (T(-6) * u * u + T(15) * u - T(10)) + T(1);
    dsw = (T(3) * u * u * (T(-6) * u * u + T(15) * u - T(10)) +
           u * u * u * (T(-12) * u + T(15))) * du;
  } else {
    sw = T(0);
    dsw = T(0);
  }
}

// One neighbour slot of the raw environment matrix. rr = R_j - R_i.
// row[4]   = (s, s x/r, s y/r, s z/r) with s = sw(r)/r
// deriv[12] = d row[a] / d R_i (the centre), a-major: deriv[3a + d]
template <typename T>
DTK_HD void env_mat_a_slot(T* row, T* deriv, const T* rr, float rmin, float rmax) {
  T r2 = rr[0] * rr[0] + rr[1] * rr[1] + rr[2] * rr[2];
  T inr = T(1) / std::sqrt(r2);
  T r = r2 * inr;
  T inr2 = inr * inr;
  T inr4 = inr2 * inr2;
  T inr3 = inr4 * r;
  T sw, dsw;
  spline5_switch(sw, dsw, r, rmin, rmax);
  T v0 = T(1) / r;
  T v1 = rr[0] / r2;
  T v2 = rr[1] / r2;
  T v3 = rr[2] / r2;
  // d(sw/r)/dR_i
  deriv[0] = rr[0] * inr3 * sw - v0 * dsw * rr[0] * inr;
  deriv[1] = rr[1] * inr3 * sw - v0 * dsw * rr[1] * inr;
  deriv[2] = rr[2] * inr3 * sw - v0 * dsw * rr[2] * inr;
  // d(sw x/r^2)/dR_i
  deriv[3] = (T(2) * rr[0] * rr[0] * inr4 - inr2) * sw - v1 * dsw * rr[0] * inr;
  deriv[4] = (T(2) * rr[0] * rr[1] * inr4) * sw - v1 * dsw * rr[1] * inr;
  deriv[5] = (T(2) * rr[0] * rr[2] * inr4) * sw - v1 * dsw * rr[2] * inr;
  // d(sw y/r^2)/dR_i
  deriv[6] = (T(2) * rr[1] * rr[0] * inr4) * sw - v2 * dsw * rr[0] * inr;
  deriv[7] = (T(2) * rr[1] * rr[1] * inr4 - inr2) * sw - v2 * dsw * rr[1] * inr;
  deriv[8] = (T(2) * rr[1] * rr[2] * inr4) * sw - v2 * dsw * rr[2] * inr;
  // d(sw z/r^2)/dR_i
  deriv[9] = (T(2) * rr[2] * rr[0] * inr4) * sw - v3 * dsw * rr[0] * inr;
  deriv[10] = (T(2) * rr[2] * rr[1] * inr4) * sw - v3 * dsw * rr[1] * inr;
  deriv[11] = (T(2) * rr[2] * rr[2] * inr4 - inr2) * sw - v3 * dsw * rr[2] * inr;
  row[0] = v0 * sw;
  row[1] = v1 * sw;
  row[2] = v2 * sw;
  row[3] = v3 * sw;
}

}  // namespace deepmd_tebd
