"""Thread settings made once per process.

numpy's BLAS (OpenBLAS) splits a product over every core. The products shoefind does in numpy are
small (a query against a catalog, a learner's photos x features x classes), and split ones only wait
for each other; on a 2-core machine whose cores are busy the wait is a time slice. Measured on a
loaded 2-core EPYC: the SVD of 112 x 1280 training photos took 1.3-2.1 s on 2 threads against 50 ms
on 1, and a 5,000 x 512 query product 40 ms against 0.2 ms. torch (the encoders) keeps its own
threads (--threads).
"""
from __future__ import annotations

_BLAS_LIMITED = False


def single_threaded_blas() -> None:
    """Run numpy's BLAS on one thread in this process, from now on (the first call sets it)."""
    global _BLAS_LIMITED
    if not _BLAS_LIMITED:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1, user_api="blas")
        _BLAS_LIMITED = True
