"""Every prompt each task would send to the model for a catalog, so a user can read them
(`shoefind prompts DATASET --json`)."""
from __future__ import annotations

import pandas as pd

from shoefind.scoring.zeroshot import ZeroShotOptions, attribute_classes
from shoefind.vocab import ATTRIBUTES, written_column

TASK_STEPS = {
    "brand": "5-step, step 1: the photo's brand", "color": "5-step, step 1: the photo's colour",
    "hightop": "5-step, step 1: the photo's top", "sole": "5-step, step 1: the photo's sole",
    "filtered": "5-step, step 3: the shoes left after the attribute filter, with their attributes",
    "name": "5-step, step 4: every shoe by its name",
}


def catalog_attributes(shoes: pd.DataFrame) -> list[str]:
    return [a for a in ATTRIBUTES if a in shoes and shoes[a].fillna("").astype(str).str.len().gt(0).any()]


def prompt_listing(shoes: pd.DataFrame, options: ZeroShotOptions | None = None,
                   attributes: list[str] | None = None) -> dict:
    """{prompt set, options, tasks: {task: {what, prompts: {class: [texts]}}}} for a catalog's shoes
    (columns shoe, name and the attribute columns it has)."""
    options = options or ZeroShotOptions()
    prompts = options.prompt_set
    read = shoes.reset_index(drop=True).fillna("")
    shoes = prompts.catalog(read)      # the words the templates receive
    attributes = catalog_attributes(shoes) if attributes is None else attributes
    words = catalog_words(read, shoes, attributes, options)
    ids = shoes["shoe"].astype(str).tolist() if "shoe" in shoes else shoes["name"].astype(str).tolist()
    tasks: dict[str, dict] = {}
    for attr in attributes:
        classes = attribute_classes(attr, shoes[attr].astype(str), options.vocabulary, prompts.as_written)
        tasks[attr] = {"what": TASK_STEPS[attr], "prompts": dict(zip(classes, prompts.attribute_prompts(attr, classes)))}
    filters = [a for a in options.filter_attributes if a in attributes]
    if filters:
        tasks["filtered"] = {"what": TASK_STEPS["filtered"] + f" (filter: {', '.join(filters)})",
                             "prompts": dict(zip(ids, prompts.filtered_prompts(shoes.to_dict("records"))))}
    tasks["name"] = {"what": TASK_STEPS["name"],
                     "prompts": dict(zip(ids, prompts.name_prompts(shoes["name"].astype(str).tolist())))}
    coop = {}
    for task in attributes + ["name"]:
        classes = (attribute_classes(task, shoes[task].astype(str), options.vocabulary, prompts.as_written)
                   if task != "name"
                   else shoes["name"].astype(str).tolist())
        keys = classes if task != "name" else ids
        coop[task] = dict(zip(keys, prompts.coop_texts(task, classes)))
    tasks["coop"] = {"what": "CoOp: the text after the learned context words, per task and class", "prompts": coop}
    retrieval = prompts.retrieval
    tasks["search"] = {"what": "text search and change in words: {} is the typed text; "
                               "words to push away use the negative templates",
                       "prompts": {"query": list(retrieval["query_templates"]),
                                   "negative": list(retrieval["negative_templates"])}}
    tasks["change"] = {"what": "change in words, method (a): identify the shoe, then match this text",
                       "prompts": {"baseline": [retrieval["baseline_template"]]}}
    return {"prompt_set": prompts.name, "description": prompts.description, "sources": dict(prompts.sources),
            **({"source": dict(prompts.source)} if prompts.source else {}),
            "options": options.describe(), "catalog_words": words, "tasks": tasks}


def catalog_words(read: pd.DataFrame, used: pd.DataFrame, attributes: list[str], options: ZeroShotOptions) -> dict:
    """The attribute values the templates receive ({} of every attribute prompt, the filtered shoes'
    slots), and where they differ from the other reading of the catalog: a word-for-word set (the
    seed's) receives "Grey" where shoefind reads "Gray", shoefind's set the other way round."""
    as_written = options.prompt_set.as_written
    out = {"values": "as the catalog writes them" if as_written else "as shoefind reads them "
                     "(rules/vocabularies.yaml: aliases and near misses corrected)", "attributes": {}}
    for attr in attributes:
        classes = attribute_classes(attr, used[attr].astype(str), options.vocabulary, as_written)
        entry = {"classes": len(classes), "values": classes}
        if written_column(attr) in read:
            pairs = zip(read[written_column(attr)].astype(str), read[attr].astype(str))
            other = {w: r for w, r in pairs if w and r and w != r}
            if other and as_written:
                entry["shoefind_reads"] = other                     # written -> read
            elif other:
                spellings: dict[str, list[str]] = {}
                for w, r in other.items():
                    spellings.setdefault(r, []).append(w)
                entry["catalog_also_writes"] = spellings            # read -> the other spellings
        out["attributes"][attr] = entry
    return out


def listing_lines(listing: dict) -> list[str]:
    """The listing as plain text, one prompt a line."""
    lines = [f"prompt set: {listing['prompt_set']} ({listing['description']})"]
    if listing.get("source"):
        lines.append(f"source: {listing['source'].get('repository', '')} {listing['source'].get('file', '')} "
                     f"at {listing['source'].get('commit', '')}")
    words = listing.get("catalog_words")
    if words:
        lines += ["", f"== catalog words: the values the templates receive, {words['values']}"]
        for attr, entry in words["attributes"].items():
            lines.append(f"  {attr} ({entry['classes']}): {', '.join(entry['values'])}")
            if "shoefind_reads" in entry:
                lines.append("    (shoefind's own set reads: " + ", ".join(
                    f"{a} as {b}" for a, b in entry["shoefind_reads"].items()) + ")")
            if "catalog_also_writes" in entry:
                lines.append("    (the catalog also writes: " + ", ".join(
                    f"{a} as {' / '.join(b)}" for a, b in entry["catalog_also_writes"].items()) + ")")
    for task, body in listing["tasks"].items():
        lines += ["", f"== {task}: {body['what']}"]
        for cls, texts in body["prompts"].items():
            if isinstance(texts, dict):            # CoOp: one text per class of each task
                lines.append(f"  {cls}:")
                lines += [f"    {c}: {t}" for c, t in texts.items()]
                continue
            lines.append(f"  {cls}:")
            lines += [f"    {t}" for t in texts]
    return lines
