"""`shoefind learn` and the method comparison behind `shoefind evaluate --method/--shots`."""
from __future__ import annotations

from pathlib import Path

import typer

from shoefind.cli.common import clear_errors, dataset_and_data_dir as _dataset, fail

DATASET = typer.Argument(None, help="labeled photo folder (default: DATA_DIR/images)")
DATA_DIR = typer.Option(None, "--data-dir", envvar="SHOEFIND_DATA", help="working data folder (default ./data)")
MODEL = typer.Option(None, "--model", envvar="SHOEFIND_MODEL",
                     help="CLIP name (ViT-B/32), checkpoint path, or efficientnet-lite0 (image only: few-shot)")


def _check(model: str | None, method: str | None) -> None:
    """Exit 2 with the reason before any work when the model cannot run these methods."""
    from shoefind.evaluate.methods import methods_problem
    if method and (problem := methods_problem(model, method)):
        fail(problem)


def _shots(shots: str | None) -> None:
    from shoefind.features.splits import parse_shots
    try:
        parse_shots(shots)
    except ValueError as exc:
        fail(str(exc))


def _show(run_dir: Path, json_out: bool) -> None:
    if json_out:
        print((run_dir / "metrics.json").read_text())
    else:
        print((run_dir / "report.md").read_text())
        print(f"reports: {run_dir}")


def evaluate_methods(dataset: Path | None, model: str | None, data_dir: Path | None, catalog: Path | None,
                     batch_size: int, method: str, shots: str | None, json_out: bool, task: str = "zeroshot") -> None:
    """`shoefind evaluate --method ... --shots ...`: the evaluate flow in comparison mode."""
    from flows.evaluate import evaluate_flow

    if task != "zeroshot":
        fail("--method and --shots apply to --task zeroshot (attribute and name classification)")
    _check(model, method)
    _shots(shots)
    root, d = _dataset(dataset, data_dir)
    with clear_errors():
        run_dir = Path(evaluate_flow(str(root), str(d), model=model, catalog=str(catalog) if catalog else None,
                                     batch_size=batch_size, method=method, shots=shots or "16"))
    _show(run_dir, json_out)


def learn(dataset: Path = DATASET, model: str = MODEL, data_dir: Path = DATA_DIR,
          catalog: Path = typer.Option(None, help="catalog CSV"),
          method: str = typer.Option(None, "--method",
                                     help="comma list of zeroshot, fewshot, coop (default: all the model can run)"),
          shots: str = typer.Option("16", "--shots", help="training photos per shoe: 16 = k 1,2,4,8,16; or 1,4,16"),
          seed: int = typer.Option(0, help="split seed (the split is saved with the run)"),
          n_ctx: int = typer.Option(4, "--n-ctx", help="CoOp context tokens"),
          class_specific: bool = typer.Option(False, "--class-specific/--shared",
                                              help="CoOp context per class, or shared by all classes"),
          max_epochs: int = typer.Option(50, help="CoOp epochs at most (early stop on a validation fold)"),
          json_out: bool = typer.Option(False, "--json", help="print metrics.json to stdout")):
    """Learn few-shot and CoOp classifiers from the labeled photos, compare them with zero-shot on a held-out
    split, and save them for inference (the best one is used). Runs the `learn` flow."""
    from flows.learn import learn_flow

    _check(model, method)
    _shots(shots)
    root, d = _dataset(dataset, data_dir)
    with clear_errors():
        run_dir = Path(learn_flow(str(root), str(d), model=model, catalog=str(catalog) if catalog else None,
                                  method=method, shots=shots, seed=seed, n_ctx=n_ctx, class_specific=class_specific,
                                  max_epochs=max_epochs))
    _show(run_dir, json_out)
