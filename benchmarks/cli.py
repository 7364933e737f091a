"""Start-up of the CLI as a user meets it (issue 11.2): each figure is the median wall time of a fresh
`shoefind` process, with its CPU time (user + sys) beside it, which load on a shared machine inflates less.

  1. bad input: a missing dataset (`embed /nope`), a missing photo (`infer /nope.jpg`), a bad choice
     (`embed DATASET --runtime nope`): each answered with one line, exit code 2 (target <= 1 s);
  2. a cached `embed ../shared/data/nike-silhouettes` rerun: every photo cached already (target <= 2 s);
  3. `table ../shared/data/nike-silhouettes` again (the table unchanged, so reused; target <= 2 s);
  4. `infer PHOTO --dataset ../shared/data/findyourshoes-labeled`, cold (a new process; the catalog's
     embeddings are cached, as after any earlier command): PHOTO is not in the catalog (a
     nike-silhouettes photo), so the model is loaded and run; also a photo of the catalog itself (target <= 4 s).
The model is the tiny random CLIP (`make_tiny`), or --model. Everything is written under a temporary data
folder (SHOEFIND_DATA), warmed by one untimed run of each command; no Prefect API is used.

    .venv/bin/python benchmarks/cli.py [--runs 5] [--model PATH] [--shared ../shared/data]
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGETS = {"bad input": 1.0, "cached embed rerun": 2.0, "table rerun": 2.0, "infer, cold": 4.0}


def shoefind(args: list[str], env: dict, expect: int = 0) -> tuple[float, float]:
    """(wall s, CPU s) of one `shoefind ARGS` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "shoefind.cli.main", *args], cwd=REPO, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != expect:
        raise SystemExit(f"shoefind {' '.join(args)}: exit {done.returncode}, expected {expect}\n{done.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(name: str, commands: list[tuple[list[str], int]], env: dict, runs: int) -> dict:
    for args, code in commands:           # warm: caches filled, fidelity recorded, OS file cache
        shoefind(args, env, code)
    walls, cpus = [], []
    for _ in range(runs):
        for args, code in commands:
            wall, cpu = shoefind(args, env, code)
            walls.append(wall)
            cpus.append(cpu)
    return {"name": name, "median_s": statistics.median(walls), "max_s": max(walls),
            "cpu_s": statistics.median(cpus), "runs": len(walls)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--model", help="model spec (default: a tiny random CLIP made here)")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    a = ap.parse_args()
    silhouettes, labeled = a.shared / "nike-silhouettes", a.shared / "findyourshoes-labeled"
    if not silhouettes.is_dir() or not labeled.is_dir():
        raise SystemExit(f"needs {silhouettes} and {labeled} (the shared photos)")
    with tempfile.TemporaryDirectory(prefix="shoefind-cli-bench-") as tmp:
        tmp = Path(tmp)
        data = tmp / "data"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API_URL", "SHOEFIND_"))}
        env |= {"SHOEFIND_DATA": str(data), "PYTHONPATH": str(REPO)}
        model = a.model
        if not model:
            sys.path.insert(0, str(REPO))
            from shoefind.encoders.families.tiny import make_tiny
            model = str(make_tiny(tmp / "tiny.pt"))
        outside = sorted(silhouettes.rglob("*.png"))[0]
        inside = sorted(p for p in labeled.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[0]
        common = ["--model", model, "--data-dir", str(data)]
        rows = [
            measure("bad input", [(["embed", "/nope"], 2), (["infer", "/nope.jpg", "--dataset", str(labeled)], 2),
                                  (["embed", str(labeled), "--runtime", "nope"], 2)], env, a.runs),
            measure("cached embed rerun", [(["embed", str(silhouettes), *common], 0)], env, a.runs),
            measure("table rerun", [(["table", str(silhouettes), "--data-dir", str(data)], 0)], env, a.runs),
            measure("infer, cold", [(["infer", str(outside), "--dataset", str(labeled), *common], 0)], env, a.runs),
            measure("infer, cold, a catalog photo", [(["infer", str(inside), "--dataset", str(labeled), *common], 0)],
                    env, a.runs),
        ]
    load = os.getloadavg()[0]
    print(f"shoefind CLI start-up, median of fresh processes ({os.cpu_count()} CPUs, load average {load:.1f}; "
          f"model {a.model or 'tiny random CLIP'})")
    print(f"{'':32s} {'median':>8s} {'max':>8s} {'CPU':>8s} {'target':>8s}")
    for r in rows:
        target = next((t for k, t in TARGETS.items() if r["name"].startswith(k)), None)
        mark = "" if target is None else ("  ok" if r["median_s"] <= target else "  OVER")
        print(f"{r['name']:32s} {r['median_s']:7.2f}s {r['max_s']:7.2f}s {r['cpu_s']:7.2f}s "
              f"{'' if target is None else f'<= {target:.0f} s':>8s}{mark}")


if __name__ == "__main__":
    main()
