"""Text search over the catalog: a prompt-ensembled text query against catalog photo embeddings.

Attribute filters (brand, colour, top, sole) are read against rules/vocabularies.yaml, so
"--top high" means High. Negated words in the query ("converse -red", "not Nike") push
results away; negated catalog values are filtered out.
"""
from __future__ import annotations

import numpy as np

from shoefind.features.catalog import Catalog, remember_prompts
from shoefind.scoring.change_words import ATTRIBUTE_NAMES, parse_change
from shoefind.retrieve.compose import fuse, negative_vector, retrieval_rules, text_query_vector
from shoefind.vocab import vocabularies
from shoefind.errors import UserError


def read_filters(filters: dict[str, str | None] | None) -> dict[str, str]:
    """{attribute: raw value} -> {attribute: vocabulary value}; a value it cannot read is an error."""
    out = {}
    for attr, raw in (filters or {}).items():
        if raw is None or str(raw).strip() == "":
            continue
        vocab = vocabularies()[attr]
        reading = vocab.read(raw)
        if reading.problem == "unknown":
            raise UserError(f"unknown {ATTRIBUTE_NAMES[attr]} '{raw}' (known: {', '.join(vocab.values)})")
        out[attr] = reading.value
    return out


def filter_mask(catalog: Catalog, filters: dict[str, str], avoid: dict[str, list[str]] | None = None) -> np.ndarray:
    mask = np.ones(len(catalog.shoes), dtype=bool)
    for attr, value in filters.items():
        if attr not in catalog.attributes:
            raise UserError(f"the catalog {catalog.root} has no {ATTRIBUTE_NAMES[attr]} labels to filter by")
        mask &= catalog.labels(attr) == value
    for attr, values in (avoid or {}).items():
        if attr in catalog.attributes and values:
            mask &= ~np.isin(catalog.labels(attr), list(values))
    return mask


def search_catalog(encoder, catalog: Catalog, text: str, filters: dict[str, str | None] | None = None,
                   k: int = 10, prompts: str | None = None) -> dict:
    """The k catalog shoes whose photos best match `text` (and the filters)."""
    if not str(text).strip():
        raise UserError("the search text is empty: say what to look for, e.g. 'white high-top converse'")
    wanted = read_filters(filters)
    request = parse_change(text)
    avoid = {a: r.avoid for a, r in request.rules.items() if r.avoid}
    mask = filter_mask(catalog, wanted, avoid)
    rules = retrieval_rules()
    query = fuse(None, text_query_vector(encoder, request.positive_text or text, prompts),
                 negative_vector(encoder, request.avoid_texts(), prompts), 1.0, rules["negative_weight"])
    best, best_photo = catalog.shoe_scores(query, mask, depth=max(k, 10))
    order = np.argsort(-best, kind="stable")
    order = [int(i) for i in order[np.isfinite(best[order])][:k]]
    results = [catalog.shoe_record(i) | {"score": round(float(best[i]), 4),
                                         "photo": catalog.photos["path"].iat[best_photo[i]]} for i in order]
    notes = [] if results else ["no catalog shoe matches the filters"]
    pushed = request.avoid_texts()
    remember_prompts(encoder, catalog)
    return {"query": text, "filters": wanted, "pushed_away": pushed, "results": results, "notes": notes}
