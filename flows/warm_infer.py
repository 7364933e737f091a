"""Warm inference: a long-lived Prefect task worker that keeps the model and the catalog loaded.

A deployment run (`prefect deployment run infer/ad-hoc`) gets a new process from the worker,
which imports torch and loads the model, the catalog and its class prompts again on every
run. This worker serves the `infer` task instead: the first request loads them, later ones
reuse them (shoefind's per-process caches), so a request costs the answer only. Requests are
task runs of the Prefect API the worker is connected to, shown in its UI.

    export PREFECT_API_URL=http://127.0.0.1:PORT/api       # e.g. the server scripts/up.sh starts
    .venv/bin/python -m flows.warm_infer serve              # the worker (Ctrl-C stops it)
    .venv/bin/python -m flows.warm_infer ask PHOTO [PHOTO ...] --dataset DIR [--model M]

`ask` submits one request, waits for the answer and prints it with the time it took
(benchmarks/warm_infer.py measures cold against warm).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tasks.retrieve import infer_task


def serve(limit: int = 1) -> None:
    """Run the task worker until stopped; `limit` requests are answered at a time."""
    from prefect.task_worker import serve as serve_tasks
    serve_tasks(infer_task, limit=limit)


def ask(photos: list[str], dataset: str, data_dir: str = "", model: str | None = None, change: str | None = None,
        runtime: str | None = None, timeout: float = 600) -> tuple[dict, float]:
    """(answer, seconds): one request to the worker, waited for."""
    from shoefind.settings import layout
    start = time.perf_counter()
    future = infer_task.delay([str(Path(p).resolve()) for p in photos], str(Path(dataset).resolve()),
                              str(Path(data_dir).resolve()) if data_dir else str(layout().root),
                              model=model, change=change, runtime=runtime)
    future.wait(timeout)
    answer = future.result(timeout=timeout)
    return answer, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the warm worker")
    s.add_argument("--limit", type=int, default=1, help="requests answered at a time")
    a = sub.add_parser("ask", help="send one request and print the answer")
    a.add_argument("photos", nargs="+")
    a.add_argument("--dataset", required=True)
    a.add_argument("--data-dir", default="")
    a.add_argument("--model", default=None)
    a.add_argument("--change", default=None)
    a.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.command == "serve":
        serve(args.limit)
        return 0
    answer, seconds = ask(args.photos, args.dataset, args.data_dir, args.model, args.change)
    if args.json:
        print(json.dumps(answer | {"seconds": round(seconds, 3)}, default=str))
    else:
        for a in answer["answers"]:
            print(f"{a['photo']}: " + (a["error"] or f"{a['shoe']['shoe']} ({a['shoe']['probability']:.0%})"))
        print(f"answered in {seconds:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
