"""expand-dataset: crawl -> triage of what waits -> filter (with triage) -> (review queue) -> feature
table -> embedding cache -> retrain, evaluate, promote.

Each stage that cannot run (crawler not installed, offline, no model, nothing accepted yet)
is recorded in the summary and the next stage still runs on what there is: the filter works
on whatever the inbox holds. A person's review is not waited for; queued images join the
dataset on a later run, once accepted.

The learning loop (shoefind.registry): when people decided photos since the last run, the model is
retrained on them first (caught up: they teach the model that judges this run's photos); the working
dataset's current model then answers the photos still waiting for a person, then sorts every new
photo (accepted under the shoe it was crawled for, or under the one of the shoes the search listed it
for that it is sure of; rejected; or queued with its guesses); after the dataset grew, its configured
learner is retrained, scored on the held-out split fixed when the dataset was registered, and promoted
only when not worse; a newly promoted model answers the photos still waiting before the run ends, so a
person reviewing after the run finds only what the newest model could not decide.
The summary artifact shows the held-out scores before and after, what the model decided and a plot of
held-out top-1 across runs.
"""
from __future__ import annotations

from pathlib import Path

from typing import Annotated

from prefect import flow, get_run_logger
from pydantic import Field
from prefect.artifacts import create_markdown_artifact

from shoefind.curate.queue import ReviewQueue
from shoefind.errors import UserError
from shoefind.registry.history import score_text
from shoefind.settings import layout
from tasks.registry import retrain_task, triage_waiting_task

from .common import BatchSize, CrawlCatalog, DataDir, Engine, FilterModel, Inbox, PerQuery, ShoeList, given
from .crawl import crawl_flow
from .curate import filter_flow
from .features import build_table_flow, embed_flow


def _failed_message(state) -> str:
    return state.message or type(state).__name__


def _run_crawl(stages: dict, catalog, shoes, inbox, data_dir, per_query, engine, base_url, settings) -> None:
    if not (catalog or shoes):
        stages["crawl"] = "skipped: no catalog or shoe list given; filtering what the inbox holds"
        return
    try:
        state = crawl_flow(catalog=catalog, shoes=shoes, per_query=per_query, engine=engine, data_dir=data_dir,
                           dataset=inbox, base_url=base_url, settings=settings, return_state=True)
    except Exception as exc:  # a crawler bug must not cost the images already in the inbox
        stages["crawl"] = f"failed ({type(exc).__name__}: {exc}); filtering what the inbox holds"
        return
    if state.is_completed():
        rows = state.result()
        stages["crawl"] = f"done: {sum(r.get('downloaded', 0) for r in rows)} images downloaded for {len(rows)} queries"
    else:
        stages["crawl"] = f"failed ({_failed_message(state)}); filtering what the inbox holds"


def _subflow(stages: dict, stage: str, fn, **kwargs):
    """Run a sibling flow; record how it went."""
    state = fn(**kwargs, return_state=True)
    if not state.is_completed():
        stages[stage] = f"failed: {_failed_message(state)}"
        return None
    result = state.result()
    stages[stage] = "done"
    return result


@flow(name="expand-dataset")
def expand_dataset_flow(catalog: CrawlCatalog = "", shoes: ShoeList = "", data_dir: DataDir = "", inbox: Inbox = "",
                        model: FilterModel = "", per_query: PerQuery = 20, engine: Engine = "google",
                        base_url: Annotated[str, Field(title="base URL", description="Override the engine's "
                                                       "base URL (a local test site). Empty: the engine's own.")] = "",
                        settings: Annotated[dict, Field(title="crawl settings", description="crawl_settings() "
                                                        "keys: read_timeout, concurrency, ...")] = {},
                        batch_size: BatchSize = 64,
                        learner: Annotated[str, Field(title="learner", description="What the dataset learns: "
                                                      "linear-probe, prototype, tip-adapter, tip-adapter-f, lit, coop, "
                                                      "cocoop. Empty: the one registered (linear-probe at first).")] = "",
                        learner_model: Annotated[str, Field(title="learner's model", description="The backbone or "
                                                            "CLIP model the learner reads. Empty: the registered one, "
                                                            "else the filter model, else $SHOEFIND_MODEL.")] = "",
                        heldout: Annotated[str, Field(title="held-out folder", description="When the dataset is "
                                                      "registered (its first retraining): a labeled folder kept apart "
                                                      "as the held-out split. Empty: a share of the dataset.")] = "",
                        retrain: Annotated[bool, Field(title="retrain", description="Retrain, evaluate and promote "
                                                       "the dataset's model after it grew.")] = True,
                        triage: Annotated[bool, Field(title="triage", description="Let the current model accept, "
                                                      "reject or queue photos.")] = True) -> dict:
    """crawl -> triage of what waits -> filter -> review queue -> feature table -> embeddings -> retrain,
    evaluate, promote; a summary artifact per run. The inbox is where the crawl puts new images and the
    filter reads them."""
    log = get_run_logger()
    lay = layout(given(data_dir))
    data_dir = str(lay.root)
    inbox = str(Path(inbox).expanduser().resolve() if inbox else lay.inbox)
    dataset = str(lay.images)
    stages: dict[str, str] = {}
    backbone = _learner_model(data_dir, dataset, learner_model, model)

    _run_crawl(stages, catalog, shoes, inbox, data_dir, per_query, engine, base_url, settings)

    # what people decided since the last run is learned before the model judges tonight's photos
    caught_up = _catch_up(stages, data_dir, dataset, learner, backbone) if retrain and triage else None

    waiting_triage = _triage_waiting(stages, "triage", data_dir, dataset, inbox) if triage else dict(_NONE_ASKED)

    filtered = None
    if Path(inbox).is_dir():
        state = filter_flow(folder=inbox, data_dir=data_dir, model=model, batch_size=batch_size, triage=triage,
                            return_state=True)
        if state.is_completed():
            filtered = state.result()
            stages["filter"] = (f"done: {filtered['new']} new, {filtered['accepted']} accepted "
                                f"({filtered['auto_accepted']} by the model), {filtered['rejected']} rejected "
                                f"({filtered['auto_rejected']} by the model), {filtered['queued']} queued"
                                + (f" ({filtered['listed_for_several']} listed for two shoes, {filtered['reopened']} "
                                   f"reopened, {filtered.get('listed_again_accepted', 0)} listed again filed by the "
                                   "model)" if filtered.get("listed_for_several") or filtered.get("listed_again") else "")
                                + f"; {filtered['triage']}")
        else:
            stages["filter"] = f"failed: {_failed_message(state)}"
    else:
        stages["filter"] = f"skipped: inbox {inbox} does not exist"

    waiting = ReviewQueue(data_dir).counts()["review"]
    stages["review"] = (f"{waiting} image{'s wait' if waiting > 1 else ' waits'} for a person: run `shoefind review`"
                        if waiting else "nothing waits for review")

    if Path(dataset).is_dir() and any(Path(dataset).iterdir()):
        table_dir = _subflow(stages, "table", build_table_flow, dataset=dataset, data_dir=data_dir)
        if table_dir:
            stages["table"] = f"done: {table_dir}"
        embedded = _subflow(stages, "embed", embed_flow, dataset=dataset, data_dir=data_dir, model=backbone or "")
        if embedded:
            stages["embed"] = (f"done: {embedded.get('encoded', 0)} encoded, {embedded.get('cached', 0)} already cached "
                               f"({embedded.get('model', '?')})")
    else:
        stages["table"] = stages["embed"] = f"skipped: the dataset {dataset} has no images yet"

    trained = None
    if not retrain:
        stages["retrain"] = "skipped (retrain off)"
    elif Path(dataset).is_dir() and any(Path(dataset).iterdir()):
        state = retrain_task(dataset, data_dir, learner=given(learner), model=backbone, heldout=given(heldout),
                             return_state=True)
        if state.is_completed():
            trained = state.result()
            stages["retrain"] = f"model {trained['model']}: {trained['reason']}"
        else:
            stages["retrain"] = f"failed: {_failed_message(state)}"
    else:
        stages["retrain"] = f"skipped: the dataset {dataset} has no images yet"
    # a newly promoted model answers what still waits, so a person finds only what the newest model left
    after = _triage_waiting(stages, "triage after promotion", data_dir, dataset, inbox) \
        if triage and trained and trained.get("promoted") else dict(_NONE_ASKED)

    summary = {
        "new": filtered["new"] if filtered else 0,
        "accepted": filtered["accepted"] if filtered else 0,
        "rejected": filtered["rejected"] if filtered else 0,
        "rejected_by_rule": filtered["rejected_by_rule"] if filtered else {},
        "queued": filtered["queued"] if filtered else 0,
        "listed_for_several": filtered.get("listed_for_several", 0) if filtered else 0,
        "exact_duplicates": filtered["exact_duplicates"] if filtered else 0,
        "near_duplicate_groups": len(filtered["near_duplicate_groups"]) if filtered else 0,
        "review_waiting": ReviewQueue(data_dir).counts()["review"], "stages": stages, "inbox": inbox,
        "dataset": dataset,
        "auto_accepted": (filtered["auto_accepted"] + filtered.get("listed_again_accepted", 0) if filtered else 0)
        + waiting_triage["auto_accepted"] + after["auto_accepted"],
        "auto_rejected": (filtered["auto_rejected"] + filtered.get("listed_again_rejected", 0) if filtered else 0)
        + waiting_triage["auto_rejected"] + after["auto_rejected"],
        "waiting_triaged": waiting_triage,
        "waiting_triaged_after_promotion": after,
        "model_before_triage": caught_up,
        "model": trained,
    }
    plot = _history_plot(data_dir, dataset, summary)
    for stage, note in stages.items():
        log.info("%s: %s", stage, note)
    create_markdown_artifact(expand_markdown(summary, plot), key="expand-dataset-summary",
                             description="dataset expansion run")
    return summary


_NONE_ASKED = {"asked": 0, "auto_accepted": 0, "auto_rejected": 0, "still_waiting": 0}


def _triage_waiting(stages: dict, stage: str, data_dir: str, dataset: str, inbox: str) -> dict:
    """The current model answers the photos waiting for a person (those it has not answered yet)."""
    if not ReviewQueue(data_dir).counts()["review"]:
        return dict(_NONE_ASKED)
    state = triage_waiting_task(data_dir, dataset, inbox=inbox, return_state=True)
    if not state.is_completed():
        stages[stage] = f"failed: {_failed_message(state)}"
        return dict(_NONE_ASKED)
    counts = state.result()
    stages[stage] = (f"{counts.get('note', '')}: of {counts['asked']} waiting photos, {counts['auto_accepted']} "
                     f"accepted, {counts['auto_rejected']} rejected, {counts['still_waiting']} still wait")
    return counts


def _catch_up(stages: dict, data_dir: str, dataset: str, learner: str, backbone: str | None) -> dict | None:
    """Retrain before triage when the dataset changed since its last model (a person's reviews between
    runs): the photos they filed teach the model that judges this run's photos, not the next run's. Only
    for a registered dataset; nothing is trained when nothing changed."""
    from shoefind.registry.store import ModelRegistry
    if not (Path(dataset).is_dir() and ModelRegistry(data_dir, dataset).registered):
        return None
    state = retrain_task(dataset, data_dir, learner=given(learner), model=backbone, return_state=True)
    if not state.is_completed():
        stages["catch-up"] = f"failed: {_failed_message(state)}"
        return None
    result = state.result()
    stages["catch-up"] = (f"model {result['model']}: {result['reason']}" if result.get("trained") else
                          "nothing new since the last model")
    return result


def _learner_model(data_dir: str, dataset: str, learner_model: str, filter_model: str) -> str | None:
    """The model the learner reads: given now, else the registered one, else the filter's, else the settings'."""
    from shoefind.registry.store import ModelRegistry
    if given(learner_model):
        return learner_model
    registry = ModelRegistry(data_dir, dataset)
    if registry.registered:
        try:
            return registry.config()["learner"]["model"]
        except UserError:
            return None        # the retrain stage says what is wrong with the registry
    return None if given(filter_model) in (None, "none", "off") else filter_model


def _history_plot(data_dir: str, dataset: str, summary: dict) -> Path | None:
    """Held-out top-1 across runs as a PNG in the run folder (and the rows behind it in the summary)."""
    from datetime import datetime, timezone

    from shoefind.registry.history import history, plot_history
    from shoefind.registry.store import ModelRegistry
    registry = ModelRegistry(data_dir, dataset)
    if not registry.registered:
        return None
    try:
        rows = history(registry)
    except UserError as exc:
        summary["stages"]["history"] = f"failed: {exc}"
        return None
    summary["history"] = rows
    if not rows:
        return None
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
    return plot_history(rows, layout(data_dir).runs / f"{stamp}-expand" / "heldout_top1.png")


def expand_markdown(s: dict, plot: Path | None = None) -> str:
    lines = ["# Dataset expansion", ""]
    m = s.get("model")
    if m:
        before = (m.get("before") or {}).get("top1")
        after = (m.get("heldout") or {}).get("top1")
        lines += ["## The model", "", "| | held-out top-1 | top-5 | model |", "|---|---|---|---|",
                  f"| before | {score_text(before)} | {score_text((m.get('before') or {}).get('top5'))} | "
                  f"{m.get('previous') or '-'} |",
                  f"| trained now | {score_text(after)} | {score_text(m['heldout'].get('top5'))} | {m['model']} |",
                  f"| current after the run | | | **{m.get('current')}** |", "",
                  f"{'Promoted' if m['promoted'] else 'Not promoted'}: {m['reason']}", ""]
        if m.get("comparison"):
            lines += ["Noise of the held-out split: the standard error of the paired difference, from the photos "
                      "one model gets right and the other wrong (McNemar's test gives p).", ""]
    lines += ["| | count |", "|---|---|"]
    for key in ("new", "accepted", "auto_accepted", "rejected", "auto_rejected", "queued", "listed_for_several",
                "exact_duplicates", "near_duplicate_groups", "review_waiting"):
        if key in s:
            lines.append(f"| {key.replace('_', ' ')} | {s[key]} |")
    if s["rejected_by_rule"]:
        lines += ["", "Rejected by rule:", ""] + [f"- {r}: {n}" for r, n in s["rejected_by_rule"].items()]
    lines += ["", "Stages:", ""] + [f"- **{k}**: {v}" for k, v in s["stages"].items()]
    if s.get("history"):
        from shoefind.registry.history import history_markdown
        lines += ["", "## Every model of the dataset", "", history_markdown(s["history"])]
    if plot is not None and plot.is_file():
        import base64
        data = base64.b64encode(plot.read_bytes()).decode()
        lines += ["", "## Held-out top-1 across runs", "", f"![held-out top-1 across runs](data:image/png;base64,{data})",
                  "", f"(`{plot}`)"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    expand_dataset_flow()
