"""Where a command's work runs: in this process (the default), or as a Prefect flow run when a Prefect
API is configured (PREFECT_API_URL, as scripts/up.sh sets it, or --prefect), so it shows in the UI.

Both paths call the same library stage functions (the flows' tasks wrap them). The CLI never starts
a temporary Prefect server: without an API it does not touch Prefect at all.
"""
from __future__ import annotations

import contextlib
import importlib
import os
from shoefind.errors import UserError

# stage -> (library function run in-process, flow module:function run on a Prefect API)
STAGES = {
    "embed": ("shoefind.features.stage:embed_dataset", "flows.features:embed_flow"),
    "evaluate": ("shoefind.evaluate.stage:evaluate_dataset", "flows.evaluate:evaluate_flow"),
    "evaluate-change": ("shoefind.evaluate.stage:evaluate_dataset", "flows.evaluate:evaluate_change_flow"),
    "learn": ("shoefind.learn.stage:learn_dataset", "flows.learn:learn_flow"),
    "infer": ("shoefind.retrieve.stage:infer_photos", "flows.retrieve:infer_flow"),
    "demo": ("shoefind.demo.stage:run_demo", "flows.demo:demo_flow"),
}


def quiet_prefect() -> None:
    """Prefect without telemetry, analytics or prompts (set before prefect is imported)."""
    for key, value in (("PREFECT_SERVER_ANALYTICS_ENABLED", "false"), ("DO_NOT_TRACK", "1"),
                       ("PREFECT_CLI_PROMPT", "false")):
        os.environ.setdefault(key, value)


def prefect_api(asked: bool) -> str | None:
    """The Prefect API a command should run on: PREFECT_API_URL when set; with --prefect, the one the
    Prefect profile names. None means run in this process. --prefect without an API is refused,
    rather than starting a throwaway server."""
    url = os.environ.get("PREFECT_API_URL")
    if url or not asked:
        return url or None
    quiet_prefect()
    from prefect.settings import PREFECT_API_URL
    url = PREFECT_API_URL.value()
    if not url:
        raise UserError("--prefect needs a Prefect API: start one with `bash scripts/up.sh` (or `prefect server "
                        "start`) and set PREFECT_API_URL=http://127.0.0.1:4200/api")
    return url


def _function(target: str):
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def run_stage(stage: str, prefect: bool = False, **params):
    """Run one pipeline stage with these parameters; returns the flow's / function's result
    (a run folder for evaluate and learn)."""
    direct, flow = STAGES[stage]
    api = prefect_api(prefect)
    if api:
        return run_flow(flow, api, **params)
    if stage == "evaluate-change":
        params["task"] = "change"
    from shoefind.cli.common import err
    with stage_progress() as progress:
        result = _function(direct)(**params, progress=progress,
                                   log=lambda message: err.print(message, style="dim", highlight=False, markup=False))
    return getattr(result, "run_dir", result)


@contextlib.contextmanager
def stage_progress():
    """A progress(description, total) -> advance(n) factory: one rich bar per step, on stderr."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from shoefind.cli.common import err
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=err, transient=False)

    def progress(description: str, total: int):
        task = bar.add_task(description, total=total, visible=total > 0)
        return lambda n=1: bar.advance(task, n)
    with bar:
        yield progress


def run_flow(target: str, api: str, **params):
    """The flow as a flow run on `api`; a failed run is one line (its state's message)."""
    quiet_prefect()
    from shoefind.cli.common import err
    try:
        flow = _function(target)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "flows":
            raise UserError(f"the Prefect flows live in the shoefind checkout (flows/); run from there, or "
                            f"unset PREFECT_API_URL to run in this process ({exc})") from None
        raise
    err.print(f"running the {flow.name} flow on the Prefect API at {api}", style="dim", highlight=False)
    given = {k: v for k, v in params.items() if v is not None}
    if unknown := sorted(set(given) - set(flow.parameters.properties)):
        raise UserError(f"the {flow.name} flow does not take {', '.join(unknown)}: leave them out with a Prefect API")
    state = flow(**given, return_state=True)
    if not state.is_completed():
        raise UserError(state.message or f"the {flow.name} flow run ended {state.name}")
    return state.result()

