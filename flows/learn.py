"""Learn stage: table -> embeddings -> k-shot split -> few-shot and CoOp classifiers, compared with
zero-shot and saved for inference; or a LiT / finetuned checkpoint. The parameters are
shoefind.stages.learn.LearnRequest's fields; the branches are the stage's own (each step a task)."""
from __future__ import annotations

from prefect import flow, get_run_logger

from shoefind.stages.learn import LearnRequest, learn
from tasks.common import as_task

from .common import declared


@flow(name="learn")
@declared(LearnRequest)
def learn_flow(request: LearnRequest) -> str | dict:
    """Learn classifiers from the labeled photos, compare them with zero-shot, save them for `infer`;
    returns the run folder (finetune, lit: the checkpoint and held-out figures)."""
    return learn(request, step=as_task, log=get_run_logger().info)


if __name__ == "__main__":
    learn_flow()
