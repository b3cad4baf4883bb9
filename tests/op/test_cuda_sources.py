"""The CUDA sources run only on the stream they are given and take temporaries only from the
caller's allocator (op/kernels/include/gpu_context.h): every kernel launch names a stream, every
memset, copy and CUB call is the stream-ordered form with a stream, and nothing allocates, frees
or synchronises the device. A source check, so it runs without a GPU."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OP = ROOT / "op"

# Device-wide synchronisation, allocations outside the caller's allocator, libraries that
# allocate behind the caller's back, and the implicit streams.
FORBIDDEN = re.compile(
    r"\b(cudaMalloc\w*|cudaFree\w*|cudaDeviceSynchronize|cudaThreadSynchronize|cudaHostAlloc|"
    r"cudaMemcpy|cudaMemset|cudaMemcpy2D|cudaMemset2D|cudaMemcpyToSymbol|cudaMemcpyFromSymbol|"
    r"cudaStreamLegacy|cudaStreamPerThread|thrust::\w+)\b")
# The stream-ordered forms and the position of their stream argument (number of arguments).
STREAM_CALLS = {"cudaMemcpyAsync": 5, "cudaMemsetAsync": 4, "cudaEventRecord": 2,
                "cudaStreamSynchronize": 1}
DEFAULT_STREAM = {"0", "nullptr", "NULL", "0x0", "(cudaStream_t)0"}


def cuda_sources():
    """Every CUDA source and header of the op library, and the TF kernels that call it."""
    files = [p for ext in ("*.cu", "*.cuh") for p in OP.rglob(ext)]
    return sorted(files + sorted((OP / "tf").glob("*.cc")) + sorted((OP / "tf").glob("*.h")))


def strip_comments(text):
    """Source text without comments and string literals (line structure kept)."""
    def blank(m):
        return re.sub(r"[^\n]", " ", m.group(0))
    return re.sub(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\])*"', blank, text, flags=re.S)


def split_args(text):
    """Top-level comma-separated arguments of an argument list."""
    args, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            args.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        args.append(cur.strip())
    return args


def call_args(code, start):
    """The arguments of the call whose '(' is at code[start]."""
    depth = 0
    for k in range(start, len(code)):
        depth += code[k] == "("
        depth -= code[k] == ")"
        if depth == 0:
            return split_args(code[start + 1:k])
    raise ValueError("unbalanced parentheses")


def violations(text):
    """(line, message) for every launch, copy, memset or call that breaks the convention."""
    code = strip_comments(text)
    found = []

    def line(pos):
        return code.count("\n", 0, pos) + 1

    for m in FORBIDDEN.finditer(code):
        found.append((line(m.start()), f"{m.group(1)} is not allowed"))
    for m in re.finditer(r"<<<(.*?)>>>", code, flags=re.S):
        cfg = split_args(m.group(1))
        if len(cfg) < 4:
            found.append((line(m.start()), "kernel launch without a stream argument"))
        elif cfg[3] in DEFAULT_STREAM:
            found.append((line(m.start()), "kernel launch on the default stream"))
    for name, nargs in STREAM_CALLS.items():
        for m in re.finditer(r"\b%s\s*\(" % name, code):
            args = call_args(code, m.end() - 1)
            if len(args) != nargs or args[-1] in DEFAULT_STREAM:
                found.append((line(m.start()), f"{name} without a stream argument"))
    for m in re.finditer(r"\bcub::Device\w+::\w+\s*\(", code):
        args = call_args(code, m.end() - 1)
        if not args or "stream" not in args[-1]:
            found.append((line(m.start()), "CUB call without a stream argument"))
    return found


def test_cuda_sources_launch_copy_and_allocate_only_through_the_callers_stream_and_allocator():
    assert cuda_sources(), "no CUDA sources found"
    bad = {f"{p.relative_to(ROOT)}:{n}": msg for p in cuda_sources()
           for n, msg in violations(p.read_text())}
    assert bad == {}


def test_the_source_check_finds_default_stream_work():
    bad = """
    kernel<<<grid, block>>>(x);              // no stream
    other<<<grid, block, 0, 0>>>(x);
    cudaMemsetAsync(p, 0, n);
    cudaMemcpy(h, d, n, cudaMemcpyDeviceToHost);
    cudaMalloc(&p, n); cudaFree(p); cudaDeviceSynchronize();
    cub::DeviceScan::ExclusiveSum(t, b, in, n);
    """
    good = """
    kernel<<<grid_for(n, 2), kBlock, 0, ctx.stream>>>(x);
    cudaMemsetAsync(p, 0, n * sizeof(T), ctx.stream);
    cub::DeviceScan::ExclusiveSum(t, b, in, n, stream);  // cudaMalloc in a comment is fine
    """
    messages = [msg for _, msg in violations(bad)]
    assert sum("without a stream" in m for m in messages) == 3
    assert "kernel launch on the default stream" in messages
    for name in ("cudaMemcpy", "cudaMalloc", "cudaFree", "cudaDeviceSynchronize"):
        assert f"{name} is not allowed" in messages
    assert violations(good) == []
