"""Plumbing every flow shares, written once: where the data is (the DataLayout), typed parameters that
explain themselves in the Prefect UI, and ending a run that cannot go on with one clear message in its
state (no engine traceback)."""
from __future__ import annotations

import functools
import inspect
import typing
from typing import Annotated, Literal

from prefect import get_run_logger
from prefect.states import Failed
from pydantic import Field

from shoefind.errors import UserError
from shoefind.settings import layout, using_data_dir

# --- parameters as the run form shows them (empty text means "the default") ----------------------
Dataset = Annotated[str, Field(
    title="dataset", description="Labeled photo folder, one subfolder per shoe (Brand_Top_Color_Sole_Name). "
                                 "Empty: the working dataset, DATA_DIR/images.")]
DataDir = Annotated[str, Field(
    title="data folder", description="Working data folder (tables, embeddings, runs). "
                                     "Empty: $SHOEFIND_DATA, else data/ of the checkout.")]
Model = Annotated[str, Field(
    title="model", description="CLIP name (ViT-B/32), a checkpoint path, or efficientnet-lite0 (image only, "
                               "offline). Empty: $SHOEFIND_MODEL, else ViT-B/32.")]
Catalog = Annotated[str, Field(
    title="catalog CSV", description="Optional catalog CSV (name,brand,color,hightop,sole) when the folder "
                                     "names do not carry the labels. Empty: none.")]
BatchSize = Annotated[int, Field(ge=1, title="batch size", description="Images per forward pass.")]
Threads = Annotated[int, Field(ge=0, title="threads", description="CPU threads for the model; 0: all cores.")]
Cluster = Annotated[str, Field(
    title="Dask cluster", description="Empty: encode in the flow's process. local:N: N worker processes on "
                                      "this machine. tcp://host:8786: a running Dask scheduler.")]
Runtime = Annotated[Literal["auto", "torch", "bf16", "onnx", "onnx-int8"], Field(
    title="runtime", description="How the model runs. auto: $SHOEFIND_RUNTIME, else the fastest path that "
                                 "keeps fidelity on this machine.")]
Device = Annotated[Literal["auto", "cpu", "cuda"], Field(
    title="device", description="Where the model runs. auto: a GPU when present.")]
Inbox = Annotated[str, Field(
    title="inbox", description="Folder of crawled images waiting for the filter (one subfolder per shoe). "
                               "Empty: DATA_DIR/inbox.")]
ShoeList = Annotated[str, Field(
    title="shoe list (YAML)", description="YAML list of shoes to crawl (name, brand, color, hightop, sole, "
                                          "queries), e.g. rules/crawl_shoes.yaml. Give this or a catalog CSV.")]
CrawlCatalog = Annotated[str, Field(
    title="catalog CSV", description="Catalog CSV of shoes to crawl (name,brand,color,hightop,sole, optional "
                                     "queries). Give this or a shoe list.")]
PerQuery = Annotated[int, Field(ge=1, title="images per query", description="Images to collect per search query.")]
Engine = Annotated[str, Field(title="search engine", description="A search engine of rules/search_engines.yaml.")]
FilterModel = Annotated[str, Field(
    title="model", description="Model of the semantic check (is it a shoe photo?). Empty: $SHOEFIND_MODEL; "
                               "'none' skips the check (rules only).")]
ZeroShot = Annotated[dict, Field(
    title="zero-shot options", description="Optional: prompts (a prompt set of rules/, e.g. seed), vocabulary, "
                                           "filter_attributes, fallback. Empty: the rules' defaults.")]
Seed = Annotated[int, Field(ge=0, le=2 ** 32 - 1, title="seed", description="Random seed of the k-shot split.")]
Shots = Annotated[str, Field(
    title="shots", description="Training photos per shoe: 16 means k = 1, 2, 4, 8, 16; or a list such as 1,4,16.")]


def given(value: str | None) -> str | None:
    """An empty text parameter means 'not given'; auto means 'the settings decide'."""
    return None if value in (None, "", "auto") else value


def paths(dataset: str | None, data_dir: str | None) -> tuple[str, str]:
    """(dataset, data folder) as absolute paths: the dataset given, else the working dataset."""
    lay = layout(given(data_dir))
    return str(lay.dataset(given(dataset))), str(lay.root)


def stop(reason: str):
    """Log the reason and return a Failed state carrying it (callers `return stop(...)`)."""
    get_run_logger().error(reason)
    return Failed(message=reason)


def argument_docs(fn) -> str:
    """fn's docstring with an `Args:` section made from its parameters' Field descriptions: Prefect reads
    parameter descriptions for the run form from the docstring."""
    from pydantic.fields import FieldInfo
    lines = []
    for name, hint in typing.get_type_hints(fn, include_extras=True).items():
        for meta in getattr(hint, "__metadata__", ()):
            if isinstance(meta, FieldInfo) and meta.description:
                lines.append(f"    {name}: {meta.description}")
    doc = inspect.cleandoc(fn.__doc__ or "")
    return doc + ("\n\nArgs:\n" + "\n".join(lines) if lines else "")


def fails_clearly(fn):
    """A flow body whose UserErrors end the run Failed with their one-line message, not a traceback
    (and whose parameters are described in its docstring, for the run form)."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def run(*args, **kwargs):
        data_dir = signature.bind_partial(*args, **kwargs).arguments.get("data_dir")
        try:
            with using_data_dir(given(data_dir)):   # the fidelity record, ONNX exports: under this folder too
                return publish_result(fn(*args, **kwargs))
        except UserError as exc:
            return stop(str(exc))
    run.__doc__ = argument_docs(fn)
    # the parameter types resolved where fn was written (Prefect builds the run form and validates from them)
    run.__annotations__ = typing.get_type_hints(fn, include_extras=True)
    run.__signature__ = inspect.signature(fn, eval_str=True)
    return run


def declared(request_cls, skip: tuple[str, ...] = (), **fixed):
    """A flow body taking a stage's request (shoefind.stages.request): the flow's parameters (its run
    form, `-p name=value`, the deployment's schema) are the request's fields, minus `skip`, and the
    body receives the validated request (with `fixed` values). A bad value ends the run with one line
    before any work."""
    from shoefind.stages.request import description, fields, form_field

    declared_fields = {n: f for n, f in fields(request_cls).items() if n not in skip and n not in fixed}
    params = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=annotation)
              for n, (hint, default, _) in declared_fields.items()
              for annotation, default in [form_field(hint, default)]]
    signature = inspect.Signature(params)

    def wrap(body):
        @functools.wraps(body)
        def run(*args, **kwargs):
            values = signature.bind(*args, **kwargs).arguments
            try:
                request = request_cls.of(**values, **fixed)
                with using_data_dir(getattr(request, "data_dir", None)):  # fidelity records, exports: here too
                    return publish_result(body(request))
            except UserError as exc:
                return stop(str(exc))
        del run.__wrapped__                     # Prefect reads this signature, not the body's
        run.__signature__ = signature
        run.__annotations__ = {p.name: p.annotation for p in params}
        docs = [f"    {n}: {description(meta)}" for n, (_, _, meta) in declared_fields.items() if description(meta)]
        run.__doc__ = inspect.cleandoc(body.__doc__ or "") + ("\n\nArgs:\n" + "\n".join(docs) if docs else "")
        return run
    return wrap


def publish_result(result):
    """The flow's return value, also published as a JSON artifact of its run (RESULT_ARTIFACT): a command
    that triggered the deployment reads its answer there, since the result itself stays on the worker."""
    import json

    from prefect.artifacts import create_markdown_artifact
    from prefect.states import State

    from shoefind.stages.request import RESULT_ARTIFACT
    if result is not None and not isinstance(result, State):
        create_markdown_artifact(f"```json\n{json.dumps(result, default=str)}\n```", key=RESULT_ARTIFACT,
                                 description="this run's result, as JSON")
    return result


def subflow(flow_fn, *args, **kwargs):
    """Run a flow inside this one; when it fails, this run ends with the same one-line message."""
    state = flow_fn(*args, **kwargs, return_state=True)
    if not state.is_completed():
        raise UserError(state.message or f"{flow_fn.name} ended {state.name}")
    return state.result()
