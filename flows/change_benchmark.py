"""evaluate-change: table -> embeddings -> composed-retrieval benchmark (Recall@1/5/10, MRR per method)."""
from __future__ import annotations

from prefect import flow

from shoefind.features.catalog import EmptyCatalog
from shoefind.checks import dataset_problem, model_problem
from shoefind.settings import data_dir as resolve_data_dir
from tasks.change_benchmark import evaluate_change_task

from .build_table import dataset_path
from .embed import embed_flow
from .guard import stop


@flow(name="evaluate-change")
def evaluate_change_flow(dataset: str | None = None, data_dir: str | None = None, model: str | None = None,
                         catalog: str | None = None, batch_size: int = 32, zeroshot: dict | None = None) -> str:
    """zeroshot: prompts (also the change's query texts), vocabulary, filter_attributes, fallback."""
    data_dir = str(resolve_data_dir(data_dir))
    dataset = dataset_path(dataset, data_dir)
    if problem := dataset_problem(dataset) or model_problem(model):
        return stop(problem)
    embedded = embed_flow(dataset, data_dir, model=model, catalog=catalog, batch_size=batch_size)
    try:
        return evaluate_change_task(embedded["table"], data_dir, model=model, zeroshot=zeroshot)
    except EmptyCatalog as exc:
        return stop(str(exc))


if __name__ == "__main__":
    evaluate_change_flow()
