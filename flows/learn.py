"""learn: table -> embeddings -> k-shot split -> few-shot and CoOp classifiers, compared and saved for inference."""
from __future__ import annotations

from prefect import flow

from shoefind.checks import dataset_problem, model_problem
from shoefind.evaluate.methods import methods_problem
from shoefind.settings import data_dir as resolve_data_dir
from tasks.learn import compare_methods_task

from .build_table import dataset_path
from .embed import embed_flow
from .guard import stop


@flow(name="learn")
def learn_flow(dataset: str | None = None, data_dir: str | None = None, model: str | None = None,
               catalog: str | None = None, method: str | None = None, shots: str = "16", seed: int = 0,
               n_ctx: int = 4, class_specific: bool = False, max_epochs: int = 50, batch_size: int = 32,
               zeroshot: dict | None = None) -> str:
    """method: comma list of zeroshot, fewshot, coop (default: all the model can run);
    shots: '16' (k = 1, 2, 4, 8, 16) or a list '1,4,16'; zeroshot: the prompt set etc. (ZeroShotOptions)."""
    data_dir = str(resolve_data_dir(data_dir))
    dataset = dataset_path(dataset, data_dir)
    if problem := dataset_problem(dataset) or model_problem(model) or (method and methods_problem(model, method)):
        return stop(problem)
    embedded = embed_flow(dataset, data_dir, model=model, catalog=catalog, batch_size=batch_size)
    coop = {"n_ctx": n_ctx, "class_specific": class_specific, "max_epochs": max_epochs}
    return compare_methods_task(embedded["table"], data_dir, model=model, method=method, shots=shots, seed=seed,
                                coop_options=coop, save=True, zeroshot=zeroshot)


if __name__ == "__main__":
    learn_flow()
