"""The shoefind CLI from a test: in this process (fast: the parsing and error paths of `main`) or in a
fresh one (what a user sees from a new process: import-time output, heavy imports)."""
from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO


def shoefind(*args, env=None, timeout: float = 300):
    """`shoefind ARGS` in a new process, as a user runs it: (exit code, stdout, stderr)."""
    done = subprocess.run([sys.executable, "-m", "shoefind.cli.main", *map(str, args)], cwd=REPO, text=True,
                          capture_output=True, timeout=timeout, env=env)
    return done.returncode, done.stdout, done.stderr


def shoefind_here(capfd, *args):
    """`shoefind ARGS` through the console script's `main` in this process: (exit code, stdout, stderr).
    capfd: pytest's file-descriptor capture, so output of consoles made at import time is caught too."""
    from shoefind.cli.main import main
    capfd.readouterr()
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capfd.readouterr()
    return code, out, err
