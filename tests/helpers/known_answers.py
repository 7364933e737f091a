"""The known-answer measurements: every text path of shoefind, scored on held-out demo photos.

`measure(encoder, demo)` runs the library as the commands do (zero-shot attributes, the 5-step
method, change in words, text search, few-shot, CoOp) over a catalog of the demo photos the demo
model never trained on, and `failures(scores)` lists the checks a model misses. The same code
scores the demo model (all must pass) and a random-weights model (they must fail).
"""
from __future__ import annotations

import numpy as np

# check name -> (score key, comparison, threshold or the score it must reach)
CHECKS = {
    "zero-shot colour top-1 >= 0.9": ("color_top1", ">=", 0.9),
    "zero-shot top top-1 >= 0.9": ("hightop_top1", ">=", 0.9),
    "zero-shot brand top-1 >= 0.9": ("brand_top1", ">=", 0.9),
    "5-step name top-1 >= 0.8": ("name_5step_top1", ">=", 0.8),
    "5-step name top-1 >= plain name prompts": ("name_5step_top1", ">=", "zero_shot_top1"),
    "'same shoe but blue' R@1 >= 0.8": ("same_but_blue_r1", ">=", 0.8),
    "'same shoe but blue' top result exactly as asked >= 0.8": ("same_but_blue_exact", ">=", 0.8),
    "search 'blue high top' precision@5 >= 0.8": ("search_blue_high_p5", ">=", 0.8),
    "few-shot name top-1 >= 0.9": ("fewshot_top1", ">=", 0.9),
    "CoOp >= zero-shot - 0.02": ("coop_top1", ">=", ("zeroshot_task_top1", -0.02)),
}
# the checks a model that knows nothing must fail (CoOp against zero-shot can tie at chance)
ACCURACY_CHECKS = [c for c in CHECKS if c not in ("5-step name top-1 >= plain name prompts",
                                                  "CoOp >= zero-shot - 0.02")]


def failures(scores: dict) -> list[str]:
    out = []
    for name, (key, _, target) in CHECKS.items():
        value = scores.get(key)
        if isinstance(target, tuple):
            bound = scores.get(target[0])
            bound = None if bound is None else bound + target[1]
        elif isinstance(target, str):
            bound = scores.get(target)
        else:
            bound = target
        if value is None or bound is None or value < bound - 1e-9:
            out.append(f"{name}: {value} (needs {bound})")
    return out


def heldout_catalog(encoder, demo):
    """The demo catalog restricted to its held-out photos (every shoe has some), embedded with `encoder`."""
    from shoefind.features.cache import EmbeddingCache
    from shoefind.features.catalog import catalog_from_table
    from shoefind.features.embed import embed_images
    from shoefind.features.table import FeatureTable, build_table
    split = demo.split
    held = set(split.loc[split["role"] == "heldout", "sha256"])
    table = build_table(demo.catalog)
    images = table.images[table.images["sha256"].isin(held)].reset_index(drop=True)
    cache = EmbeddingCache.for_encoder(demo.data_dir, encoder)
    embed_images(encoder, cache, [(str(table.root / p), s) for p, s in zip(images["path"], images["sha256"])],
                 batch_size=64)
    sub = FeatureTable(table.root, table.shoes, images, [], table.layout)
    return catalog_from_table(sub, cache, encoder.model_id), sub, cache


def measure(encoder, demo, coop_epochs: int = 30) -> dict:
    """Every known-answer score of `encoder` on the held-out demo photos."""
    from shoefind.learn.heldout import heldout_metrics
    catalog, table, cache = heldout_catalog(encoder, demo)
    x = catalog.embeddings
    photo_shoes = catalog.shoes["shoe"].to_numpy()[catalog.photo_shoe]
    scores = dict(heldout_metrics(encoder, catalog.shoes, x, photo_shoes))
    scores |= _same_but_blue(encoder, catalog)
    scores |= _search(encoder, catalog, "blue high top", {"color": "Blue", "hightop": "High"}, k=5)
    scores |= _methods(encoder, table, cache, coop_epochs)
    return scores


def _same_but_blue(encoder, catalog) -> dict:
    """Each held-out photo of a non-blue shoe, as a new photo (its catalog labels unused), changed
    'same shoe but blue': is the top result the blue version of the same shoe?"""
    from shoefind.scoring.change_words import parse_change
    from shoefind.retrieve.compose import ChangeQuery, retrieve
    from shoefind.retrieve.identify import classifier_for, describe_identification, reference_attributes
    request = parse_change("same shoe but blue")
    _, classifier = classifier_for(encoder, catalog, "zeroshot")
    shoes = catalog.shoes
    queries = [i for i in range(len(catalog)) if shoes["color"].iat[catalog.photo_shoe[i]] != "Blue"]
    ident = classifier.identify(catalog.embeddings[queries])
    hits = exact = 0
    for j, i in enumerate(queries):
        truth = shoes.iloc[catalog.photo_shoe[i]]
        target = shoes.index[(shoes["brand"] == truth["brand"]) & (shoes["hightop"] == truth["hightop"])
                             & (shoes["sole"] == truth["sole"]) & (shoes["color"] == "Blue")]
        answer = describe_identification(catalog, classifier, ident, j, catalog.embeddings[i], neighbours=0)
        identified = int(np.argmax(ident.combined_scores[j]))
        query = ChangeQuery(photo=catalog.embeddings[i], change=request,
                            reference=reference_attributes(answer, catalog, None),
                            identified_name=answer["shoe"]["name"], exclude_shoe=identified)
        result = retrieve(encoder, catalog, query, "constraints")
        if not len(result.ranking):
            continue
        top = shoes.iloc[int(result.ranking[0])]
        hits += int(len(target) == 1 and int(result.ranking[0]) == int(target[0]))
        exact += int(top["color"] == "Blue" and all(top[a] == truth[a] for a in ("brand", "hightop", "sole")))
    n = max(1, len(queries))
    return {"same_but_blue_r1": round(hits / n, 4), "same_but_blue_exact": round(exact / n, 4),
            "same_but_blue_queries": len(queries)}


def _search(encoder, catalog, text: str, wanted: dict, k: int) -> dict:
    from shoefind.retrieve.text_search import search_catalog
    results = search_catalog(encoder, catalog, text, k=k)["results"][:k]
    good = sum(all(r.get(a) == v for a, v in wanted.items()) for r in results)
    return {"search_blue_high_p5": round(good / k, 4)}


def _methods(encoder, table, cache, coop_epochs: int) -> dict:
    """Few-shot and CoOp against zero-shot on a k-shot split of the held-out photos (shoe names)."""
    from shoefind.learn.methods import compare_methods
    methods = ["zeroshot", "fewshot"] + (["coop"] if getattr(encoder, "supports_prompt_learning", False) else [])
    comparison = compare_methods(encoder, table, cache, methods, [4], seed=0,
                                 coop_options={"max_epochs": coop_epochs})
    m = comparison.metrics
    name = m[m["task"] == "name"]

    def top1(method):
        rows = name[name["method"] == method]
        return None if rows.empty else round(float(rows["top1"].max()), 4)
    few = [v for v in (top1("prototype"), top1("tip-adapter")) if v is not None]
    return {"fewshot_top1": max(few) if few else None, "coop_top1": top1("coop"),
            "zeroshot_task_top1": top1("zeroshot")}
