"""evaluate: table -> embeddings -> zero-shot top-1/top-5 report (markdown, CSV, JSON, PNGs)."""
from __future__ import annotations

from prefect import flow

from shoefind.checks import dataset_problem, model_problem
from shoefind.encoders.load import split_specs
from shoefind.evaluate.methods import methods_problem
from shoefind.settings import data_dir as resolve_data_dir
from tasks.evaluate import compare_models_task, evaluate_zero_shot_task
from tasks.learn import compare_methods_task

from .build_table import dataset_path
from .embed import embed_flow
from .guard import stop


@flow(name="evaluate")
def evaluate_flow(dataset: str | None = None, data_dir: str | None = None, model: str | None = None,
                  catalog: str | None = None, batch_size: int = 32,
                  method: str = "zeroshot", shots: str | None = None, seed: int = 0, cluster: str | None = None,
                  runtime: str | None = None, zeroshot: dict | None = None) -> str:
    """cluster: None (this process), local:N or a Dask scheduler address (embedding runs there).

    model: one spec, or several as A,B,C: each is embedded, then all are compared side by side.
    zeroshot: prompts, vocabulary, filter_attributes, fallback (shoefind.retrieve.zeroshot.ZeroShotOptions).
    """
    data_dir = str(resolve_data_dir(data_dir))
    dataset = dataset_path(dataset, data_dir)
    models = split_specs(model)
    if len(models) > 1:
        if problem := dataset_problem(dataset) or next(filter(None, map(model_problem, models)), None):
            return stop(problem)
        if method != "zeroshot" or shots:
            return stop("--model A,B compares zero-shot figures; compare methods with one model at a time")
        for spec in models:
            embedded = embed_flow(dataset, data_dir, model=spec, catalog=catalog, batch_size=batch_size,
                                  cluster=cluster, runtime=runtime)
        return compare_models_task(embedded["table"], data_dir, models=models, runtime=runtime, zeroshot=zeroshot)
    if problem := dataset_problem(dataset) or model_problem(model) or methods_problem(model, method):
        return stop(problem)
    embedded = embed_flow(dataset, data_dir, model=model, catalog=catalog, batch_size=batch_size,
                          cluster=cluster, runtime=runtime)
    if method != "zeroshot" or shots:  # methods compared on one k-shot split (issue 6)
        return compare_methods_task(embedded["table"], data_dir, model=model, method=method, shots=shots, seed=seed,
                                    zeroshot=zeroshot)
    return evaluate_zero_shot_task(embedded["table"], data_dir, model=model, runtime=runtime, zeroshot=zeroshot)


if __name__ == "__main__":
    evaluate_flow()
