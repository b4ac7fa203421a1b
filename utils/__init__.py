"""Shared pieces of the distillation suite.

Importing this package must happen before paddle is imported: it sets the CPU thread count, which
paddle reads once at start-up (it defaults to one thread, and two were 1.8x faster on a 2-core box).
"""
import os

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))


def _mkl_on_amd():
    """Paddle's CPU matrix products go through its bundled MKL (mklml, 2019), which takes a slow generic code
    path on AMD processors. That MKL still honours MKL_DEBUG_CPU_TYPE=5 (use the AVX2 kernels): a [768, 384] x
    [384, 1536] product went from 22 to 54 GFLOP/s on one core of this EPYC (PyTorch: 76). Only on AMD CPUs with
    AVX2, and never over a value the user set (MKL_DEBUG_CPU_TYPE= with no value turns it off)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            info = f.read(8192)
    except OSError:
        return
    if "AuthenticAMD" in info and " avx2" in info:
        os.environ.setdefault("MKL_DEBUG_CPU_TYPE", "5")


_mkl_on_amd()


def keep_freed_memory():
    """Ask glibc to serve blocks up to 32 MB (its ceiling) from the heap and to keep up to 1 GB of freed heap
    instead of handing it back to the kernel after every free. Paddle's CPU allocator mallocs and frees each
    tensor, so without this every activation, gradient and temporary of 128 KB or more lands on freshly mapped
    pages that the kernel zero-fills one page fault at a time: an element-wise op on a [512, 1536] float tensor
    took 3 ms instead of 0.15 ms, training ran ~10% slower, and a 4L-312d student's exported latency at batch
    32 x 128 tokens was 11% higher (159 -> 139 ms). Process-wide; a no-op off glibc; DISTILL_KEEP_FREED_MEMORY=0
    turns it off."""
    if os.environ.get("DISTILL_KEEP_FREED_MEMORY", "1") == "0":
        return False
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, 1 << 30))


keep_freed_memory()

# Paddle 3's dygraph makes transpose, slicing and friends return strided views; the next operator that needs a
# contiguous tensor then copies it with a generic element-by-element strided loop. In a BERT step that is the
# attention's head split and merge: the reshape after each transpose (and its gradient) cost ~1.7 ms a call, and
# a distillation step spent ~40 ms there. With the flag off, transpose runs its own (vectorised) kernel once:
# student forward 159 -> 112 ms, backward 219 -> 153 ms (2 threads, batch 32 of ~15 tokens). Values are the
# same either way (layout only). Set FLAGS_use_stride_kernel=1 to get the views back. (Also set on paddle below:
# the environment is read only when paddle is first imported, which may have happened before this package.)
os.environ.setdefault("FLAGS_use_stride_kernel", "0")

# A normal run prints progress bars, results and errors. These come from dependencies, about things we do on
# purpose, and are silenced narrowly (by message) so that anything else still shows:
import warnings  # noqa: E402

for _message in ("Setuptools is replacing distutils",  # setuptools' import hook, when paddle imports distutils
                 "The input state dict is empty",  # paddle.save of a state with no entries (nothing to warn about)
                 "Tensor do not have 'place' interface"):  # paddle's static tracing of a .place read (export)
    warnings.filterwarnings("ignore", message=_message)
# Paddle's C++ logging: warnings such as "static graph(PIR) not support input out tensor" during export; errors
# still print. Set GLOG_minloglevel=0 to see everything.
os.environ.setdefault("GLOG_minloglevel", "2")
# paddle 2.6 wheels break scipy's zlib when paddle is imported first; importing scipy first is cheap.
import scipy.stats  # noqa: E402,F401

# Paddle prints a two-line warning at import whenever OMP_NUM_THREADS > 1 (meant for data-parallel users of
# OpenBLAS builds; the wheels here use MKL/oneDNN). Setting the thread count is deliberate, so keep it quiet.
import contextlib  # noqa: E402
import io  # noqa: E402

with contextlib.redirect_stderr(io.StringIO()):
    import paddle  # noqa: E402,F401
try:
    paddle.set_flags({"FLAGS_use_stride_kernel": os.environ["FLAGS_use_stride_kernel"].lower() in ("1", "true")})
except ValueError:  # a Paddle build without strided views: nothing to turn off
    pass
