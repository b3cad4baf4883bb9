// Neighbour statistics of one frame, for `dp neighbor-stat` and the automatic `sel`: the largest
// number of neighbours of each type around any atom and the shortest interatomic distance within
// the cutoff. Periodic images count as neighbours; the search is the cell list of
// neighbor_list.h.
#pragma once

namespace deepmd_tebd {

// One frame of nloc atoms.
//   coord [nloc*3], type [nloc] (0 <= type < ntypes; a negative type marks a virtual atom, which
//   is neither a centre nor a neighbour), box [9] (rows a, b, c) or nullptr for open boundaries.
// Outputs:
//   max_nbor_size [ntypes]  max over centres i of #{neighbours j of type t : |r_j - r_i| < rcut}
//   *min_nbor_dist          smallest |r_j - r_i| < rcut over all pairs, images included;
//                           +infinity when no pair lies within rcut
// Distances are evaluated in double from the T positions (periodic frames are wrapped into the
// cell and extended with their images in T first).
// Throws InvalidArgument for a type >= ntypes, a singular box, or two atoms at distance 0 (an
// atom and an image of an atom count too); the message names the two atoms by index.
template <typename T>
void neighbor_stat_cpu(int* max_nbor_size, T* min_nbor_dist, const T* coord, const int* type,
                       int nloc, int ntypes, const T* box, double rcut);

}  // namespace deepmd_tebd
