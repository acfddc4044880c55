"""One thread of math per prediction: the server's worker processes are the parallelism.

OpenMP and BLAS thread pools only add overhead to small predictions, and on a busy machine
they stall: the registry's 300-tree HistGradientBoosting answered one query row in 370 ms
(median) with OpenMP's default threads on a loaded 2-core machine, and in 28 ms with one.
The variables are read when the libraries load, so this runs before numpy and scikit-learn
are imported; set them yourself to override.
"""

from __future__ import annotations

import os

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def single_threaded_math() -> None:
    """Default the math libraries' thread pools to one thread (already-set values win)."""
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, "1")


def limit_current_thread() -> None:
    """Also limit the calling thread (for libraries loaded before the variables were set)."""
    from threadpoolctl import threadpool_limits  # noqa: PLC0415 - a scikit-learn dependency

    threadpool_limits(limits=int(os.environ.get("OMP_NUM_THREADS", "1")))
