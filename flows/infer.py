"""infer: photo(s) -> the catalog shoe, its attributes, nearest catalog photos (and a change in words).

`prefect deployment run infer/<name> -p image=/path/photo.jpg -p change="same brand but red"`
"""
from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from shoefind.features.catalog import EmptyCatalog
from shoefind.checks import model_problem
from shoefind.settings import data_dir as resolve_data_dir
from tasks.infer import infer_task

from .build_table import dataset_path
from .guard import stop


def answer_markdown(answer: dict) -> str:
    lines = [f"# Inference against {answer['catalog']}", "", f"model: {answer['model']}"
             + (" (RANDOM weights: answers mean nothing)" if answer["random_weights"] else ""), ""]
    for a in answer["answers"]:
        lines.append(f"## {a['photo']}")
        if a["error"]:
            lines += [f"**error:** {a['error']}", ""]
            continue
        lines += ["| shoe | brand | colour | top | probability |", "|---|---|---|---|---:|"]
        lines += [f"| {s['shoe']} | {s.get('brand', '')} | {s.get('color', '')} | {s.get('hightop', '')} | "
                  f"{s['probability']:.1%} |" for s in a["top_shoes"]]
        lines.append("")
        lines.append(", ".join(f"{k}: {v['value']} ({v['confidence']:.0%})" for k, v in a["attributes"].items()))
        if "change" in a:
            c = a["change"]
            lines += ["", f"**change** '{c['text']}' ({c['method']}): understood " + "; ".join(c["understood"])]
            lines += [f"1. {r['shoe']} ({r['score']:.3f})" for r in c["results"]]
        lines.append("")
    return "\n".join(lines)


@flow(name="infer")
def infer_flow(image: str | list[str], change: str | None = None, dataset: str | None = None,
               data_dir: str | None = None, model: str | None = None, method: str = "auto",
               change_method: str = "constraints", k: int = 5, results: int = 10,
               zeroshot: dict | None = None) -> dict:
    data_dir = str(resolve_data_dir(data_dir))
    photos = [image] if isinstance(image, str) else list(image)
    if problem := model_problem(model):
        return stop(problem)
    try:
        answer = infer_task(photos, dataset_path(dataset, data_dir), data_dir, model=model, change=change,
                            method=method, change_method=change_method, k=k, results=results, zeroshot=zeroshot)
    except (EmptyCatalog, ValueError, FileNotFoundError) as exc:
        return stop(str(exc))
    create_markdown_artifact(answer_markdown(answer), key="infer-answer", description="shoefind inference")
    failed = [a["error"] for a in answer["answers"] if a["error"]]
    if len(failed) == len(answer["answers"]):
        return stop("no usable photo: " + "; ".join(failed))
    return answer


if __name__ == "__main__":
    import sys
    infer_flow(sys.argv[1:])
