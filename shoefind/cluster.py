"""Where encoding runs: this process (default) or a Dask cluster, named by one string.

`local:N` starts N worker processes on this machine (loopback only) for the length of the run,
`local` one per core, and an address (`tcp://scheduler:8786`, `host:8786`) uses a running scheduler.
Parsing and the reachability check live here so every surface refuses a bad value the same way.
"""
from __future__ import annotations

import os
import re
import socket

from shoefind.errors import UserError

LOCAL = "local"
_ADDRESS = re.compile(r"^(?:(?P<scheme>[a-z][a-z0-9+.-]*)://)?(?P<host>\[[0-9a-fA-F:]+\]|[^:/\s]+):(?P<port>[^/\s]*)/?$")


# Threads (or local workers) per core beyond which more only thrash: `--threads 100000` once grew to
# 8.6 GB in 9 minutes without encoding a photo.
PER_CORE = 4


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def max_threads() -> int:
    """The most threads (or local workers) this machine is given: a few per core."""
    return PER_CORE * cpu_count()


def check_threads(threads: int | None, what: str = "--threads") -> int | None:
    """threads itself (None: all cores), or UserError when it is not 1 .. max_threads()."""
    if threads is not None and not 1 <= threads <= max_threads():
        raise UserError(f"{what} {threads}: this machine has {cpu_count()} cores; give 1 to {max_threads()} "
                        f"({PER_CORE} per core at most)")
    return threads


def local_workers(cluster: str) -> int | None:
    """N for `local:N` (cores for plain `local`), None for a scheduler address."""
    if cluster == LOCAL:
        return cpu_count()
    if not cluster.startswith(LOCAL + ":"):
        return None
    n = cluster.split(":", 1)[1]
    if not n.isdigit() or int(n) < 1:
        raise UserError(f"cluster '{cluster}': expected local:N with N >= 1 workers")
    return check_threads(int(n), what=f"cluster '{cluster}': local workers")


def scheduler_address(cluster: str) -> tuple[str, int]:
    """(host, port) of a scheduler address, or UserError saying what one looks like."""
    m = _ADDRESS.match(cluster)
    port = m.group("port") if m else ""
    if not m or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UserError(f"cluster '{cluster}': expected local:N or a scheduler address like tcp://host:8786 "
                        "(a port from 1 to 65535)")
    return m.group("host").strip("[]"), int(port)


def check_cluster(cluster: str) -> str:
    """cluster itself, or UserError saying what a cluster looks like."""
    if local_workers(cluster) is None:
        scheduler_address(cluster)
    return cluster


def check_reachable(cluster: str, timeout: float = 3.0) -> None:
    """For a scheduler address: UserError within `timeout` when nothing answers there."""
    if local_workers(check_cluster(cluster)) is not None:
        return
    host, port = scheduler_address(cluster)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise UserError(f"cluster '{cluster}': no Dask scheduler answers at {host}:{port} "
                        f"({exc.strerror or type(exc).__name__}); start one or use --cluster local:N") from None


def worker_threads(cluster: str, threads: int | None) -> int | None:
    """Compute threads per worker: as asked, else this machine's cores shared among local workers.

    Dask sets OMP_NUM_THREADS=1 in its workers; for a remote cluster pass --threads to use more.
    """
    if threads:
        return threads
    n = local_workers(cluster)
    return max(1, cpu_count() // n) if n else None
