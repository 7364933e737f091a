"""The learn stage as the CLI and the flows both run it: embed the dataset, fit the learned
classifiers on a held-out k-shot split, compare them with zero-shot, and save them for inference."""
from __future__ import annotations

import os
from typing import Callable

from shoefind.evaluate.stage import RunReport, compare_table, methods_check


def coop_options(n_ctx: int = 4, class_specific: bool = False, max_epochs: int = 50) -> dict:
    return {"n_ctx": n_ctx, "class_specific": class_specific, "max_epochs": max_epochs}


def learn_table(table_dir: str | os.PathLike, data_dir: str | os.PathLike, model: str | None = None,
                method: str | None = None, shots: str = "16", seed: int = 0, coop: dict | None = None,
                log: Callable[[str], None] | None = None, zeroshot: dict | None = None) -> RunReport:
    """Compare and save: the learned classifiers land in DATA_DIR/learned for `infer` to use."""
    return compare_table(table_dir, data_dir, model, method, shots, seed, coop_options=coop, save=True, log=log,
                         zeroshot=zeroshot)


def learn_dataset(dataset: str | os.PathLike, data_dir: str | os.PathLike, model: str | None = None,
                  catalog: str | os.PathLike | None = None, method: str | None = None, shots: str = "16",
                  seed: int = 0, n_ctx: int = 4, class_specific: bool = False, max_epochs: int = 50,
                  batch_size: int = 32, cluster: str | None = None, runtime: str | None = None,
                  device: str | None = None, zeroshot: dict | None = None, progress=None,
                  log: Callable[[str], None] | None = None) -> RunReport:
    """The whole learn stage in this process: table -> embeddings -> fit, compare, save."""
    from shoefind.features.stage import embed_dataset
    methods_check(model, method)
    from shoefind.retrieve.zeroshot import ZeroShotOptions
    zeroshot = ZeroShotOptions.of(zeroshot).describe()      # a bad option fails before any work
    embedded = embed_dataset(dataset, data_dir, model, catalog, batch_size, cluster=cluster, runtime=runtime,
                             device=device, progress=progress, log=log)
    return learn_table(embedded["table"], data_dir, model, method, shots, seed,
                       coop_options(n_ctx, class_specific, max_epochs), log=log, zeroshot=zeroshot)
