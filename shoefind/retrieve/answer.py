"""One call that answers photos: identification, and optionally a change in words.

Used by the `infer` Prefect task, the CLI and the web page, so all three answer alike.
Answers are plain data (JSON-ready); a photo that cannot be used gets an `error` instead.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from shoefind.features.catalog import Catalog, remember_prompts
from shoefind.scoring.change_words import parse_change
from shoefind.retrieve.identify import (QueryPhotos, chosen_classifier, describe_identification, describe_method,
                                        encode_queries, reference_attributes)
from shoefind.images import is_image_name
from shoefind.retrieve.compose import ChangeQuery, retrieve
from shoefind.retrieve.open_set import judge, nearest_similarity, threshold_for
from shoefind.scoring.zeroshot import ZeroShotOptions
from shoefind.errors import UserError
from shoefind.walk import list_files


def expand_photos(inputs: Sequence[str | os.PathLike]) -> list[str]:
    """Paths as given; a folder stands for the image files inside it (sorted, recursive)."""
    out = []
    for item in inputs:
        p = Path(item).expanduser()
        if p.is_dir():
            # symbolic links and special files (a FIFO would block) are not followed
            listing = list_files(p)
            found = sorted(str(f) for f in listing.files if is_image_name(f) and not f.name.startswith("."))
            if not found and listing.unreadable:   # chmod 000: a permission problem, not an empty folder
                raise UserError(f"{p}: no image files this user can read ({listing.unreadable[0].path}: "
                                f"{listing.unreadable[0].reason.split(': its files')[0]})")
            if not found:
                raise UserError(f"{p}: the folder has no image files")
            out += found
        else:
            out.append(str(p))
    return out


def answer_photos(encoder, catalog: Catalog, photos: Sequence, change: str | None = None,
                  method: str = "auto", change_method: str = "constraints", k: int = 5,
                  neighbours: int = 5, results: int = 10, text_weight: float | None = None,
                  options: ZeroShotOptions | None = None, progress=None, queries: QueryPhotos | None = None) -> dict:
    """Identify each photo (paths or bytes); with `change`, also find catalog shoes changed as it says.
    `options`: the zero-shot prompts, vocabulary, filter and fallback (and the change's prompts);
    `progress(n)`: called as photos are encoded; `queries`: the photos encoded already (encode_queries).
    Every answer says how near the photo is to the catalog and flags one too far from it
    (`not_in_catalog`, shoefind.retrieve.open_set)."""
    options = options or ZeroShotOptions()
    queries = queries or encode_queries(encoder, catalog, photos, progress=progress)
    chosen = chosen_classifier(encoder, catalog, method, options)
    name, classifier = chosen.name, chosen.classifier
    ok = queries.ok
    ident = classifier.identify(queries.embeddings[ok]) if ok else None
    request = parse_change(change) if change and change.strip() else None
    open_set = threshold_for(catalog) if ok else None
    answers = []
    for i, label in enumerate(queries.labels):
        if queries.errors[i] is not None:
            answers.append({"photo": label, "error": queries.errors[i]})
            continue
        j = ok.index(i)
        answer = {"photo": label, "error": None, "method": name, "method_description": describe_method(name),
                  "in_catalog": queries.catalog_rows[i] is not None, "not_in_catalog": False}   # set below
        if chosen.note:
            answer["method_note"] = chosen.note
        answer |= describe_identification(catalog, classifier, ident, j, queries.embeddings[i], k=k,
                                          neighbours=neighbours,
                                          logit_scale=getattr(encoder, "logit_scale", 100.0))
        if queries.catalog_rows[i] is not None:   # this very photo is in the catalog: its label is the answer
            answer |= answer_by_label(catalog, answer, queries.catalog_rows[i], k)
        nearest = answer["nearest_photos"]
        similarity = nearest[0]["similarity"] if nearest else nearest_similarity(catalog, queries.embeddings[i])
        answer |= judge(similarity, open_set, answer["top_shoes"])
        if request is not None:
            answer["change"] = _change_answer(encoder, catalog, request, answer, queries.embeddings[i],
                                              queries.catalog_rows[i], int(np.argmax(ident.combined_scores[j])),
                                              change_method, results, text_weight, options.prompts)
        answers.append(answer)
    remember_prompts(encoder, catalog)   # the next process needs no text tower for these prompts
    return {"catalog": str(catalog.root), "model": catalog.model_id,
            "random_weights": bool(getattr(encoder, "is_random", False)), "answers": answers}


def answer_by_label(catalog: Catalog, answer: dict, row: int, k: int) -> dict:
    """A catalog photo's answer: its catalog shoe and labels, sure; the method's own answer is kept as
    `method_shoe` (a learned model may disagree with the catalog, and the catalog is right about its photos)."""
    record = catalog.shoe_record(catalog.photo_shoe[row])
    shoe = record | {"score": 1.0, "probability": 1.0, "by": "catalog label"}
    # the label is sure: the method's other guesses stay, with its probabilities kept apart
    others = [s | {"probability": 0.0, "method_probability": s["probability"]}
              for s in answer["top_shoes"] if s["shoe"] != record["shoe"]]
    attributes = {}
    for attr, value in answer["attributes"].items():
        label = record.get(attr)
        if not label:
            attributes[attr] = value
            continue
        alternatives = [a for a in [{"value": value["value"], "confidence": value["confidence"]},
                                    *value["alternatives"]] if a["value"] != label][:2]
        attributes[attr] = {"value": label, "confidence": 1.0, "alternatives": alternatives, "by": "catalog label",
                            "catalog_value": label, "catalog_confidence": 1.0}
    return {"catalog_shoe": record | {"path": catalog.photos["path"].iat[row]}, "method_shoe": answer["shoe"],
            "shoe": shoe, "top_shoes": [shoe, *others][:max(k, 1)], "attributes": attributes}


def _change_answer(encoder, catalog, request, answer, photo, catalog_row, identified, method, k, text_weight,
                   prompts=None) -> dict:
    # the query shoe: the catalog shoe of this very photo if it is a catalog photo, else the identified one
    query_shoe = int(catalog.photo_shoe[catalog_row]) if catalog_row is not None else identified
    query = ChangeQuery(photo=photo, change=request, reference=reference_attributes(answer, catalog, catalog_row),
                        identified_name=answer["shoe"]["name"], exclude_shoe=query_shoe)
    result = retrieve(encoder, catalog, query, method, text_weight=text_weight, prompts=prompts)
    return {"text": request.text, "method": result.method, "understood": result.understood or ["(nothing)"],
            "notes": result.notes, "excluded": catalog.shoes["shoe"].iat[query_shoe],
            "results": result.shoes(catalog, k)}
