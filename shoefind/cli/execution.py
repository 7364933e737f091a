"""Where a command's work runs: in this process (the default), or as a Prefect flow run when a Prefect
API is configured (PREFECT_API_URL, as scripts/up.sh sets it, or --prefect), so it shows in the UI.

Both paths call the same library stage functions (the flows' tasks wrap them). The CLI never starts
a temporary Prefect server: without an API it does not touch Prefect at all. The flows live in the
checkout (flows/), not in the installed package: where they cannot be imported (shoefind installed
from a wheel), the command triggers the flow's deployment by name instead (`run_deployment`),
which a worker of that API runs, as `scripts/up.sh` sets them up.
"""
from __future__ import annotations

import contextlib
import importlib
import os
from shoefind.errors import UserError

# stage -> (library function run in-process, flow module:function run on a Prefect API)
STAGES = {
    "embed": ("shoefind.stages.features:embed", "flows.features:embed_flow"),
    "evaluate": ("shoefind.stages.evaluate:evaluate", "flows.evaluate:evaluate_flow"),
    "learn": ("shoefind.stages.learn:learn", "flows.learn:learn_flow"),
    "infer": ("shoefind.stages.infer:infer", "flows.retrieve:infer_flow"),
    "demo": ("shoefind.stages.demo:demo", "flows.demo:demo_flow"),
}


# flow -> the deployment of prefect.yaml that runs it (flow name/deployment name; a test keeps them in step)
DEPLOYMENTS = {
    "flows.features:embed_flow": "embed/working-dataset-embeddings",
    "flows.evaluate:evaluate_flow": "evaluate/working-dataset",
    "flows.evaluate:evaluate_change_flow": "evaluate-change/working-dataset-change-retrieval",
    "flows.learn:learn_flow": "learn/working-dataset-classifiers",
    "flows.retrieve:infer_flow": "infer/ad-hoc",
    "flows.demo:demo_flow": "demo/offline",
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
    from shoefind.settings import current
    url = current().prefect_api_url
    if url or not asked:
        return check_api(url, "PREFECT_API_URL") if url else None
    quiet_prefect()
    from prefect.settings import PREFECT_API_URL
    url = PREFECT_API_URL.value()
    if not url:
        raise UserError("--prefect needs a Prefect API: start one with `bash scripts/up.sh` (or `prefect server "
                        "start`) and set PREFECT_API_URL=http://127.0.0.1:4200/api")
    return check_api(url, "the Prefect profile's PREFECT_API_URL")


HEALTH_TIMEOUT_S = 5.0


def check_api(url: str, named_by: str) -> str:
    """url, once its health endpoint answers; else one UserError naming it (Prefect's own client would end
    in connection tracebacks after retrying)."""
    import httpx
    try:
        reply = httpx.get(url.rstrip("/") + "/health", timeout=HEALTH_TIMEOUT_S)
        reply.raise_for_status()
    except (httpx.HTTPError, OSError) as exc:
        raise UserError(unreachable(url, named_by, exc)) from None
    return url


def unreachable(url: str, named_by: str, exc: BaseException) -> str:
    reason = type(exc).__name__ + (f": {exc}" if str(exc) else "")
    return (f"cannot reach the Prefect API at {url} ({named_by}; {reason}): start it (`bash scripts/up.sh`) "
            "or unset PREFECT_API_URL to run in this process")


def _function(target: str):
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def run_stage(stage: str, prefect: bool = False, request=None, **params):
    """Run one pipeline stage with its declared request (or, for a stage not declared yet, these
    parameters); returns the flow's / function's result (a run folder for evaluate and learn)."""
    direct, flow = STAGES[stage]
    api = prefect_api(prefect)
    if request is not None:
        if api:
            return run_flow(flow, api, **request.given())
        from shoefind.cli.common import err
        with stage_progress() as progress:
            result = _function(direct)(request, progress=progress, log=lambda message: err.print(
                message, style="dim", highlight=False, markup=False))
        return getattr(result, "run_dir", result)
    if api:
        return run_flow(flow, api, **params)
    from shoefind.cli.common import err
    with stage_progress() as progress:
        result = _function(direct)(**params, progress=progress,
                                   log=lambda message: err.print(message, style="dim", highlight=False, markup=False))
    return getattr(result, "run_dir", result)


@contextlib.contextmanager
def stage_progress():
    """A progress(description, total) -> advance(n) factory: one rich bar per step, on stderr, with the
    time it has taken. total None: a step of unknown length (a pulsing bar, done at its first advance),
    so no step of a long run is silent (shoefind.stages.phases)."""
    from rich.progress import MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

    from shoefind.cli.common import bar_column, description_column, err
    bar = Progress(description_column(), bar_column(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TimeRemainingColumn(), console=err, transient=False)

    def progress(description: str, total: int | None):
        task = bar.add_task(description, total=total, visible=total is None or total > 0)
        if total is None:
            return lambda n=1: bar.update(task, total=1, completed=1)
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
        if exc.name and exc.name.split(".")[0] == "flows" and target in DEPLOYMENTS:
            return run_deployment_named(DEPLOYMENTS[target], api, **params)
        raise
    err.print(f"running the {flow.name} flow on the Prefect API at {api}", style="dim", highlight=False)
    given = {k: v for k, v in params.items() if v is not None}
    if unknown := sorted(set(given) - set(flow.parameters.properties)):
        raise UserError(f"the {flow.name} flow does not take {', '.join(unknown)}: leave them out with a Prefect API")
    import httpx
    try:
        state = flow(**given, return_state=True)
    except (httpx.HTTPError, OSError) as exc:   # the API went away during the run
        raise UserError(unreachable(api, "PREFECT_API_URL", exc)) from None
    except RuntimeError as exc:                 # what Prefect's client raises when it cannot reach the API
        if "Failed to reach API" not in str(exc):
            raise
        raise UserError(unreachable(api, "PREFECT_API_URL", ConnectionError(str(exc).splitlines()[0]))) from None
    if not state.is_completed():
        raise UserError(state.message or f"the {flow.name} flow run ended {state.name}")
    return state.result()



def run_deployment_named(name: str, api: str, **params):
    """Trigger the deployment `name` (flow/deployment) on `api` and wait for its run; its result when
    the API stored one, else the command ends after saying where the run is. Problems are one line."""
    quiet_prefect()
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    from shoefind.cli.common import err
    given = {k: v for k, v in params.items() if v is not None}
    try:
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name(name)
    except ObjectNotFound:
        raise UserError(f"the Prefect flows are not installed with this shoefind (they live in its checkout, flows/), "
                        f"and the API at {api} has no deployment {name} to run instead: register the deployments "
                        "from a checkout (`bash scripts/up.sh`), run from a checkout, or unset PREFECT_API_URL "
                        "to run in this process") from None
    except (httpx.HTTPError, OSError) as exc:
        raise UserError(f"cannot reach the Prefect API at {api} ({type(exc).__name__}): start it "
                        "(`bash scripts/up.sh`) or unset PREFECT_API_URL to run in this process") from None
    known = set((deployment.parameter_openapi_schema or {}).get("properties", {}))
    if unknown := sorted(set(given) - known):
        raise UserError(f"the deployment {name} does not take {', '.join(unknown)}: leave them out with a Prefect API")
    err.print(f"the flows are not installed here: running the deployment {name} on the Prefect API at {api} "
              "(a worker of that API runs it)", style="dim", highlight=False)
    run = run_deployment(name, parameters=given, timeout=None)
    state = run.state
    if state is None or not state.is_completed():
        raise UserError((state.message if state else None) or f"the {name} flow run ended "
                        f"{state.name if state else 'without a state'}")
    found = run_result(run.id)
    if found is not None:
        return found
    import typer
    err.print(f"flow run {run.name} of {name} completed; it published no result (flow run {run.id})", highlight=False)
    raise typer.Exit(0)


def run_result(flow_run_id):
    """A finished flow run's return value, from the JSON artifact the flows publish (flows/common.py), or
    None when there is none: the worker that ran it keeps the result itself."""
    import json

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterId

    from shoefind.stages.request import RESULT_ARTIFACT
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[RESULT_ARTIFACT])),
                                      flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    for artifact in found:
        text = str(artifact.data or "").strip()
        if text.startswith("```json") and text.endswith("```"):
            return json.loads(text[len("```json"):-3])
    return None
