"""Child servers (Streamlit under `shoefind web`) end with their parent: on SIGTERM, and on kill -9,
whenever the parent dies (even between fork and the parent-death prctl)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux only")

SLEEPER = "import time; time.sleep(120)"
PARENT = ("import sys\nfrom shoefind.cli.children import run_child\n"
          f"run_child([sys.executable, '-c', {SLEEPER!r}])\n")


def _child_of(pid: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            kids = open(f"/proc/{pid}/task/{pid}/children").read().split()
        except FileNotFoundError:
            kids = []
        if kids:
            return int(kids[0])
        time.sleep(0.01)
    pytest.fail("the child never started")


def _wait_for_exec(pid: int, timeout: float = 30) -> None:
    """Until the child runs the sleeper (it has passed fork, prctl and exec)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if SLEEPER in open(f"/proc/{pid}/cmdline").read():
                return
        except FileNotFoundError:
            pytest.fail(f"child {pid} ended before it ran")
        time.sleep(0.01)
    pytest.fail(f"child {pid} never ran its command")


def _gone(pid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().split(")")[-1].split()[0] == "Z":   # a zombie has ended
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("when", ["running", "starting"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_the_child_ends_with_its_parent(sig, when):
    """'running': the parent dies once the child runs its command; 'starting': as soon as the child
    exists, which may be before its prctl (the case the re-check of the parent covers)."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT], cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    child = _child_of(parent.pid)
    try:
        if when == "running":
            _wait_for_exec(child)
        parent.send_signal(sig)
        parent.wait(30)
        assert _gone(child), f"child {child} outlived its parent after {sig.name}"
    finally:
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass


# A parent that forks and exits at once; its child waits until it is orphaned, then runs the preexec
# function run_child gives its children, as if the parent had died between fork and prctl.
ORPHAN = """
import os, sys, time
from shoefind.cli.children import die_with
r, w = os.pipe()
parent = os.getpid()
if os.fork() == 0:
    os.close(w)
    os.read(r, 1)                      # end of file: the parent has exited
    while os.getppid() == parent:
        time.sleep(0.01)
    die_with(parent)()
    print("the orphan went on to exec", flush=True)
    os._exit(0)
"""


def test_a_child_whose_parent_died_before_the_prctl_ends_at_once():
    # stdout is read to its end: the orphan holds it open until it exits
    done = subprocess.run([sys.executable, "-c", ORPHAN], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    assert "went on" not in done.stdout
