// Exception-to-return-code translation shared by the CPU and CUDA C entry points.
#pragma once
#include <exception>
#include <string>

namespace deepmd_tebd {

// The message behind dtk_last_error(), per thread.
extern thread_local std::string last_error;

// Runs f(): 0 on success, 1 with last_error set when it throws.
template <class F>
int guarded(F&& f) {
  try {
    f();
    last_error.clear();
    return 0;
  } catch (const std::exception& e) {
    last_error = e.what();
    return 1;
  }
}

}  // namespace deepmd_tebd
