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
(benchmarks/warm_infer.py measures cold against warm). It never waits past its deadline
(`--timeout`, ASK_TIMEOUT by default): then it says whether no worker took the request or the
worker is still answering (a request no worker took is cancelled), and exits 2.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from tasks.retrieve import infer_task


# Seconds `ask` waits for an answer: a warm one takes well under a second; the first request loads
# the model and the catalog (seconds to a minute; longer when new catalog photos must be embedded).
ASK_TIMEOUT = 120.0


class AskTimeout(TimeoutError):
    """No answer before the deadline; str() says why and what to do."""


def serve(limit: int = 1) -> None:
    """Run the task worker until stopped; `limit` requests are answered at a time."""
    from prefect.task_worker import serve as serve_tasks
    logging.getLogger("prefect.task_runs").addFilter(_LocalWithoutRun())
    serve_tasks(infer_task, limit=limit)


class _LocalWithoutRun(logging.Filter):
    """Keeps a task-run log line that comes after its run context closed out of the Prefect API.

    Prefect logs "Finished in state ..." once a background task's run context has closed; its API
    log handler then finds no flow run for the line and warns, once per request. The line still
    shows on the worker's console and the run's state is in the API, so it is not sent. (Setting
    PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW here would not reach the worker's engine thread, whose
    settings context was copied before.)
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "flow_run_id", None):
            from prefect.context import get_run_context
            from prefect.exceptions import MissingContextError
            try:
                get_run_context()
            except MissingContextError:
                record.send_to_api = False
        return True


def ask(photos: list[str], dataset: str, data_dir: str = "", model: str | None = None, change: str | None = None,
        runtime: str | None = None, timeout: float = ASK_TIMEOUT) -> tuple[dict, float]:
    """(answer, seconds): one request to the worker, waited for until `timeout` seconds (AskTimeout then);
    a request the worker failed raises its error (a UserError for bad input)."""
    from shoefind.settings import layout
    start = time.perf_counter()
    future = infer_task.delay([str(Path(p).resolve()) for p in photos], str(Path(dataset).resolve()),
                              str(Path(data_dir).resolve()) if data_dir else str(layout().root),
                              model=model, change=change, runtime=runtime)
    state = wait_for_task_run(future.task_run_id, start + timeout, timeout)
    answer = state.result(raise_on_failure=True)
    return answer, time.perf_counter() - start


def wait_for_task_run(task_run_id, deadline: float, timeout: float):
    """The run's final state, read from the API until `deadline` (a perf_counter time).

    Not PrefectDistributedFuture.wait: it listens for the run's completion event on a websocket it
    connects only then, so an answer that comes while it connects (a warm one takes 0.3 s) is
    missed and it waits out its whole timeout; and it fails outright on a run the API has not given
    a state yet. Reading the run itself cannot miss anything; the pauses grow from 20 ms to 250 ms,
    so a warm answer is seen within a few hundredths of a second.
    """
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    pause, state = 0.02, None
    with get_client(sync_client=True) as client:
        while True:
            try:
                state = client.read_task_run(task_run_id).state
            except ObjectNotFound:      # not stored yet
                state = None
            if state is not None and state.is_final():
                return state
            left = deadline - time.perf_counter()
            if left <= 0:
                if state is None or not state.is_running():
                    _give_up(client, task_run_id)
                raise AskTimeout(_why_no_answer(task_run_id, state, timeout))
            time.sleep(min(pause, left))
            pause = min(pause * 1.5, 0.25)


def _give_up(client, task_run_id) -> None:
    """Cancel a request nobody will wait for, so a worker started later does not answer it."""
    from prefect.states import Cancelled
    try:
        client.set_task_run_state(task_run_id, Cancelled(message="ask gave up waiting"), force=True)
    except Exception:   # the API is gone too: the timeout says enough
        pass


def _why_no_answer(task_run_id, state, timeout: float) -> str:
    name = state.name if state is not None else "not started"
    if state is not None and state.is_running():
        return (f"no answer within {timeout:g} s: the warm worker is still answering (task run {task_run_id} is "
                f"{name}); a first request loads the model and the catalog, so give it a longer --timeout")
    from prefect.settings import PREFECT_API_URL
    return (f"no answer within {timeout:g} s: no warm worker took the request (task run {task_run_id} is {name}, "
            f"now cancelled). Start one with `python -m flows.warm_infer serve` against the same API "
            f"({PREFECT_API_URL.value() or 'PREFECT_API_URL is not set'})")


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
    a.add_argument("--timeout", type=float, default=ASK_TIMEOUT, help="seconds to wait for the answer")
    args = ap.parse_args(argv)
    if args.command == "serve":
        serve(args.limit)
        return 0
    from shoefind.errors import UserError
    try:
        answer, seconds = ask(args.photos, args.dataset, args.data_dir, args.model, args.change,
                              timeout=args.timeout)
    except (AskTimeout, UserError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(answer | {"seconds": round(seconds, 3)}, default=str))
    else:
        for a in answer["answers"]:
            print(f"{a['photo']}: " + (a["error"] or f"{a['shoe']['shoe']} ({a['shoe']['probability']:.0%})"))
        print(f"answered in {seconds:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
