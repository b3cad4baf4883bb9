// Parallel scatter-add over centres: each thread accumulates into its own buffer, and the
// buffers are summed in thread order, so a run is reproducible for a given thread count.
#pragma once
#include <algorithm>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace deepmd_tebd {

// body(out, i0, i1) adds the contributions of centres [i0, i1) into out[0 .. size).
template <typename T, class Body>
void scatter_over_centres(T* out, long long size, int nloc, Body&& body) {
  std::fill(out, out + size, T(0));
  int nthreads = 1;
#ifdef _OPENMP
  nthreads = omp_get_max_threads();
#endif
  // Below a few hundred centres per thread the buffers cost more than they save.
  nthreads = std::max(1, std::min(nthreads, nloc / 256));
  if (nthreads == 1) {
    body(out, 0, nloc);
    return;
  }
  std::vector<T> buffers(static_cast<size_t>(nthreads - 1) * size, T(0));
#pragma omp parallel num_threads(nthreads)
  {
    int tid = 0;
#ifdef _OPENMP
    tid = omp_get_thread_num();
#endif
    T* mine = tid == 0 ? out : buffers.data() + static_cast<size_t>(tid - 1) * size;
    const int i0 = static_cast<int>(static_cast<long long>(nloc) * tid / nthreads);
    const int i1 = static_cast<int>(static_cast<long long>(nloc) * (tid + 1) / nthreads);
    body(mine, i0, i1);
#pragma omp barrier
#pragma omp for schedule(static)
    for (long long k = 0; k < size; ++k)
      for (int t = 1; t < nthreads; ++t) out[k] += buffers[static_cast<size_t>(t - 1) * size + k];
  }
}

}  // namespace deepmd_tebd
