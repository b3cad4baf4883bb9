"""The CUDA runtime through ctypes, for the harness: a non-blocking stream, device memory from an
arena handed to the kernels as their allocation callback (op/kernels/include/gpu_context.h),
stream-ordered copies, events, and a kernel that holds the legacy default stream.

No TensorFlow, no CUDA Python package: the libcudart the kernel library links is opened again."""
import ctypes

import numpy as np

CUDA_STREAM_NON_BLOCKING = 1
CUDA_STREAM_LEGACY = ctypes.c_void_p(1)  # (cudaStream_t)0x1
H2D, D2H = 1, 2  # cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost
HOST_ALLOC_MAPPED = 2
STAGING_BYTES = 64 << 20  # pinned host buffer through which all copies go, chunk by chunk
ATTR_MEMORY_CLOCK_KHZ, ATTR_BUS_WIDTH_BITS = 36, 37
ALIGN = 256

ALLOC_FN = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)


class GpuContext(ctypes.Structure):
    """dtk_gpu_context: stream, allocation callback, user pointer."""
    _fields_ = [("stream", ctypes.c_void_p), ("alloc", ALLOC_FN), ("user", ctypes.c_void_p)]


class CudaError(RuntimeError):
    pass


def loaded_cudart():
    """Path of the libcudart already mapped into this process (by the kernel library)."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if "libcudart" in path:
                return path
    return "libcudart.so"


class Cuda:
    """One non-blocking stream on device 0 and an arena of `arena_bytes` of device memory."""

    def __init__(self, arena_bytes):
        self.rt = ctypes.CDLL(loaded_cudart())
        self.rt.cudaGetErrorString.restype = ctypes.c_char_p
        self.stream = ctypes.c_void_p()
        self.check(self.rt.cudaStreamCreateWithFlags(ctypes.byref(self.stream),
                                                     CUDA_STREAM_NON_BLOCKING), "stream")
        free, _ = self.mem_info()
        self.arena_bytes = int(min(arena_bytes, 0.8 * free)) // ALIGN * ALIGN
        self.base = ctypes.c_void_p()
        self.check(self.rt.cudaMalloc(ctypes.byref(self.base), ctypes.c_size_t(self.arena_bytes)),
                   "arena of %d bytes" % self.arena_bytes)
        self.top = 0
        # Pinned staging: copies never touch pageable memory, whose transfers the driver may
        # stage in ways that wait for other streams.
        self.staging = ctypes.c_void_p()
        self.check(self.rt.cudaHostAlloc(ctypes.byref(self.staging), ctypes.c_size_t(STAGING_BYTES),
                                         0), "pinned staging")
        self.staged = np.ctypeslib.as_array(
            ctypes.cast(self.staging, ctypes.POINTER(ctypes.c_uint8)), shape=(STAGING_BYTES,))
        self._alloc = ALLOC_FN(self._allocate)  # kept alive with the context
        self.context = GpuContext(self.stream, self._alloc, None)

    def check(self, rc, what):
        if rc != 0:
            raise CudaError("%s: %s" % (what, self.rt.cudaGetErrorString(rc).decode()))

    def mem_info(self):
        free, total = ctypes.c_size_t(), ctypes.c_size_t()
        self.check(self.rt.cudaMemGetInfo(ctypes.byref(free), ctypes.byref(total)), "mem info")
        return free.value, total.value

    def _allocate(self, user, nbytes):
        start = (self.top + ALIGN - 1) // ALIGN * ALIGN
        if start + nbytes > self.arena_bytes:
            return None
        self.top = start + nbytes
        return self.base.value + start

    def alloc(self, nbytes):
        """Device memory from the arena (the kernels' allocator) for the harness's own arrays."""
        p = self._allocate(None, max(int(nbytes), 1))
        if p is None:
            raise CudaError("arena of %d bytes exhausted" % self.arena_bytes)
        return p

    def _copy(self, dst, src, nbytes, kind):
        self.check(self.rt.cudaMemcpyAsync(ctypes.c_void_p(dst), ctypes.c_void_p(src),
                                           ctypes.c_size_t(nbytes), kind, self.stream),
                   "copy on the stream")
        self.sync()

    def upload(self, array):
        """Device copy of a host array, through the pinned staging buffer on the stream."""
        raw = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        d = self.alloc(raw.nbytes)
        for k in range(0, raw.nbytes, STAGING_BYTES):
            part = raw[k:k + STAGING_BYTES]
            self.staged[:part.nbytes] = part
            self._copy(d + k, self.staging.value, part.nbytes, H2D)
        return d

    def download(self, out, device_ptr):
        """Copies device memory into the contiguous host array `out`, through the pinned staging
        buffer on the stream, and waits for it."""
        assert out.flags.c_contiguous
        raw = out.reshape(-1).view(np.uint8)
        for k in range(0, raw.nbytes, STAGING_BYTES):
            n = min(STAGING_BYTES, raw.nbytes - k)
            self._copy(self.staging.value, device_ptr + k, n, D2H)
            raw[k:k + n] = self.staged[:n]
        return out

    def sync(self):
        self.check(self.rt.cudaStreamSynchronize(self.stream), "stream synchronize")

    def timed(self, call):
        """Runs call() (which enqueues on the stream) between two events; device milliseconds."""
        events = [ctypes.c_void_p(), ctypes.c_void_p()]
        for e in events:
            self.check(self.rt.cudaEventCreate(ctypes.byref(e)), "event")
        self.check(self.rt.cudaEventRecord(events[0], self.stream), "event record")
        call()
        self.check(self.rt.cudaEventRecord(events[1], self.stream), "event record")
        self.check(self.rt.cudaEventSynchronize(events[1]), "event synchronize")
        ms = ctypes.c_float()
        self.check(self.rt.cudaEventElapsedTime(ctypes.byref(ms), events[0], events[1]), "elapsed")
        for e in events:
            self.rt.cudaEventDestroy(e)
        return ms.value

    def peak_bandwidth(self):
        """The device's theoretical memory bandwidth in GB/s (2 x memory clock x bus width)."""
        clock, width = ctypes.c_int(), ctypes.c_int()
        self.check(self.rt.cudaDeviceGetAttribute(ctypes.byref(clock), ATTR_MEMORY_CLOCK_KHZ, 0),
                   "memory clock")
        self.check(self.rt.cudaDeviceGetAttribute(ctypes.byref(width), ATTR_BUS_WIDTH_BITS, 0),
                   "bus width")
        return 2.0 * clock.value * 1e3 * width.value / 8 / 1e9

    def device_name(self):
        prop = ctypes.create_string_buffer(8192)
        fn = getattr(self.rt, "cudaGetDeviceProperties_v2", None) or self.rt.cudaGetDeviceProperties
        self.check(fn(prop, 0), "device properties")
        return prop.value.decode(errors="replace")


class Scope:
    """Arena mark and rewind around a group of calls: the stream is synchronised first, so the
    kernels are done with their temporaries (gpu_context.h)."""

    def __init__(self, cuda):
        self.cuda = cuda

    def __enter__(self):
        self.mark = self.cuda.top
        return self.cuda

    def __exit__(self, *exc):
        self.cuda.sync()
        self.cuda.top = self.mark


class LegacyStreamHold:
    """A one-thread kernel waiting on the legacy default stream (dtk_gpu_hold_stream) until
    release(): work enqueued there by mistake would not run before the checks read back."""

    def __init__(self, cuda, lib, timeout_s):
        self.cuda = cuda
        self.flags = ctypes.c_void_p()
        cuda.check(cuda.rt.cudaHostAlloc(ctypes.byref(self.flags), ctypes.c_size_t(8),
                                         HOST_ALLOC_MAPPED), "mapped flags")
        self.host = ctypes.cast(self.flags, ctypes.POINTER(ctypes.c_int))
        self.host[0] = self.host[1] = 0
        dev = ctypes.c_void_p()
        cuda.check(cuda.rt.cudaHostGetDevicePointer(ctypes.byref(dev), self.flags, 0),
                   "mapped pointer")
        lib.dtk_gpu_hold_stream.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_longlong]
        rc = lib.dtk_gpu_hold_stream(CUDA_STREAM_LEGACY, dev, dev.value + 4,
                                     int(timeout_s * 1e9))
        if rc != 0:
            raise CudaError("dtk_gpu_hold_stream failed")

    def still_held(self):
        """Whether the holding kernel is still waiting (it has neither been released nor timed
        out)."""
        return self.host[1] == 0

    def release(self):
        self.host[0] = 1
        self.cuda.check(self.cuda.rt.cudaStreamSynchronize(CUDA_STREAM_LEGACY), "legacy stream")
        self.cuda.rt.cudaFreeHost(self.flags)
