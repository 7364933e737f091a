"""Child servers (Streamlit for `shoefind web`) end with their parent.

The child gets a parent-death signal (Linux prctl PR_SET_PDEATHSIG: SIGTERM when the parent dies,
even by kill -9) and its own process group, which the parent terminates on SIGTERM, SIGINT or exit.
The signal is sent only for a death after the prctl call, so the child then checks that its parent
is still the one that forked it: a parent killed in between leaves a child that ends at once.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys


def die_with(parent: int):
    """The preexec function of a child of `parent`: it runs in the child between fork and exec."""
    def preexec() -> None:
        if sys.platform.startswith("linux"):
            import ctypes
            PR_SET_PDEATHSIG = 1
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
            if os.getppid() != parent:   # the parent died before the prctl: no signal will come
                os._exit(128 + signal.SIGTERM)
        os.setpgrp()
    return preexec


def _stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def run_child(cmd: list[str], env: dict | None = None) -> int:
    """Run cmd until it exits or this process is told to stop; the child never outlives us."""
    proc: subprocess.Popen | None = None

    def on_signal(signum, _frame):
        # no waiting here (the interrupted proc.wait holds its lock): `finally` waits for the child
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:   # the child has not made its group yet: its death signal ends it
                pass
        raise SystemExit(128 + signum if signum != signal.SIGINT else 0)

    # handlers first, so a signal arriving while the child starts still stops it
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        proc = subprocess.Popen(cmd, env=env, preexec_fn=die_with(os.getpid()))
        return proc.wait()
    finally:
        if proc is not None:
            _stop(proc)
        for s, handler in previous.items():
            signal.signal(s, handler)
