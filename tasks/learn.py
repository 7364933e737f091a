"""Task of the learn stage: fit, compare and save the learned classifiers that inference then uses."""
from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from shoefind.learn.stage import learn_table

from .evaluate import _finish


@task(name="learn-classifiers", cache_policy=NO_CACHE)
def learn_task(table_dir: str, data_dir: str, model: str | None = None, method: str | None = None,
               shots: str = "16", seed: int = 0, coop: dict | None = None, zeroshot: dict | None = None,
               views: int | None = None) -> str:
    """Returns the run folder; the classifiers land in DATA_DIR/learned."""
    return _finish(learn_table(table_dir, data_dir, model, method, shots, seed, coop, log=get_run_logger().info,
                               zeroshot=zeroshot, views=views))


@task(name="finetune", cache_policy=NO_CACHE)
def finetune_task(dataset: str, data_dir: str, model: str | None = None, catalog: str | None = None, seed: int = 0,
                  blocks: int = 2, alpha: float = 0.5, epochs: int = 5, lr: float = 1e-5, batch_size: int = 32,
                  device: str | None = None, out: str | None = None) -> dict:
    """Fine-tune the CLIP model itself; returns its checkpoint and held-out figures."""
    from shoefind.learn.stage import finetune_dataset
    return finetune_dataset(dataset, data_dir, model, catalog, seed=seed, blocks=blocks, alpha=alpha, epochs=epochs,
                            lr=lr, batch_size=batch_size, device=device, out=out, log=get_run_logger().info)


@task(name="lit", cache_policy=NO_CACHE)
def lit_task(dataset: str, data_dir: str, model: str | None = None, catalog: str | None = None,
             out: str | None = None, steps: int | None = None, seed: int = 0, batch_size: int = 32,
             device: str | None = None, zeroshot: dict | None = None) -> dict:
    """LiT (shoefind.learn.lit_stage): a text tower trained against the frozen image embeddings; returns
    its checkpoint and held-out scores, and publishes the manifest as a markdown artifact."""
    from prefect.artifacts import create_markdown_artifact

    from shoefind.learn.checkpoint import manifest_paths
    from shoefind.learn.lit_stage import learn_lit_dataset
    result = learn_lit_dataset(dataset, data_dir, model=model, catalog=catalog, out=out, steps=steps, seed=seed,
                               batch_size=batch_size, device=device, zeroshot=zeroshot,
                               log=get_run_logger().info)
    create_markdown_artifact(manifest_paths(result["checkpoint"])[1].read_text(), key="lit-manifest",
                             description=f"LiT checkpoint {result['checkpoint']}")
    return result
