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
               n_ctx: int = 4, class_specific: bool = False, max_epochs: int | None = None, batch_size: int = 32,
               zeroshot: dict | None = None, schedule: str = "fast", ctx_init: str = "a photo of a", views: int = 0,
               blocks: int = 2, alpha: float = 0.5, epochs: int = 5, lr: float = 1e-5,
               out: str | None = None) -> str | dict:
    """method: comma list of zeroshot, fewshot, tip-adapter-f, coop, cocoop (default: all the model can
    run), or finetune (fine-tune the CLIP model itself: returns its checkpoint and held-out figures);
    shots: '16' (k = 1, 2, 4, 8, 16) or a list '1,4,16'; zeroshot: the prompt set etc. (ZeroShotOptions)."""
    data_dir = str(resolve_data_dir(data_dir))
    dataset = dataset_path(dataset, data_dir)
    if method == "finetune":
        from shoefind.learn.stage import finetune_dataset
        return finetune_dataset(dataset, data_dir, model, catalog, seed=seed, blocks=blocks, alpha=alpha,
                                epochs=epochs, lr=lr, batch_size=batch_size, out=out)
    if problem := dataset_problem(dataset) or model_problem(model) or (method and methods_problem(model, method)):
        return stop(problem)
    embedded = embed_flow(dataset, data_dir, model=model, catalog=catalog, batch_size=batch_size)
    from shoefind.learn.stage import coop_options
    coop = coop_options(n_ctx, class_specific, max_epochs, schedule, ctx_init)
    return compare_methods_task(embedded["table"], data_dir, model=model, method=method, shots=shots, seed=seed,
                                coop_options=coop, save=True, zeroshot=zeroshot, views=views)


if __name__ == "__main__":
    learn_flow()
