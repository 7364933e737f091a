"""Query latency in a warm process: identify, change in words, and text search against a catalog.

Query side: the full ViT-B/32 architecture with random weights (`make_full_random`), so the
image and text encoders cost what the real ones cost. Catalog side: synthetic photo
embeddings (default 5,000 photos of 1,000 shoes) with random labels from
rules/vocabularies.yaml (their prompt embeddings are real encoder outputs). The vectors are
unit vectors shaped like a catalog's (families of similar shoes, several photos per shoe),
written as embedding-cache shards, then read the way a big catalog reads them: float16,
memory-mapped from the cache's vector store, through the approximate index when the catalog
reaches the ANN threshold (50,000 photos). Every query uses a new photo and new words, so no
text or image result is served from a memo. Prints median and p95 per query kind, the
process's RSS (anonymous memory and mapped file pages apart), and the index's recall@10
against exact search. The "(vector)" rows time the catalog search alone, given a query
vector: the nearest photos, the shoe ranking (each shoe by its best photo), and the shoe
ranking restricted to 10% of the shoes (a filter, applied inside the index).
    .venv/bin/python benchmarks/query.py [--catalog 5000] [--shoes 1000] [--queries 30] [--threads 2]
    .venv/bin/python benchmarks/query.py --catalog 1000000 --keep /var/tmp/q1m   # build once, reuse
    .venv/bin/python benchmarks/query.py --catalog 1000000 --keep /var/tmp/q1m --search-only  # no model
"""
from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from shoefind.features.catalog import Catalog  # noqa: E402
from shoefind.features.vector_index import AnnIndex, PhotoSearch, VectorStore, ann_threshold, recall_at_k  # noqa: E402
from shoefind.retrieve.identify import classifier_for  # noqa: E402
from shoefind.retrieve.answer import answer_photos  # noqa: E402
from shoefind.encoders.load import load_model  # noqa: E402
from shoefind.encoders.families.tiny import make_full_random
from shoefind.retrieve.text_search import search_catalog  # noqa: E402
from shoefind.vocab import vocabularies  # noqa: E402


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def shoe_centres(dim: int, n_shoes: int, seed: int = 0) -> np.ndarray:
    """One direction per shoe; shoes come in families of 20 similar ones."""
    rng = np.random.default_rng(seed)
    families = unit(rng.standard_normal((max(1, n_shoes // 20), dim)))
    return unit(families[np.arange(n_shoes) % len(families)] + 0.8 * unit(rng.standard_normal((n_shoes, dim))))


def synthetic_vectors(dim: int, n_photos: int, n_shoes: int, noise_seed: int = 1, chunk: int = 50_000):
    """(start, unit vectors) chunks: photo i shows shoe i % n_shoes (its direction plus noise)."""
    centres = shoe_centres(dim, n_shoes)
    rng = np.random.default_rng(noise_seed)
    for start in range(0, n_photos, chunk):
        idx = np.arange(start, min(n_photos, start + chunk))
        yield start, unit(centres[idx % n_shoes] + 0.5 * unit(rng.standard_normal((len(idx), dim))))


def new_photo_vectors(dim: int, n: int, n_shoes: int) -> np.ndarray:
    """Query vectors: new photos of random catalog shoes."""
    centres = shoe_centres(dim, n_shoes)
    rng = np.random.default_rng(12345)
    return unit(centres[rng.integers(0, n_shoes, n)] + 0.5 * unit(rng.standard_normal((n, dim))))


def write_cache_shards(cache_dir: Path, dim: int, n_photos: int, n_shoes: int) -> None:
    """The synthetic vectors as embedding-cache shards (the format EmbeddingCache writes)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    for start, vectors in synthetic_vectors(dim, n_photos, n_shoes):
        shas = np.array([f"{i:064x}" for i in range(start, start + len(vectors))])
        np.savez(cache_dir / f"shard-{start:020d}-synthetic.npz", sha256=shas, vectors=vectors)


def synthetic_catalog(cache_dir: Path, dim: int, n_photos: int, n_shoes: int, seed: int = 0) -> Catalog:
    """A catalog over the cache's float16 vector store (approximate index above the threshold)."""
    rng = np.random.default_rng(seed)
    vocab = vocabularies()
    pick = lambda attr: rng.choice(list(vocab[attr].values), n_shoes)  # noqa: E731
    shoes = pd.DataFrame({"shoe": [f"Shoe {i:04d}" for i in range(n_shoes)],
                          "name": [f"Shoe {i:04d}" for i in range(n_shoes)],
                          "brand": pick("brand"), "hightop": pick("hightop"), "color": pick("color"),
                          "sole": pick("sole"), "folder": ""})
    store = VectorStore.for_cache(cache_dir)
    assert store.rows == n_photos, (store.rows, n_photos)
    photos = pd.DataFrame({"path": [f"synthetic/{i}.jpg" for i in range(n_photos)],
                           "sha256": [f"{i:064x}" for i in range(n_photos)], "shoe_index": np.arange(n_photos) % n_shoes})
    rows = np.arange(n_photos)
    ann = AnnIndex(store).ensure() if n_photos >= ann_threshold() else None
    if ann is None:  # below the threshold a catalog holds float32 embeddings in memory, as catalog_from_table does
        return Catalog(Path("synthetic"), shoes, photos, np.asarray(store.vectors, np.float32), model_id="synthetic")
    return Catalog(Path("synthetic"), shoes, photos, store.vectors, model_id="synthetic",
                   search=PhotoSearch(store.vectors, rows, ann))


def peak_rss_mb() -> float:
    """The process's peak resident set (VmHWM), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb(field: str = "VmRSS") -> float:
    """Resident MB now: VmRSS (all), RssAnon (the process's own memory), RssFile (mapped file pages)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def query_photos(folder: Path, n: int) -> list[str]:
    """Distinct 800x600 JPEGs (a coloured blob and noise), like phone photos scaled down."""
    from PIL import Image, ImageDraw
    rnd = random.Random(1)
    out = []
    for i in range(n):
        img = Image.new("RGB", (800, 600), (250, 250, 250))
        d = ImageDraw.Draw(img)
        d.ellipse([rnd.randint(10, 200), rnd.randint(150, 300), rnd.randint(600, 790), rnd.randint(450, 590)],
                  fill=tuple(rnd.randrange(256) for _ in range(3)))
        noise = np.asarray(img, dtype=np.int16) + np.random.default_rng(i).integers(-20, 20, (600, 800, 3))
        path = folder / f"query-{i}.jpg"
        Image.fromarray(noise.clip(0, 255).astype(np.uint8)).save(path, quality=90)
        out.append(str(path))
    return out


def change_texts():
    colors = [c.lower() for c in vocabularies()["color"].values]
    brands = list(vocabularies()["brand"].values)
    forms = ["same brand but {c}", "same colour but {b}", "{c} high top, not {b}", "same shoe but -{c}",
             "another brand in {c}, suede", "similar but {c2} and {c}", "not {b}, low top, {c}"]
    for form, c, c2, b in itertools.product(forms, colors, reversed(colors), brands):
        if c != c2:
            yield form.format(c=c, c2=c2, b=b)


def search_texts():
    colors = [c.lower() for c in vocabularies()["color"].values]
    words = ["high-top", "low-top", "retro", "running", "canvas", "leather", "suede", "chunky", "skate"]
    for c, w, b in itertools.product(colors, words, vocabularies()["brand"].values):
        yield f"{c} {w} {b} sneakers"


def timed(fn, n: int) -> list[float]:
    out = []
    for i in range(n):
        start = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--catalog", "--photos", dest="photos", type=int, default=5000, help="catalog photos")
    ap.add_argument("--keep", default=None, help="folder for the model and the synthetic cache (reused if there)")
    ap.add_argument("--shoes", type=int, default=1000)
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runtime", default=None, help="torch | onnx | onnx-int8 (default: load_model's choice)")
    ap.add_argument("--checkpoint", default=None, help="reuse a full random checkpoint (written if absent)")
    ap.add_argument("--search-only", action="store_true", help="no model: time the catalog search of query vectors")
    ap.add_argument("--dim", type=int, default=512, help="vector size with --search-only")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "query.json"))
    args = ap.parse_args()

    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="shoefind-query-"))
    tmp.mkdir(parents=True, exist_ok=True)
    enc, load_s, dim = None, 0.0, args.dim
    if not args.search_only:
        ckpt = Path(args.checkpoint or tmp / "vit-b32-random.pt")
        if not ckpt.is_file():
            make_full_random(ckpt)
        kwargs = {"runtime": args.runtime} if args.runtime else {}
        start = time.perf_counter()
        enc = load_model(str(ckpt), threads=args.threads, **kwargs)
        load_s, dim = time.perf_counter() - start, enc.embed_dim
    cache_dir = tmp / "embeddings" / f"synthetic-{args.photos}-{args.shoes}-{dim}"
    start = time.perf_counter()
    if not (cache_dir / "vector-store" / "state.json").is_file():
        write_cache_shards(cache_dir, dim, args.photos, args.shoes)
    catalog = synthetic_catalog(cache_dir, dim, args.photos, args.shoes)
    index_s = time.perf_counter() - start

    vectors = new_photo_vectors(dim, args.queries + 3, args.shoes)
    some_shoes = np.arange(args.shoes) % 10 == 0
    kinds = {
        "nearest photos (vector)": lambda i: catalog.nearest_photos(vectors[i % len(vectors)], 10),
        "shoe ranking (vector)": lambda i: catalog.shoe_scores(vectors[i % len(vectors)]),
        "shoe ranking, 10% of shoes (vector)": lambda i: catalog.shoe_scores(vectors[i % len(vectors)], some_shoes),
    }
    build_s = 0.0
    if enc is not None:
        start = time.perf_counter()
        classifier_for(enc, catalog)          # class prompt embeddings: once per catalog and process
        build_s = time.perf_counter() - start
        photos = query_photos(tmp, args.queries + 3)
        changes, searches = change_texts(), search_texts()
        kinds |= {
            "identify": lambda i: answer_photos(enc, catalog, [photos[i % len(photos)]]),
            "change (constraints)": lambda i: answer_photos(enc, catalog, [photos[i % len(photos)]],
                                                            change=next(changes)),
            "change (fusion)": lambda i: answer_photos(enc, catalog, [photos[i % len(photos)]], change=next(changes),
                                                       change_method="fusion"),
            "text search": lambda i: search_catalog(enc, catalog, next(searches),
                                                    {"hightop": "high"} if i % 2 else None),
        }
    for fn in kinds.values():       # warm-up: first calls allocate and compile
        timed(fn, 3)
    rows = []
    for kind, fn in kinds.items():
        ms = np.array(timed(fn, args.queries))
        rows.append({"query": kind, "n": len(ms), "median_ms": round(float(np.median(ms)), 1),
                     "p95_ms": round(float(np.percentile(ms, 95)), 1), "max_ms": round(float(ms.max()), 1)})
    # RSS before the recall check: its exact search reads every stored vector, which no query does
    rss_now, rss_peak, rss_anon, rss_file = rss_mb(), peak_rss_mb(), rss_mb("RssAnon"), rss_mb("RssFile")
    recall = None
    if catalog.search.approximate:
        recall = recall_at_k(catalog.search, new_photo_vectors(dim, 50, args.shoes), 10)
    runtime = "none (--search-only)" if enc is None else f"{type(enc).__name__} ({enc.runtime})"
    result = {"rss_mb": round(rss_now), "peak_rss_mb": round(rss_peak), "rss_anon_mb": round(rss_anon),
              "rss_file_mb": round(rss_file),
              "approximate_index": catalog.search.approximate, "recall_at_10": recall,
              "store_and_index_s": round(index_s, 1),
              "model": "ViT-B/32 architecture, random weights" if enc else None,
              "runtime": runtime, "threads": args.threads, "catalog_photos": args.photos,
              "catalog_shoes": args.shoes, "model_load_s": round(load_s, 1),
              "catalog_prompts_s": round(build_s, 1), "latency": rows}
    print(pd.DataFrame(rows).to_string(index=False))
    print(f"model load {load_s:.1f} s, catalog prompt embeddings {build_s:.1f} s (once per process); "
          f"{runtime}, {args.threads} threads")
    print(f"{args.photos:,} photos ({'approximate index' if catalog.search.approximate else 'exact search'}"
          f"{f', recall@10 {recall:.3f} against exact' if recall is not None else ''}); store + index "
          f"{index_s:.1f} s (this run); RSS after the queries {rss_now:.0f} MB (own memory {rss_anon:.0f} MB, "
          f"mapped file pages {rss_file:.0f} MB), peak {rss_peak:.0f} MB")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
