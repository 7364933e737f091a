"""Retrieve stage: photo(s) -> the catalog shoe, its attributes, nearest catalog photos (and a change in words).

`prefect deployment run infer/ad-hoc -p image=/path/photo.jpg -p change="same brand but red"`
"""
from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from shoefind.stages.infer import InferRequest, infer
from tasks.common import as_task
from tasks.retrieve import log_answers

from .common import declared, stop


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
@declared(InferRequest)
def infer_flow(request: InferRequest) -> dict:
    """Which shoe is this? Top shoes, attributes and nearest catalog photos of each photo.
    `prefect deployment run infer/ad-hoc -p image=/path/photo.jpg -p change="same brand but red"`"""
    from shoefind.checks import require_model
    require_model(request.model_text())
    answer = infer(request, step=as_task, log=get_run_logger().info)
    log_answers(answer, get_run_logger())
    create_markdown_artifact(answer_markdown(answer), key="infer-answer", description="shoefind inference")
    failed = [a["error"] for a in answer["answers"] if a["error"]]
    if len(failed) == len(answer["answers"]):
        return stop("no usable photo: " + "; ".join(failed))
    return answer


if __name__ == "__main__":
    import sys
    infer_flow(sys.argv[1:])
