// Marks small inline functions that are shared by the CPU kernels and the CUDA kernels.
#pragma once
#if defined(__CUDACC__)
#define DTK_HD __host__ __device__ inline
#else
#define DTK_HD inline
#endif
