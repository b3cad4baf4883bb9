"""Tables of the se_e2_a embedding nets for compressed models (`dp compress`), in NumPy.

Each embedding net G(s~) of a model without type embedding is replaced by a table of quintic
polynomials per output channel on a grid of s~ (DeePMD-kit 3.2: deepmd/utils/tabulate.py,
BaseTabulate.build and _build_lower; deepmd/tf/utils/tabulate.py, DPTabulate._make_data):

* range per centre type t: lower = floor(-davg[t, 0] / dstd[t, 0]), upper =
  ceil((sw(d_min) / d_min - davg[t, 0]) / dstd[t, 0]) with d_min the training data's minimum
  neighbour distance and sw the descriptor's switching function; one-side nets take the widest
  range over the centre types that use them;
* grid: [lower, upper) at stride0, [upper, e upper) at stride1, then e upper;
* interval k from the net's value y, slope y' and curvature y'' at both ends (width h):
  quintic Hermite coefficients a0..a5, stored at table[k, 6 m + p];
* table_info = [lower, upper, e upper, stride0, stride1, check_frequency], read by the
  TabulateFusionSeA op.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .network import resnet_rules

__all__ = ["NetTable", "embedding_table", "env_mat_range", "net_derivatives"]


@dataclass(frozen=True)
class NetTable:
    """One tabulated embedding net: coefficients [nspline, 6 M] and the 6 table_info values."""

    table: np.ndarray
    info: tuple[float, float, float, float, float, float]


def _switch(r: float, rmin: float, rmax: float) -> float:
    # DeePMD-kit: deepmd/utils/tabulate.py, BaseTabulate._spline5_switch
    if r < rmin:
        return 1.0
    if r < rmax:
        u = (r - rmin) / (rmax - rmin)
        return u * u * u * (-6 * u * u + 15 * u - 10) + 1
    return 0.0


def env_mat_range(davg, dstd, min_nbor_dist: float, rcut_smth: float,
                  rcut: float) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) per centre type, floored and ceiled (BaseTabulate._get_env_mat_range)."""
    davg, dstd = np.asarray(davg), np.asarray(dstd)
    sw = _switch(min_nbor_dist, rcut_smth, rcut)
    lower = -davg[:, 0] / dstd[:, 0]
    upper = ((1 / min_nbor_dist) * sw - davg[:, 0]) / dstd[:, 0]
    return np.floor(lower), np.ceil(upper)


def net_derivatives(x: np.ndarray, layers: Sequence[tuple[np.ndarray, np.ndarray]]):
    """Value, first and second derivative of a tanh embedding net (DeePMD-kit's resnet rules:
    a layer of the same width adds its input, of twice the width adds it twice) at the scalars
    x [n]: three arrays [n, M]."""
    y = x.reshape(-1, 1)
    dy, d2y = np.ones_like(y), np.zeros_like(y)
    rules = resnet_rules("embedding", 1, [w.shape[1] for w, _ in layers])
    for rule, (w, b) in zip(rules, layers):
        a = np.tanh(y @ w + b)
        dpre, d2pre = dy @ w, d2y @ w
        grad = 1 - a * a
        z, dz, d2z = a, grad * dpre, grad * d2pre - 2 * a * grad * dpre * dpre
        if rule == "skip":
            z, dz, d2z = z + y, dz + dy, d2z + d2y
        elif rule == "concat":
            z = z + np.concatenate([y, y], axis=1)
            dz = dz + np.concatenate([dy, dy], axis=1)
            d2z = d2z + np.concatenate([d2y, d2y], axis=1)
        y, dy, d2y = z, dz, d2z
    return y, dy, d2y


def embedding_table(layers, lower: float, upper: float, extrapolate: float, stride0: float,
                    stride1: float, check_frequency: int) -> NetTable:
    """The table of one net on [lower, extrapolate * upper] (BaseTabulate.build, `A`, and
    _build_lower: the same grid and coefficient expressions)."""
    dtype = layers[-1][0].dtype.type
    xx = np.arange(lower, upper, stride0, dtype=dtype)
    xx = np.append(xx, np.arange(upper, extrapolate * upper, stride1, dtype=dtype))
    xx = np.append(xx, np.array([extrapolate * upper], dtype=dtype))
    nspline = int((upper - lower) / stride0 + (extrapolate * upper - upper) / stride1)
    vv, dd, d2 = net_derivatives(xx, layers)
    m = vv.shape[1]
    tt = np.full((nspline, m), stride1)
    tt[: int((upper - lower) / stride0), :] = stride0
    hh = vv[1:nspline + 1] - vv[:nspline]
    d0, d1 = dd[:nspline], dd[1:nspline + 1]
    s0, s1 = d2[:nspline], d2[1:nspline + 1]
    table = np.zeros([nspline, 6 * m], dtype=dtype)
    table[:, 0::6] = vv[:nspline]
    table[:, 1::6] = d0
    table[:, 2::6] = 0.5 * s0
    table[:, 3::6] = (1 / (2 * tt * tt * tt)) * (20 * hh - (8 * d1 + 12 * d0) * tt
                                                 - (3 * s0 - s1) * tt * tt)
    table[:, 4::6] = (1 / (2 * tt * tt * tt * tt)) * (-30 * hh + (14 * d1 + 16 * d0) * tt
                                                      + (3 * s0 - 2 * s1) * tt * tt)
    table[:, 5::6] = (1 / (2 * tt * tt * tt * tt * tt)) * (12 * hh - 6 * (d1 + d0) * tt
                                                           + (s1 - s0) * tt * tt)
    info = (float(lower), float(upper), float(upper * extrapolate), float(stride0),
            float(stride1), float(check_frequency))
    return NetTable(table, info)
