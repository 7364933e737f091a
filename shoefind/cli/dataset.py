"""`shoefind table | embed | evaluate`: the dataset side of the pipeline."""
from __future__ import annotations

from pathlib import Path

import typer

from shoefind.cli.common import clear_errors, dataset_and_data_dir as _dataset, err, fail, print_json, progress_bar

DATASET = typer.Argument(None, help="labeled photo folder (default: DATA_DIR/images)")
DATA_DIR = typer.Option(None, "--data-dir", envvar="SHOEFIND_DATA", help="working data folder (default ./data)")
MODEL = typer.Option(None, "--model", envvar="SHOEFIND_MODEL", help="CLIP name (ViT-B/32) or checkpoint path")
CLUSTER = typer.Option(None, "--cluster",
                       help="embed on Dask: local:N (N worker processes here) or a scheduler address tcp://host:8786")
RUNTIME = typer.Option(None, "--runtime",
                       help="torch | onnx | onnx-int8 (default: $SHOEFIND_RUNTIME, else onnx when installed)")


def _runtime(runtime: str | None) -> str | None:
    """Refuse a bad --runtime before any flow starts."""
    from shoefind.encoders.onnx_runtime import resolve_runtime
    if runtime:
        try:
            resolve_runtime(runtime)
        except ValueError as exc:
            fail(str(exc))
    return runtime


def _cluster(cluster: str | None) -> str | None:
    """Refuse a malformed --cluster before any flow starts."""
    from flows.cluster import check_cluster
    if cluster:
        try:
            check_cluster(cluster)
        except ValueError as exc:
            fail(str(exc))
    return cluster


def table(dataset: Path = DATASET, catalog: Path = typer.Option(None, help="catalog CSV: name,brand,color,hightop,sole"),
          strict: bool = typer.Option(False, help="treat every listed problem as an error (exit 2)"),
          data_dir: Path = DATA_DIR, json_out: bool = typer.Option(False, "--json", help="print a JSON summary")):
    """Build the feature table (shoes.csv, images.csv, issues.csv) of a labeled photo folder."""
    from shoefind.features.table import build_table, count_images, table_dir_for
    root, d = _dataset(dataset, data_dir)
    with clear_errors():
        if not root.is_dir():
            fail(f"dataset folder {root} does not exist")
        with progress_bar("reading images", count_images(root)) as advance:
            ft = build_table(root, catalog=catalog, progress=advance)
        out = ft.save(table_dir_for(d, root))
    for issue in ft.issues:
        err.print(str(issue), style="yellow", highlight=False, markup=False)
    summary = {"table": str(out), "layout": ft.layout, "shoes": len(ft.shoes), "images": len(ft.images),
               "issues": len(ft.issues)}
    if json_out:
        print_json(summary)
    else:
        print(f"{out}: {len(ft.shoes)} shoes, {len(ft.images)} images, {len(ft.issues)} issues")
    if strict and ft.issues:
        fail(f"{len(ft.issues)} problems listed above (--strict)")


def embed(dataset: Path = DATASET, model: str = MODEL, data_dir: Path = DATA_DIR,
          catalog: Path = typer.Option(None, help="catalog CSV"),
          batch_size: int = typer.Option(32, help="images per forward pass"),
          threads: int = typer.Option(None, help="torch CPU threads (default: all cores)"),
          cluster: str = CLUSTER, runtime: str = RUNTIME,
          json_out: bool = typer.Option(False, "--json")):
    """Cache CLIP embeddings of the dataset's images (only unseen images are encoded). Runs the `embed` flow."""
    from flows.embed import embed_flow
    root, d = _dataset(dataset, data_dir)
    with clear_errors():
        result = embed_flow(str(root), str(d), model=model, catalog=str(catalog) if catalog else None,
                            batch_size=batch_size, threads=threads, cluster=_cluster(cluster),
                            runtime=_runtime(runtime))
    if json_out:
        print_json(result)
    else:
        print(f"{result['total']} images: {result['cached']} cached, {result['encoded']} encoded, "
              f"{len(result['failed'])} unreadable -> {result['cache']}")


def evaluate(dataset: Path = DATASET, model: str = MODEL, data_dir: Path = DATA_DIR,
             catalog: Path = typer.Option(None, help="catalog CSV"),
             batch_size: int = typer.Option(32, help="images per forward pass"),
             task: str = typer.Option("zeroshot", "--task", help="zeroshot | change (composed retrieval: Recall@k, MRR)"),
             method: str = typer.Option("zeroshot", "--method", help="zeroshot | fewshot | coop, or a comma list: "
                                        "compared on one held-out k-shot split"),
             shots: str = typer.Option(None, "--shots", help="k-shot photos per shoe: 16 = k 1,2,4,8,16; or 1,4,16"),
             cluster: str = CLUSTER, runtime: str = RUNTIME,
             json_out: bool = typer.Option(False, "--json", help="print metrics.json to stdout")):
    """Zero-shot top-1/top-5 per attribute and shoe name. Runs the `evaluate` flow (table -> embed -> report)."""
    if task not in ("zeroshot", "change"):
        fail(f"unknown --task '{task}' (known: zeroshot, change)")
    if method != "zeroshot" or shots or model == "efficientnet-lite0":  # method comparison (cli/learn.py)
        from shoefind.cli.learn import evaluate_methods
        return evaluate_methods(dataset, model, data_dir, catalog, batch_size, method, shots, json_out, task)
    options = {"cluster": _cluster(cluster), "runtime": _runtime(runtime)}
    if task == "change":
        from flows.change_benchmark import evaluate_change_flow as evaluate_flow
        if any(options.values()):
            fail("--cluster and --runtime apply to --task zeroshot only (for now)")
        options = {}
    else:
        from flows.evaluate import evaluate_flow
    root, d = _dataset(dataset, data_dir)
    with clear_errors():
        run_dir = Path(evaluate_flow(str(root), str(d), model=model, catalog=str(catalog) if catalog else None,
                                     batch_size=batch_size, **options))
    if json_out:
        print((run_dir / "metrics.json").read_text())
    else:
        print((run_dir / "report.md").read_text())
        print(f"reports: {run_dir}")
