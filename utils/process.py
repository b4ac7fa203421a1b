"""Process settings, made once by each script as its first statement, before any other `utils` import (several
`utils` modules import paddle at module level, and paddle reads some of these settings only when it loads):

    from utils.process import configure
    configure()

This module never imports paddle itself, so `--help` stays fast. Each setting changes speed or console noise,
not what is computed (MKL's AVX2 kernels round differently in the last bits); a variable the user has set wins.
"""
import contextlib
import io
import os
import sys
import warnings

# Messages from dependencies about things we do on purpose; silenced narrowly (by message) so anything else shows.
QUIET_WARNINGS = ("Setuptools is replacing distutils",  # setuptools' import hook, when paddle imports distutils
                  "The input state dict is empty",  # paddle.save of a state with no entries (nothing to warn about)
                  "Tensor do not have 'place' interface")  # paddle's static tracing of a .place read (export)


def configure():
    """Every setting below, in the order paddle needs them; calling it again changes nothing."""
    # paddle reads the thread count once at start-up (it defaults to one thread; two were 1.8x faster on 2 cores)
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    mkl_on_amd()
    keep_freed_memory()
    strided_views_off()
    for message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    # Paddle's C++ logging: warnings such as "static graph(PIR) not support input out tensor" during export;
    # errors still print. Set GLOG_minloglevel=0 to see everything.
    os.environ.setdefault("GLOG_minloglevel", "2")
    quiet_paddle_import()


def mkl_on_amd():
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


def keep_freed_memory():
    """Ask glibc to serve blocks up to 32 MB (its ceiling) from the heap and to keep up to 1 GB of freed heap
    instead of handing it back to the kernel after every free. Paddle's CPU allocator mallocs and frees each
    tensor, so without this every activation, gradient and temporary of 128 KB or more lands on freshly mapped
    pages that the kernel zero-fills one page fault at a time: an element-wise op on a [512, 1536] float tensor
    took 3 ms instead of 0.15 ms, training ran ~10% slower, and a 4L-312d student's exported latency at batch
    32 x 128 tokens was 11% higher (159 -> 139 ms). Blocks above 32 MB are kept on the heap too (no mmap at all;
    glibc still falls back to it when the heap cannot grow): the word embeddings' dense gradient (38-47 MB, a new
    one every step) was otherwise mapped and page-faulted afresh each step (a zeroed [30522, 312] table took 19 ms
    instead of 2). Process-wide; a no-op off glibc; DISTILL_KEEP_FREED_MEMORY=0 turns it off."""
    if os.environ.get("DISTILL_KEEP_FREED_MEMORY", "1") == "0":
        return False
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold, m_mmap_max = -1, -3, -4
    return (bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, 1 << 30))
            and bool(mallopt(m_mmap_max, 0)))


def strided_views_off():
    """Paddle 3's dygraph makes transpose, slicing and friends return strided views; the next operator that needs
    a contiguous tensor then copies it with a generic element-by-element strided loop. In a BERT step that is the
    attention's head split and merge: the reshape after each transpose (and its gradient) cost ~1.7 ms a call, and
    a distillation step spent ~40 ms there. With the flag off, transpose runs its own (vectorised) kernel once:
    student forward 159 -> 112 ms, backward 219 -> 153 ms (2 threads, batch 32 of ~15 tokens). Values are the
    same either way (layout only). Set FLAGS_use_stride_kernel=1 to get the views back."""
    os.environ.setdefault("FLAGS_use_stride_kernel", "0")
    paddle = sys.modules.get("paddle")
    if paddle is None:
        return  # paddle reads the environment when it loads
    try:  # paddle was imported before this call: its flag no longer follows the environment
        paddle.set_flags({"FLAGS_use_stride_kernel": os.environ["FLAGS_use_stride_kernel"].lower() in ("1", "true")})
    except ValueError:  # a Paddle build without strided views: nothing to turn off
        pass


class _QuietPaddleImport:
    """A one-shot import hook for paddle's first import, wherever it happens. Paddle prints a two-line warning
    whenever OMP_NUM_THREADS > 1 (meant for data-parallel users of OpenBLAS builds; the wheels here use
    MKL/oneDNN) and a "No ccache found" one; setting the thread count is deliberate, so its import runs with
    stderr silenced. scipy goes first: paddle 2.6 wheels break scipy's zlib when paddle is imported first."""

    def find_spec(self, name, path=None, target=None):
        if name != "paddle":
            return None
        sys.meta_path.remove(self)  # once, and so that the lookup below finds the real spec
        import importlib.util

        import scipy.stats  # noqa: F401
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module):
            with contextlib.redirect_stderr(io.StringIO()):
                load(module)
        spec.loader.exec_module = exec_module
        return spec


def quiet_paddle_import():
    if "paddle" not in sys.modules and not any(isinstance(f, _QuietPaddleImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietPaddleImport())
