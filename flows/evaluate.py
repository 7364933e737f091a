"""Evaluate stage: table -> embeddings -> scores -> a run folder (report.md, metrics CSV/JSON, plots).

evaluate: zero-shot top-1/top-5 per attribute and shoe name, learned methods compared on one held-out
k-shot split (method/shots), or several models side by side (model A,B,C). evaluate-change: the
composed-retrieval benchmark. The parameters are shoefind.stages.evaluate.EvaluateRequest's fields;
the branches are the stage's own (each step a task).
"""
from __future__ import annotations

from prefect import flow, get_run_logger

from shoefind.stages.evaluate import EvaluateRequest, evaluate
from tasks.common import as_task

from .common import declared


@flow(name="evaluate")
@declared(EvaluateRequest)
def evaluate_flow(request: EvaluateRequest) -> str:
    """Top-1/top-5 per attribute and shoe name of a labeled dataset; returns the run folder.
    Several models (model A,B,C) are each embedded, then compared side by side."""
    return evaluate(request, step=as_task, log=get_run_logger().info)


@flow(name="evaluate-change")
@declared(EvaluateRequest, skip=("method", "shots", "seed", "views"), task="change")
def evaluate_change_flow(request: EvaluateRequest) -> str:
    """Composed-retrieval benchmark (Recall@1/5/10 and MRR per method); returns the run folder."""
    return evaluate(request, step=as_task, log=get_run_logger().info)


if __name__ == "__main__":
    evaluate_flow()
