"""Cold against warm inference: a fresh process per request against the warm worker (flows/warm_infer.py).

Starts a temporary Prefect server (its own PREFECT_HOME, a free port) and the warm worker,
then sends requests: the first one finds the worker cold (it loads the model, the catalog and
its class prompts), the others find it warm. For comparison, the same photo is answered by
`shoefind infer` in a new process each time (what any per-run process pays: imports and
loading, without Prefect's own start-up). Prints seconds per request.
    .venv/bin/python benchmarks/warm_infer.py --dataset ../shared/data/findyourshoes-labeled [--model M] [--requests 10]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the Prefect server exited ({proc.returncode})")
        try:
            urllib.request.urlopen(url + "/health", timeout=2)
            return
        except OSError:
            time.sleep(1)
    raise SystemExit("the Prefect server did not answer in time")


def photos_of(dataset: Path, n: int) -> list[str]:
    found = sorted(p for p in dataset.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
    return [str(found[i % len(found)]) for i in range(n)]


def summary(seconds: list[float]) -> str:
    s = np.array(seconds)
    return f"median {np.median(s):.2f} s, p95 {np.percentile(s, 95):.2f} s (n={len(s)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--model", default=None)
    ap.add_argument("--requests", type=int, default=10)
    ap.add_argument("--cold-runs", type=int, default=3, help="`shoefind infer` processes to time")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "warm_infer.json"))
    args = ap.parse_args()
    dataset = Path(args.dataset).resolve()
    photos = photos_of(dataset, args.requests + args.cold_runs)
    home = Path(tempfile.mkdtemp(prefix="shoefind-warm-"))
    port = free_port()
    env = dict(os.environ, PREFECT_HOME=str(home / "prefect"), PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
               PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_UI_ENABLED="false", DO_NOT_TRACK="1",
               SHOEFIND_DATA=str(home / "data"), PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    if args.model:
        env["SHOEFIND_MODEL"] = args.model
    os.environ.update(env)   # this process is the client
    procs = []
    try:
        server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                   "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                                  stderr=open(home / "server.log", "w"))
        procs.append(server)
        wait_healthy(env["PREFECT_API_URL"], server)
        worker = subprocess.Popen([sys.executable, "-m", "flows.warm_infer", "serve"], cwd=REPO, env=env,
                                  stdout=open(home / "worker.log", "w"), stderr=subprocess.STDOUT)
        procs.append(worker)
        sys.path.insert(0, str(REPO))
        from flows.warm_infer import ask
        served = []
        for photo in photos[:args.requests]:
            answer, seconds = ask([photo], str(dataset), str(home / "data"), args.model)
            assert not answer["answers"][0]["error"], answer["answers"][0]["error"]
            served.append(seconds)
        cold = []
        for photo in photos[args.requests:]:
            cmd = [sys.executable, "-m", "shoefind.cli.main", "infer", photo, "--dataset", str(dataset), "--json"]
            if args.model:
                cmd += ["--model", args.model]
            start = time.perf_counter()
            subprocess.run(cmd, env={k: v for k, v in env.items() if k != "PREFECT_API_URL"}, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            cold.append(time.perf_counter() - start)
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
    result = {"model": args.model or "default", "dataset": str(dataset),
              "worker_first_request_s": round(served[0], 2), "worker_warm_s": [round(s, 3) for s in served[1:]],
              "new_process_per_request_s": [round(s, 2) for s in cold]}
    print(f"warm worker, first request (cold: loads model + catalog): {served[0]:.2f} s")
    print(f"warm worker, later requests: {summary(served[1:])}")
    print(f"`shoefind infer` in a new process per request: {summary(cold)}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
