"""Child servers (Streamlit under `shoefind web`) end with their parent: on SIGTERM, and on kill -9."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import REPO

PARENT = ("import sys\nfrom shoefind.cli.children import run_child\n"
          "run_child([sys.executable, '-c', 'import time; time.sleep(120)'])\n")


def _child_of(pid: int, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            kids = open(f"/proc/{pid}/task/{pid}/children").read().split()
        except FileNotFoundError:
            kids = []
        if kids:
            return int(kids[0])
        time.sleep(0.1)
    pytest.fail("the child never started")


def _gone(pid: int, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().split(")")[-1].split()[0] == "Z":   # a zombie has ended
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux only")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_the_child_ends_with_its_parent(sig):
    parent = subprocess.Popen([sys.executable, "-c", PARENT], cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    child = _child_of(parent.pid)
    try:
        parent.send_signal(sig)
        parent.wait(15)
        assert _gone(child), f"child {child} outlived its parent after {sig.name}"
    finally:
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
