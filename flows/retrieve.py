"""Retrieve stage: photo(s) -> the catalog shoe, its attributes, nearest catalog photos (and a change in words).

`prefect deployment run infer/ad-hoc -p image=/path/photo.jpg -p change="same brand but red"`
"""
from __future__ import annotations

from typing import Annotated, Literal, Union

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from pydantic import Field

from shoefind.checks import model_problem
from tasks.retrieve import infer_task

from .common import DataDir, Dataset, Device, Model, Runtime, ZeroShot, fails_clearly, given, paths, stop


def answer_markdown(answer: dict) -> str:
    lines = [f"# Inference against {answer['catalog']}", "", f"model: {answer['model']}"
             + (" (**RANDOM weights: answers mean nothing**)" if answer["random_weights"] else ""), ""]
    for a in answer["answers"]:
        lines.append(f"## {a['photo']}")
        if a["error"]:
            lines += [f"**error:** {a['error']}", ""]
            continue
        if a.get("not_in_catalog"):
            lines += [f"**{a['message']}** (nearest catalog photo {a['open_set']['nearest_similarity']:.2f}, "
                      f"threshold {a['open_set']['threshold']:.2f}); nearest shoes as suggestions:", ""]
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
@fails_clearly
def infer_flow(image: Annotated[Union[str, list[str]], Field(
                   title="photo(s)", description="Path of a photo on the worker's machine, a folder of photos, "
                                                 "or a list of them.")],
               change: Annotated[str, Field(title="change in words", description='Optional, e.g. "same brand but '
                                            'red": catalog shoes changed as the words say. Empty: none.')] = "",
               dataset: Dataset = "", data_dir: DataDir = "", model: Model = "",
               method: Annotated[str, Field(title="identification method", description="auto (the best available), "
                                            "zeroshot, fewshot, coop, learned or nearest.")] = "auto",
               change_method: Annotated[Literal["constraints", "fusion", "baseline"], Field(
                   title="change method", description="How a change in words is applied.")] = "constraints",
               k: Annotated[int, Field(ge=1, title="top shoes", description="How many catalog shoes to list.")] = 5,
               results: Annotated[int, Field(ge=1, title="changed shoes",
                                             description="How many changed shoes to list.")] = 10,
               runtime: Runtime = "auto", device: Device = "auto", zeroshot: ZeroShot = {}) -> dict:
    """Which shoe is this? Top shoes, attributes and nearest catalog photos of each photo."""
    dataset, data_dir = paths(dataset, data_dir)
    photos = [image] if isinstance(image, str) else list(image)
    model = given(model)
    if problem := model_problem(model):
        return stop(problem)
    answer = infer_task(photos, dataset, data_dir, model=model, change=given(change), method=method,
                        change_method=change_method, k=k, results=results, runtime=given(runtime),
                        device=given(device), zeroshot=zeroshot or None)
    create_markdown_artifact(answer_markdown(answer), key="infer-answer", description="shoefind inference")
    failed = [a["error"] for a in answer["answers"] if a["error"]]
    if len(failed) == len(answer["answers"]):
        return stop("no usable photo: " + "; ".join(failed))
    return answer


if __name__ == "__main__":
    import sys
    infer_flow(sys.argv[1:])
