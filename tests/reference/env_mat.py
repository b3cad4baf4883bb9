"""Pure-NumPy reference of the se_e2_a environment matrix (``ProdEnvMatA``) and of the force and
virial products (``ProdForceSeA``, ``ProdVirialSeA``), one frame at a time, in float64.

It follows the conventions of the op kernels closely enough that, for float64 inputs, the
neighbour order is identical and the values agree to round-off:

* periodic frames are wrapped into the cell with the cofactor inverse of the box and extended by
  every periodic image that can lie within ``rcut`` of the cell (images ordered by shift
  ``(a, b, c)`` lexicographically from the most negative, then by local index);
* ``rcut`` and ``rcut_smth`` are the op's float32 attributes, so they are rounded to float32;
* the neighbours of a centre are sorted by (type, distance, extended index) and fill one block
  of ``sel[t]`` slots per type ``t``; the nearest ``sel[t]`` are kept.

Shapes use DeePMD's vocabulary: ``nloc`` local atoms, ``nall`` atoms a force can act on,
``nnei = sum(sel)`` slots per centre, ``ndescrpt = 4 * nnei``.
"""

import math

import numpy as np

__all__ = [
    "attr_float",
    "cell_geometry",
    "wrap_coord",
    "extend_periodic",
    "switch_function",
    "env_mat_rows",
    "prod_env_mat_a_ref",
    "prod_force_ref",
    "prod_virial_ref",
    "random_system",
    "max_neighbors_per_type",
    "SYSTEM_KINDS",
]


def attr_float(x):
    """The value a float32 op attribute holds, as a Python float."""
    return float(np.float32(x))


# --------------------------------------------------------------------------------------------
# Cell geometry, wrapping and periodic images
# --------------------------------------------------------------------------------------------


def cell_geometry(box, dtype=np.float64):
    """Inverse, face distances and volume of a cell whose rows are the vectors a, b, c.

    The inverse is adj(h)/det from the cofactors of h, evaluated element by element in `dtype`,
    so that fractional coordinates are reproducible bit for bit. ``f_k = sum_d r_d * inv[d, k]``.
    ``face[k]`` is the distance between the two faces of the cell that do not contain vector k,
    ``volume / |cofactor row k|`` (e.g. ``|b x c|`` for k = 0).
    Returns (inv [3,3], face [3], volume), all in `dtype`.
    """
    h = np.asarray(box).astype(dtype).reshape(9)
    one = dtype(1)
    # cof[k][l]: cofactor of element (k, l); row k is the cross product of the other two rows
    cof = [
        [h[4] * h[8] - h[5] * h[7], h[5] * h[6] - h[3] * h[8], h[3] * h[7] - h[4] * h[6]],
        [h[2] * h[7] - h[1] * h[8], h[0] * h[8] - h[2] * h[6], h[1] * h[6] - h[0] * h[7]],
        [h[1] * h[5] - h[2] * h[4], h[2] * h[3] - h[0] * h[5], h[0] * h[4] - h[1] * h[3]],
    ]
    det = h[0] * cof[0][0] + h[1] * cof[0][1] + h[2] * cof[0][2]
    volume = -det if det < 0 else det
    if not volume > 0:
        raise ValueError("the simulation box is singular")
    idet = one / det
    # the adjugate is the transpose of the cofactor matrix
    inv = np.array([[cof[k][d] * idet for k in range(3)] for d in range(3)], dtype=dtype)
    face = np.array(
        [volume / np.sqrt(c[0] * c[0] + c[1] * c[1] + c[2] * c[2]) for c in cof], dtype=dtype
    )
    return inv, face, volume


def _to_frac(coord, inv):
    """Fractional coordinates of positions [n, 3]: f_k = r_0 inv[0,k] + r_1 inv[1,k] + r_2 inv[2,k]."""
    return np.stack(
        [coord[:, 0] * inv[0, k] + coord[:, 1] * inv[1, k] + coord[:, 2] * inv[2, k] for k in range(3)],
        axis=1,
    )


def _to_phys(frac, box):
    """Cartesian positions [n, 3] from fractional ones: r_d = f_0 a_d + f_1 b_d + f_2 c_d."""
    return np.stack(
        [frac[:, 0] * box[0, d] + frac[:, 1] * box[1, d] + frac[:, 2] * box[2, d] for d in range(3)],
        axis=1,
    )


def wrap_coord(coord, box, dtype=np.float64):
    """Positions [n, 3] moved into the cell (fractional coordinates in [0, 1)), in `dtype`."""
    box = np.asarray(box).astype(dtype).reshape(3, 3)
    inv, _, _ = cell_geometry(box, dtype)
    frac = _to_frac(np.asarray(coord).astype(dtype).reshape(-1, 3), inv)
    frac = frac - np.floor(frac)
    # a tiny negative fraction can round up to exactly 1 after adding 1
    frac = np.where(frac >= 1, frac - dtype(1), frac)
    return _to_phys(frac, box)


def extend_periodic(coord, atype, box, rcut, dtype=np.float64, with_rank=False):
    """Wrapped local atoms followed by their periodic images that may lie within rcut of the cell.

    For each direction k, n_k = ceil(rcut / face_k) cell shifts are tried on either side. Shifts
    (a, b, c) run lexicographically (a outermost, most negative first), skipping (0, 0, 0); within
    a shift local atoms run in index order. An image is kept when, for every k, its fractional
    coordinate frac_k + n_k lies in [-m_k, 1 + m_k] with m_k = rcut / face_k (slightly widened).
    Wrapping is computed in `dtype` (the op's precision); image positions are the wrapped positions
    plus the shift, summed in float64 and rounded to `dtype`.
    Returns ext_coord [next, 3] (`dtype`), ext_type [next], mapping [next] (the local atom of
    each entry), and with with_rank also rank [next]: DeePMD-kit's order of the same atoms in its
    periodic copy (local atoms first; images by ghost cell of DeePMD-kit's grid of
    max(1, floor(face_k / rcut)) cells per direction, lexicographic, then by local atom).
    """
    box = np.asarray(box).astype(dtype).reshape(3, 3)
    box64 = box.astype(np.float64)
    atype = np.asarray(atype).reshape(-1)
    wrapped = wrap_coord(coord, box, dtype)
    nloc = wrapped.shape[0]
    inv64, face, _ = cell_geometry(box64, np.float64)
    frac = _to_frac(wrapped.astype(np.float64), inv64)

    ratio = float(rcut) / face
    nimg = [int(math.ceil(x)) for x in ratio]
    margin = ratio * (1.0 + 1e-10) + 1e-12

    shifts = np.array(
        [
            (a, b, c)
            for a in range(-nimg[0], nimg[0] + 1)
            for b in range(-nimg[1], nimg[1] + 1)
            for c in range(-nimg[2], nimg[2] + 1)
            if (a, b, c) != (0, 0, 0)
        ],
        dtype=np.int64,
    ).reshape(-1, 3)
    sf = shifts.astype(np.float64)
    shift_vec = np.stack(
        [sf[:, 0] * box64[0, d] + sf[:, 1] * box64[1, d] + sf[:, 2] * box64[2, d] for d in range(3)],
        axis=1,
    )  # [nshift, 3]
    g = frac[None, :, :] + shifts[:, None, :]  # [nshift, nloc, 3]
    keep = np.all((g >= -margin) & (g <= 1.0 + margin), axis=2)  # [nshift, nloc]
    images = (wrapped.astype(np.float64)[None, :, :] + shift_vec[:, None, :]).astype(dtype)
    local = np.broadcast_to(np.arange(nloc), keep.shape)

    # boolean indexing walks [shift, atom] in row-major order: the order of the extension
    img_map = local[keep]
    ext_coord = np.concatenate([wrapped, images[keep]], axis=0)
    mapping = np.concatenate([np.arange(nloc), img_map])
    ext_type = atype[mapping]
    if not with_rank:
        return ext_coord, ext_type, mapping

    ncell = np.maximum((face / float(rcut)).astype(np.int64), 1)
    cell = np.clip(np.floor(frac * ncell).astype(np.int64), 0, ncell - 1)  # [nloc, 3]
    ghost_cell = cell[None, :, :] + shifts[:, None, :] * ncell  # [nshift, nloc, 3]
    ghost_key = [tuple(c) + (i,) for c, i in zip(ghost_cell[keep], img_map)]
    order = sorted(range(len(ghost_key)), key=ghost_key.__getitem__)
    rank = np.empty(len(ghost_key), dtype=np.int64)
    rank[order] = nloc + np.arange(len(ghost_key))
    return ext_coord, ext_type, mapping, np.concatenate([np.arange(nloc), rank])


# --------------------------------------------------------------------------------------------
# Smooth switch and one environment-matrix row per neighbour
# --------------------------------------------------------------------------------------------


def switch_function(r, rs, rc):
    """sw(r) and d sw / d r of the quintic switch: 1 below rs, 0 from rc on.

    For rs <= r < rc, with u = (r - rs)/(rc - rs): sw = u^3 (-6 u^2 + 15 u - 10) + 1, whose
    derivative is d sw/du = -30 u^2 (1 - u)^2, divided by (rc - rs) for d/dr.
    """
    r = np.asarray(r, dtype=np.float64)
    sw = np.ones_like(r)
    dsw = np.zeros_like(r)
    mid = (r >= rs) & (r < rc)
    if np.any(mid):
        # the width of the switch is taken in single precision from the op's float attributes
        width = float(np.float32(rc) - np.float32(rs))
        u = (r[mid] - rs) / width
        sw[mid] = u * u * u * (-6.0 * u * u + 15.0 * u - 10.0) + 1.0
        dsw[mid] = -30.0 * u * u * (1.0 - u) * (1.0 - u) / width
    far = r >= rc
    sw[far] = 0.0
    dsw[far] = 0.0
    return sw, dsw


def env_mat_rows(rr, rs, rc):
    """Raw environment-matrix rows of relative positions rr = R_j - R_i [..., 3].

    row = (s, s x/r, s y/r, s z/r) with s = sw(r)/r, i.e. (sw/r, sw x/r^2, sw y/r^2, sw z/r^2).
    deriv[..., a, d] = d row[a] / d R_i (the centre), which is -d row[a] / d rr_d:
        d(sw/r)/d rr_d       = (sw' r - sw) rr_d / r^3
        d(sw x_a/r^2)/d rr_d = sw delta_ad / r^2 + (sw'/r^2 - 2 sw/r^3) x_a rr_d / r
    Returns (row [..., 4], deriv [..., 4, 3]).
    """
    rr = np.asarray(rr, dtype=np.float64)
    x, y, z = rr[..., 0], rr[..., 1], rr[..., 2]
    r = np.sqrt(x * x + y * y + z * z)
    sw, dsw = switch_function(r, rs, rc)
    r2 = r * r
    r3 = r2 * r

    row = np.stack([sw / r, sw * x / r2, sw * y / r2, sw * z / r2], axis=-1)

    unit = rr / r[..., None]  # d r / d rr_d
    d_row0 = ((dsw * r - sw) / r2)[..., None] * unit  # d(sw/r)/d rr
    coef = dsw / r2 - 2.0 * sw / r3
    d_rows = (coef[..., None, None] * rr[..., :, None] * unit[..., None, :]
              + (sw / r2)[..., None, None] * np.eye(3))  # [..., a, d] for a = x, y, z
    d_rr = np.concatenate([d_row0[..., None, :], d_rows], axis=-2)  # [..., 4, 3]
    return row, -d_rr


# --------------------------------------------------------------------------------------------
# ProdEnvMatA
# --------------------------------------------------------------------------------------------


def _format_neighbors(key, ntype, rank, sel):
    """Slots of one centre from its candidate neighbours.

    Candidates are sorted by (type, key, rank), key being the single-precision squared distance;
    each type t keeps its first sel[t] in its own block. Returns the positions in the candidate
    arrays for every slot, -1 if empty.
    """
    slots = np.full(int(np.sum(sel)), -1, dtype=np.int64)
    order = np.lexsort((rank, key, ntype))
    start = 0
    for t, n in enumerate(sel):
        of_type = order[ntype[order] == t][:n]
        slots[start:start + of_type.size] = of_type
        start += n
    return slots


def prod_env_mat_a_ref(coord, atype, box, davg, dstd, sel, rcut, rcut_smth):
    """The normalised environment matrix of one frame, as ProdEnvMatA computes it (nloc == nall).

    coord [nloc, 3], atype [nloc] (negative = no atom), box [3, 3] with rows a, b, c, or None
    for open boundaries, davg/dstd [ntypes, 4*nnei], sel [ntypes], rcut/rcut_smth as given to
    the op (rounded to float32 here).

    Neighbour order (DeePMD-kit's): a neighbour is kept when its squared distance, in the
    precision of `coord`, is below the single-precision rcut^2 and its single-precision squared
    distance (from single-precision coordinates) is at most that; neighbours are sorted by type,
    then by that single-precision squared distance (so near-equal distances tie), then by their
    place in DeePMD-kit's periodic copy. Wrapping runs in the precision of `coord`, as the op of
    that precision does. Everything else is computed in float64 from the searched positions.

    Returns, all float64 except nlist (int32):
      em       [nloc, nnei*4]    (raw - davg[t_i]) / dstd[t_i]
      em_deriv [nloc, nnei*4*3]  d raw / d R_i divided by dstd[t_i], entry a, direction d at 3a+d
      rij      [nloc, nnei*3]    R_j - R_i, 0 for empty slots
      nlist    [nloc, nnei]      local index of the neighbour (images mapped back), -1 if empty
    """
    sel = [int(s) for s in sel]
    ntypes = len(sel)
    nnei = sum(sel)
    rc = attr_float(rcut)
    rs = attr_float(rcut_smth)
    coord = np.asarray(coord)
    search_dtype = np.float32 if coord.dtype == np.float32 else np.float64
    coord = coord.astype(search_dtype).reshape(-1, 3)
    atype = np.asarray(atype).astype(np.int64).reshape(-1)
    nloc = coord.shape[0]
    davg = np.asarray(davg, dtype=np.float64).reshape(ntypes, nnei * 4)
    dstd = np.asarray(dstd, dtype=np.float64).reshape(ntypes, nnei * 4)
    if atype.shape[0] != nloc:
        raise ValueError("atype has %d entries for %d atoms" % (atype.shape[0], nloc))
    if np.any(atype >= ntypes):
        raise ValueError("atom types must be below ntypes = %d" % ntypes)

    if box is None:
        ext_coord, ext_type, mapping = coord, atype, np.arange(nloc)
        rank = np.arange(nloc)
    else:
        ext_coord, ext_type, mapping, rank = extend_periodic(coord, atype, box, rc, search_dtype,
                                                             with_rank=True)
    ext_index = np.arange(ext_coord.shape[0])
    # the cut: squared distance in the op's precision below the single-precision rcut^2; the order
    # and the final cut use the squared distance of single-precision coordinates
    rc2 = np.float32(np.float32(rc) * np.float32(rc))
    ext32 = ext_coord.astype(np.float32)

    # extended index of every slot, -1 when empty
    slot_ext = np.full((nloc, nnei), -1, dtype=np.int64)
    for i in range(nloc):
        if atype[i] < 0:
            continue
        d = ext_coord - ext_coord[i]
        r2 = d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1] + d[:, 2] * d[:, 2]
        f = ext32 - ext32[i]
        key = (f[:, 0] * f[:, 0] + f[:, 1] * f[:, 1]) + f[:, 2] * f[:, 2]
        cand = (ext_index != i) & (ext_type >= 0) & (r2 < search_dtype(rc2)) & (key <= rc2)
        idx = ext_index[cand]
        pos = _format_neighbors(key[cand], ext_type[cand], rank[cand], sel)
        slot_ext[i] = np.where(pos >= 0, idx[np.maximum(pos, 0)], -1)

    ext64 = ext_coord.astype(np.float64)
    filled = slot_ext >= 0
    centre = np.broadcast_to(np.arange(nloc)[:, None], (nloc, nnei))
    rij = np.zeros((nloc, nnei, 3))
    rij[filled] = ext64[slot_ext[filled]] - ext64[centre[filled]]

    raw = np.zeros((nloc, nnei, 4))
    raw_deriv = np.zeros((nloc, nnei, 4, 3))
    raw[filled], raw_deriv[filled] = env_mat_rows(rij[filled], rs, rc)
    raw = raw.reshape(nloc, nnei * 4)
    raw_deriv = raw_deriv.reshape(nloc, nnei * 4, 3)

    em = np.zeros((nloc, nnei * 4))
    em_deriv = np.zeros((nloc, nnei * 4, 3))
    real = atype >= 0
    t = atype[real]
    em[real] = (raw[real] - davg[t]) / dstd[t]
    em_deriv[real] = raw_deriv[real] / dstd[t][:, :, None]

    nlist = np.where(filled, mapping[np.maximum(slot_ext, 0)], -1).astype(np.int32)
    return (
        em,
        em_deriv.reshape(nloc, nnei * 12),
        rij.reshape(nloc, nnei * 3),
        nlist,
    )


# --------------------------------------------------------------------------------------------
# ProdForceSeA and ProdVirialSeA
# --------------------------------------------------------------------------------------------


def _slot_products(net_deriv, in_deriv, nlist, nloc):
    """c[i, j, d] = sum over the 4 entries a of slot j of g[i, a] * in_deriv[i, a, d]."""
    nlist = np.asarray(nlist).astype(np.int64)
    if nloc is None:
        nloc = nlist.shape[0] if nlist.ndim == 2 else np.asarray(net_deriv).shape[0]
    nlist = nlist.reshape(nloc, -1)
    nnei = nlist.shape[1]
    g = np.asarray(net_deriv, dtype=np.float64).reshape(nloc, nnei, 4)
    dd = np.asarray(in_deriv, dtype=np.float64).reshape(nloc, nnei, 4, 3)
    c = np.einsum("ija,ijad->ijd", g, dd)
    return c, nlist


def prod_force_ref(net_deriv, in_deriv, nlist, nall, nloc=None):
    """Force of one frame from g = dE/d em: F_i -= g.in_deriv, F_nlist += g.in_deriv.

    net_deriv [nloc, ndescrpt] (or flat), in_deriv [nloc, ndescrpt*3] (or flat),
    nlist [nloc, nnei] (or flat, then nloc must be given or net_deriv must be 2-D).
    Returns force [nall*3] (float64).
    """
    c, nlist = _slot_products(net_deriv, in_deriv, nlist, nloc)
    nloc = nlist.shape[0]
    force = np.zeros((nall, 3))
    force[:nloc] -= c.sum(axis=1)
    valid = nlist >= 0
    np.add.at(force, nlist[valid], c[valid])
    return force.reshape(nall * 3)


def prod_virial_ref(net_deriv, in_deriv, rij, nlist, nall, nloc=None):
    """Virial of one frame: V[d0, d1] += g.in_deriv[:, d0] * rij[d1] over filled slots.

    The same per-slot term is added to the atom virial of the neighbour (not the centre).
    Returns virial [9] and atom_virial [nall*9] (float64); virial = sum of atom_virial.
    """
    c, nlist = _slot_products(net_deriv, in_deriv, nlist, nloc)
    nloc, nnei = nlist.shape
    rr = np.asarray(rij, dtype=np.float64).reshape(nloc, nnei, 3)
    valid = nlist >= 0
    term = c[valid][:, :, None] * rr[valid][:, None, :]  # [nvalid, d0, d1]
    atom_virial = np.zeros((nall, 3, 3))
    np.add.at(atom_virial, nlist[valid], term)
    virial = term.sum(axis=0)
    return virial.reshape(9), atom_virial.reshape(nall * 9)


# --------------------------------------------------------------------------------------------
# Random test frames
# --------------------------------------------------------------------------------------------

# kind -> (cell edge range in units of rcut or None for open, max tilt / edge, default density)
SYSTEM_KINDS = {
    "orthorhombic": ((1.6, 2.2), 0.0, 0.05),
    "triclinic": ((1.6, 2.2), 0.25, 0.05),
    "small": ((1.2, 1.4), 0.1, 0.05),
    "tiny": ((0.6, 0.9), 0.1, 0.05),
    "open": ((1.2, 1.6), None, 0.05),
    "crowded": ((1.1, 1.3), 0.0, 0.1),
}


def _min_image_distance(cart, placed, box):
    """Smallest distance from point cart [3] to the points placed [n, 3] and their neighbouring
    periodic images (or the points alone for box None)."""
    d = placed - cart
    if box is not None:
        shifts = np.array([(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)],
                          dtype=np.float64) @ box
        d = (d[:, None, :] + shifts[None, :, :]).reshape(-1, 3)
    return np.sqrt(np.min(np.sum(d * d, axis=-1))) if d.size else np.inf


def random_system(rng, kind, rcut=6.0, natoms=None, density=None, min_dist=0.8, ntypes=2,
                  sort_types=True):
    """A deterministic random frame for tests.

    kind:
      'orthorhombic'  rectangular cell, edges 1.6-2.2 rcut
      'triclinic'     general cell (all off-diagonal entries non-zero), edges 1.6-2.2 rcut
      'small'         edges 1.2-1.4 rcut: several images per direction within rcut
      'tiny'          edges 0.6-0.9 rcut: the cell is shorter than rcut (two image shells)
      'open'          no cell (box None), atoms in a cube of edge 1.2-1.6 rcut
      'crowded'       dense rectangular cell (0.1 atoms/A^3) with many neighbours, for small sel
    Atoms are placed by rejection sampling so that no two (including periodic images) are closer
    than min_dist; types are split roughly 1:2 between type 0 and the others, every type present
    when natoms allows, sorted by type unless sort_types is False.
    rng: a numpy Generator or a seed. Returns coord [natoms, 3], atype [natoms] (int32),
    box [3, 3] (rows a, b, c) or None.
    """
    if kind not in SYSTEM_KINDS:
        raise ValueError("unknown system kind %r; known: %s" % (kind, sorted(SYSTEM_KINDS)))
    rng = np.random.default_rng(rng)
    edge_range, tilt, default_density = SYSTEM_KINDS[kind]
    edges = rng.uniform(*edge_range, size=3) * rcut
    if tilt is None:
        box = None
        cell = np.diag(edges)
        volume = float(np.prod(edges))
    else:
        off = rng.uniform(-tilt, tilt, size=(3, 3)) * edges.mean()
        cell = np.diag(edges) + off * (1.0 - np.eye(3))
        box = cell
        volume = abs(float(np.linalg.det(cell)))
    if natoms is None:
        natoms = max(2 * ntypes, int(round((density or default_density) * volume)))

    placed = np.zeros((0, 3))
    tries = 0
    while placed.shape[0] < natoms:
        tries += 1
        if tries > 1000 * natoms:
            raise RuntimeError("could not place %d atoms %g A apart in %s cell"
                               % (natoms, min_dist, kind))
        cart = rng.uniform(0.0, 1.0, size=3) @ cell
        if _min_image_distance(cart, placed, box) >= min_dist:
            placed = np.vstack([placed, cart])

    n0 = max(1, natoms // 3)
    rest = natoms - n0
    others = np.arange(rest) % max(1, ntypes - 1) + 1 if ntypes > 1 else np.zeros(rest, int)
    atype = rng.permutation(np.concatenate([np.zeros(n0, int), others])).astype(np.int32)
    if sort_types:
        order = np.argsort(atype, kind="stable")
        placed, atype = placed[order], atype[order]
    return placed, atype, (None if box is None else np.array(box))


def max_neighbors_per_type(coord, atype, box, rcut):
    """Largest number of neighbours of each type within rcut over all centres (a sel that drops
    nothing). Counts periodic images for a box."""
    atype = np.asarray(atype).reshape(-1)
    ntypes = int(atype.max()) + 1
    coord = np.asarray(coord, dtype=np.float64).reshape(-1, 3)
    rc = attr_float(rcut)
    if box is None:
        ext_coord, ext_type = coord, atype
    else:
        ext_coord, ext_type, _ = extend_periodic(coord, atype, box, rc)
        coord = ext_coord[: coord.shape[0]]
    counts = np.zeros(ntypes, dtype=int)
    for i in range(coord.shape[0]):
        d = ext_coord - coord[i]
        r = np.sqrt(np.sum(d * d, axis=1))
        near = (r <= rc) & (np.arange(ext_coord.shape[0]) != i)
        counts = np.maximum(counts, np.bincount(ext_type[near][ext_type[near] >= 0],
                                                minlength=ntypes))
    return [int(c) for c in counts]
