// How a CPU kernel of the library spreads a loop over threads: on the caller's thread pool when
// it passes one (the TensorFlow ops pass TensorFlow's CPU threads: op/tf/common.h), else on
// OpenMP's threads (the C API).
#pragma once
#include <algorithm>
#include <functional>

namespace deepmd_tebd {

// The caller's thread pool: runs body(begin, end) on pieces that cover [0, n), several at once.
using ParallelFor = std::function<void(int n, const std::function<void(int, int)>& body)>;

// body(begin, end) over [0, n): on `pool` when set, else in pieces of `chunk` on OpenMP's threads.
template <class Body>
void run_parallel(const ParallelFor& pool, int n, int chunk, Body&& body) {
  if (pool) {
    pool(n, body);
    return;
  }
  const int pieces = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(dynamic, 1)
  for (int c = 0; c < pieces; ++c) body(c * chunk, std::min(n, (c + 1) * chunk));
}

}  // namespace deepmd_tebd
