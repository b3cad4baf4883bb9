#include "neighbor_stat.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "errors.h"
#include "neighbor_list.h"

namespace deepmd_tebd {

template <typename T>
void neighbor_stat_cpu(int* max_nbor_size, T* min_nbor_dist, const T* coord, const int* type,
                       int nloc, int ntypes, const T* box, double rcut) {
  if (ntypes < 1) throw InvalidArgument("neighbor statistics need at least one atom type");
  if (!(rcut > 0)) throw InvalidArgument("neighbor statistics need a positive cutoff radius");
  for (int i = 0; i < nloc; ++i) {
    if (type[i] >= ntypes)
      throw InvalidArgument("atom " + std::to_string(i) + " has type " + std::to_string(type[i]) +
                            " but only " + std::to_string(ntypes) + " types are known");
    for (int d = 0; d < 3; ++d)
      if (!std::isfinite(static_cast<double>(coord[3 * i + d])))
        throw InvalidArgument("atom " + std::to_string(i) + " has a non-finite coordinate");
  }

  // The positions searched: the frame itself, or the frame wrapped and extended by the images
  // that can lie within rcut of the cell. map[k] is the local atom that position k belongs to.
  const NeighborSearch<T> search(coord, type, nloc, box, rcut);
  const T* pos = search.coord();
  const int* typ = search.type();
  const int* map = search.mapping();
  const double rcut2 = rcut * rcut;

  std::fill(max_nbor_size, max_nbor_size + ntypes, 0);
  double min_d2 = std::numeric_limits<double>::infinity();
  // the first overlapping pair in lexicographic order: centre, local index of the neighbour,
  // whether the neighbour is a periodic image
  std::tuple<int, int, bool> overlap{nloc, nloc, false};

#pragma omp parallel
  {
    std::vector<int> local_max(ntypes, 0), count(ntypes);
    double local_d2 = std::numeric_limits<double>::infinity();
    std::tuple<int, int, bool> local_overlap{nloc, nloc, false};
#pragma omp for schedule(dynamic, 64) nowait
    for (int i = 0; i < nloc; ++i) {
      if (type[i] < 0) continue;
      std::fill(count.begin(), count.end(), 0);
      const T* ri = pos + 3 * i;
      search.for_each_candidate(i, [&](int j) {
        if (j == i || typ[j] < 0) return;
        const T* rj = pos + 3 * j;
        double d2 = 0;
        for (int d = 0; d < 3; ++d) {
          const double x = static_cast<double>(rj[d]) - static_cast<double>(ri[d]);
          d2 += x * x;
        }
        if (!(d2 < rcut2)) return;
        ++count[typ[j]];
        if (d2 < local_d2) local_d2 = d2;
        if (d2 == 0)
          local_overlap = std::min(local_overlap, {i, map ? map[j] : j, j >= nloc});
      });
      for (int t = 0; t < ntypes; ++t) local_max[t] = std::max(local_max[t], count[t]);
    }
#pragma omp critical(deepmd_tebd_neighbor_stat)
    {
      for (int t = 0; t < ntypes; ++t) max_nbor_size[t] = std::max(max_nbor_size[t], local_max[t]);
      min_d2 = std::min(min_d2, local_d2);
      overlap = std::min(overlap, local_overlap);
    }
  }
  const auto [oi, oj, image] = overlap;
  if (oi < nloc)
    throw InvalidArgument("atoms " + std::to_string(std::min(oi, oj)) + " and " +
                          std::to_string(std::max(oi, oj)) + " overlap (distance 0" +
                          (image ? " to a periodic image" : "") + ")");
  *min_nbor_dist = static_cast<T>(std::sqrt(min_d2));
}

template void neighbor_stat_cpu<float>(int*, float*, const float*, const int*, int, int,
                                       const float*, double);
template void neighbor_stat_cpu<double>(int*, double*, const double*, const int*, int, int,
                                        const double*, double);

}  // namespace deepmd_tebd
