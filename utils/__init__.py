"""Shared pieces of the distillation suite.

Importing this package must happen before paddle is imported: it sets the CPU thread count, which
paddle reads once at start-up (it defaults to one thread, and two were 1.8x faster on a 2-core box).
"""
import os

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
# paddle 2.6 wheels break scipy's zlib when paddle is imported first; importing scipy first is cheap.
import scipy.stats  # noqa: E402,F401

# Paddle prints a two-line warning at import whenever OMP_NUM_THREADS > 1 (meant for data-parallel users of
# OpenBLAS builds; the wheels here use MKL/oneDNN). Setting the thread count is deliberate, so keep it quiet.
import contextlib  # noqa: E402
import io  # noqa: E402

with contextlib.redirect_stderr(io.StringIO()):
    import paddle  # noqa: E402,F401
