"""The warm service: one model and one catalog held in a process, answering identify, change in words,
text search and model questions through the same library calls as `infer`, `search` and the web page.

A request costs only its answer: the model, the catalog, its classifier (class prompts) and its
open-set threshold are loaded by `open` and a first pass (`warm_up`) before any request comes.
Answers are the library's plain data, with paths made relative to the catalog folder (the server's
own folders are nobody's business) so that a path, or a photo's sha256, is its catalog id.

Photos are decoded in each request's thread and encoded together with those of concurrent requests,
one model run per core (shoefind.serve.batching); the rest of an answer (classifier, nearest photos,
change in words, text search) is computed one request at a time under a lock, so the per-catalog memos
(classifiers, prompt embeddings) are filled without races. Prompt embeddings of search words are kept
for repeats, up to TEXT_MEMO_CAP beyond the catalog's own prompts, so a server answering endless new
words keeps a steady memory.
"""
from __future__ import annotations

import io
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from shoefind.errors import UserError
from shoefind.images import sha256_file
from shoefind.serve.batching import EncodeBatcher, serving_plan
from shoefind.serve.uploads import Refused

TEXT_MEMO_CAP = 20_000        # prompt embeddings of request words kept for repeats (~40 MB at 512 dims)
SHA256 = re.compile(r"[0-9a-fA-F]{64}")


class NotFound(Refused):
    def __init__(self, message: str):
        super().__init__(404, message)


@dataclass
class WarmService:
    encoder: object
    catalog: object
    method: str = "auto"                       # identification method (`infer --method` names)
    options: object = None                     # ZeroShotOptions (None: the defaults)
    text_memo_cap: int = TEXT_MEMO_CAP
    started: float = field(default_factory=time.time)
    requests: int = 0

    def __post_init__(self):
        from shoefind.scoring.zeroshot import ZeroShotOptions
        self.options = self.options or ZeroShotOptions()
        self._lock = threading.Lock()
        self._batcher = EncodeBatcher(self.encoder)       # one run at a time until warm_up plans more
        self._own_texts: set[str] | None = None

    @classmethod
    def open(cls, model: str | None, dataset: str | os.PathLike, data_dir: str | os.PathLike,
             runtime: str | None = None, device: str | None = None, method: str = "auto",
             zeroshot: dict | None = None, progress: Callable[[int], None] | None = None) -> "WarmService":
        """Load the model and the catalog (photos not seen before are embedded), then warm up."""
        from shoefind.stages.infer import open_model_and_catalog
        from shoefind.scoring.zeroshot import ZeroShotOptions
        options = ZeroShotOptions.of(zeroshot)
        encoder, catalog = open_model_and_catalog(model, dataset, data_dir, runtime, device, progress=progress)
        service = cls(encoder, catalog, method, options)
        service.warm_up()
        return service

    # --- what a first request would otherwise pay ---------------------------------------------
    def warm_up(self) -> None:
        """Build the classifier and the open-set threshold and run one photo through the whole path;
        a method that cannot run here is a UserError now, not on every request."""
        from PIL import Image

        from shoefind.retrieve.identify import classifier_for
        from shoefind.retrieve.open_set import threshold_for
        classifier_for(self.encoder, self.catalog, self.method, self.options)
        threshold_for(self.catalog)
        runs, batch = serving_plan(self.encoder)     # after the catalog is embedded: from now on, one thread per run
        self._batcher = EncodeBatcher(self.encoder, runs, batch)
        buf = io.BytesIO()
        Image.new("RGB", (64, 64), (200, 200, 200)).save(buf, format="PNG")
        self.identify(photo=buf.getvalue())
        self.requests = 0
        memo = self._text_memo()
        self._own_texts = set(memo) if memo is not None else None

    # --- the requests ------------------------------------------------------------------------
    def identify(self, photo: bytes | None = None, catalog_id: str | None = None, k: int = 5,
                 neighbours: int = 5, method: str | None = None, change: str | None = None,
                 change_method: str = "constraints", results: int = 10, text_weight: float | None = None) -> dict:
        """One photo's answer (an uploaded photo's bytes, or a catalog photo by id); with `change`, the
        catalog shoes changed as the words say. An unusable photo is Refused (422)."""
        from shoefind.retrieve.answer import answer_photos
        from shoefind.retrieve.identify import encode_queries
        source = self._source(photo, catalog_id)
        queries = encode_queries(self.encoder, self.catalog, [source], encode=self._batcher.encode)
        with self._lock:
            self.requests += 1
            found = answer_photos(self.encoder, self.catalog, [source], change=change, method=method or self.method,
                                  change_method=change_method, k=k, neighbours=neighbours, results=results,
                                  text_weight=text_weight, options=self.options, queries=queries)
            self._bound_text_memo()
        answer = found["answers"][0]
        if answer["error"]:
            raise Refused(422, answer["error"].replace("the uploaded data", "the uploaded photo", 1))
        return self._public({"model": found["model"], "random_weights": found["random_weights"],
                             "catalog": self.catalog.root.name} | answer)

    def change(self, words: str, photo: bytes | None = None, catalog_id: str | None = None,
               change_method: str = "constraints", results: int = 10, text_weight: float | None = None,
               k: int = 5) -> dict:
        if not words or not words.strip():
            raise Refused(400, "the change in words is empty: say what to change, e.g. 'same brand but red'")
        return self.identify(photo, catalog_id, k=k, change=words, change_method=change_method, results=results,
                             text_weight=text_weight)

    def search(self, text: str, filters: dict[str, str | None] | None = None, k: int = 10) -> dict:
        from shoefind.retrieve.text_search import search_catalog
        with self._lock:
            self.requests += 1
            found = search_catalog(self.encoder, self.catalog, text, filters, k=k, prompts=self.options.prompts)
            self._bound_text_memo()
        return self._public({"model": self.encoder.model_id, "catalog": self.catalog.root.name} | found)

    def model_info(self) -> dict:
        from shoefind.retrieve.identify import chosen_classifier, describe_method
        from shoefind.retrieve.open_set import threshold_for
        enc, cat = self.encoder, self.catalog
        with self._lock:    # a method `shoefind learn` saved since start-up is picked up here too
            chosen = chosen_classifier(enc, cat, self.method, self.options)
            found = threshold_for(cat)
        name = chosen.name
        return {"model": enc.model_id, "family": getattr(enc, "family", ""), "has_text": bool(enc.has_text),
                "random_weights": bool(enc.is_random), "runtime": getattr(enc, "runtime", ""),
                "device": getattr(enc, "device", ""), "embed_dim": int(enc.embed_dim),
                "identification": {"method": name, "description": describe_method(name)}
                | ({"note": chosen.note} if chosen.note else {}),
                "catalog": {"name": cat.root.name, "shoes": len(cat.shoes), "photos": len(cat.photos),
                            "attributes": {a: sorted(set(cat.labels(a)) - {""}) for a in cat.attributes},
                            "approximate_index": bool(cat.search.approximate)},
                "open_set": {"threshold": found.threshold, "calibration": found.describe()}}

    def health(self) -> dict:
        return {"status": "ok", "uptime_s": round(time.time() - self.started, 1), "requests": self.requests}

    def photo_file(self, photo_id: str) -> Path:
        """A catalog photo's file, by sha256 or catalog path (404 when the catalog has none)."""
        return Path(self._catalog_path(photo_id))

    # --- helpers -----------------------------------------------------------------------------
    def _source(self, photo: bytes | None, catalog_id: str | None):
        if photo is not None and catalog_id:
            raise Refused(400, "give one photo: an upload (field 'photo') or a catalog id (field 'catalog_id'), "
                               "not both")
        if photo is not None:
            return photo
        if catalog_id:
            return self._catalog_path(catalog_id)
        raise Refused(400, "no photo: upload one as the multipart field 'photo', or give a catalog photo's id "
                           "as 'catalog_id' (its sha256 or its path in the catalog)")

    def _catalog_path(self, photo_id: str) -> str:
        """The catalog photo an id names: its sha256, or its path relative to the catalog folder."""
        cat = self.catalog
        photo_id = str(photo_id).strip()
        row = None
        if SHA256.fullmatch(photo_id):
            row = cat.photo_index(photo_id.lower())
        elif photo_id:
            root = Path(cat.root).resolve()
            path = (root / photo_id).resolve()
            # only files inside the catalog folder that are catalog photos: no other file is served
            if path.is_relative_to(root) and path.is_file():
                try:
                    row = cat.photo_index(sha256_file(path))
                except OSError:
                    row = None
        if row is None:
            raise NotFound(f"no catalog photo '{photo_id[:200]}': give a photo's sha256 or its path in the catalog "
                           "(as /identify and /search answers name them)")
        return str(cat.photos["path"].iat[row])

    def _public(self, obj):
        """Paths of catalog photos relative to the catalog folder (the photo's catalog id)."""
        root = str(Path(self.catalog.root)) + os.sep
        if isinstance(obj, dict):
            return {k: (v[len(root):] if k in ("path", "photo") and isinstance(v, str) and v.startswith(root)
                        else self._public(v)) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self._public(v) for v in obj]
        return obj

    def _text_memo(self) -> dict | None:
        memo = vars(self.encoder).get("_text_cache")
        return memo if isinstance(memo, dict) else None

    def _bound_text_memo(self) -> None:
        """Forget the oldest request words past the cap (the catalog's own prompts stay)."""
        memo = self._text_memo()
        if memo is None or self._own_texts is None or len(memo) <= len(self._own_texts) + self.text_memo_cap:
            return
        extra = [t for t in memo if t not in self._own_texts]
        for text in extra[:len(extra) - self.text_memo_cap // 2]:
            del memo[text]


def check_filters(filters: dict[str, str | None]) -> dict[str, str]:
    """Search filters read against the vocabularies (a UserError names an unknown value)."""
    from shoefind.retrieve.text_search import read_filters
    try:
        return read_filters(filters)
    except UserError as exc:
        raise Refused(400, str(exc)) from None
