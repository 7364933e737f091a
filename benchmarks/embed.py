"""Embedding speed: full ViT-B/32 architecture (random weights) on ../shared/data/nike-silhouettes.

Compares, in one run: torch fp32 at batch 1 and 32, bf16 (torch, CPUs with AMX/AVX512-BF16),
each ONNX Runtime path (onnx, onnx-int8) and the Dask local cluster (through Prefect); prints
end-to-end images/s (decoding, preprocessing and encoding of every photo: the wall time of
`embed_images`), the model's own images/s, the ratio to torch fp32 batch 32, fidelity (min
cosine to torch fp32 over every image), the share of the run the model waited for decoded
images, which runtime `--runtime auto` picks here, and the time of the cache-hit rerun.
    .venv/bin/python benchmarks/embed.py [--limit N] [--threads T] [--workers 2] [--no-dask] [--model M]
        [--runtimes bf16,onnx,onnx-int8] [--decoders 2]
--model measures real weights instead (a CLIP name or checkpoint): the way to check the int8
fidelity on the weights you use before relying on `--runtime onnx-int8`.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from shoefind.features.cache import EmbeddingCache  # noqa: E402
from shoefind.features.embed import embed_images  # noqa: E402
from shoefind.images import sha256_file  # noqa: E402
from shoefind.encoders.load import load_model  # noqa: E402
from shoefind.encoders.runtimes.choose import describe_choice  # noqa: E402
from shoefind.encoders.families.tiny import make_full_random  # noqa: E402
from shoefind.errors import ShoefindError  # noqa: E402

FAST_RUNTIMES = ("bf16", "onnx", "onnx-int8")


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).min())


def run_dask(ckpt: Path, items, data_dir: Path, workers: int, runtime: str) -> tuple[float, np.ndarray, dict]:
    """Wall time of the batches mapped over a fresh `local:N` cluster (start-up included)."""
    from prefect import flow

    from flows.cluster import on_cluster
    from shoefind.cluster import worker_threads
    from shoefind.stages.features import split, task_size
    from tasks.common import map_batches
    from tasks.features import embed_batch_task as embed_batch

    cluster = f"local:{workers}"

    @flow(name="benchmark-embed-dask")
    def embed_on_dask() -> list:
        batches = split(items, task_size(len(items), 32))
        return map_batches(embed_batch, batches, data_dir=str(data_dir), model=str(ckpt), runtime=runtime,
                           batch_size=32, threads=worker_threads(cluster, None))

    start = time.perf_counter()
    reports = on_cluster(embed_on_dask, cluster)()
    wall = time.perf_counter() - start
    enc = load_model(str(ckpt), runtime=runtime)
    cache = EmbeddingCache.for_encoder(data_dir, enc)
    info = {"workers": len({r["worker"] for r in reports}), "encoded": sum(r["encoded"] for r in reports)}
    return wall, cache.matrix([s for _, s in items]), info


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default=str(REPO.parent / "shared" / "data" / "nike-silhouettes"))
    ap.add_argument("--limit", type=int, default=0, help="use only the first N images")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--workers", type=int, default=2, help="Dask local workers")
    ap.add_argument("--dask-runtime", default="onnx-int8", help="runtime on the Dask workers")
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--model", default=None, help="CLIP name or checkpoint (default: ViT-B/32 random weights)")
    ap.add_argument("--runtimes", default=",".join(FAST_RUNTIMES), help="runtimes compared with torch fp32")
    ap.add_argument("--decoders", type=int, default=None, help="decoding threads (default: embed_images')")
    args = ap.parse_args()
    files = sorted(p for p in Path(args.dataset).rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if args.limit:
        files = files[: args.limit]
    if not files:
        sys.exit(f"no images under {args.dataset}")
    items = [(str(p), sha256_file(p)) for p in files]
    shas = [s for _, s in items]
    rows = []  # (name, images, seconds, min cosine or None, report or None)
    decoders = {"workers": args.decoders} if args.decoders else {}
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = args.model or make_full_random(Path(tmp) / "vit-b-32-random.pt")
        enc = load_model(str(ckpt), threads=args.threads, runtime="torch")
        warm_up = torch.stack([enc.load_image(p) for p, _ in items[:2]])
        enc.encode_tensors(warm_up)
        for bs in (1, 32):
            n = min(len(items), 64) if bs == 1 else len(items)  # batch 1 is slow: a sample is enough
            cache = EmbeddingCache(Path(tmp) / f"emb-{bs}", enc.cache_key)
            t = time.perf_counter()
            report = embed_images(enc, cache, items[:n], batch_size=bs, **decoders)
            dt = time.perf_counter() - t
            rows.append((f"torch fp32 batch {bs}", report.encoded, dt, None, report))
            if bs == 32:
                reference = cache.matrix(shas)
                t = time.perf_counter()
                again = embed_images(enc, EmbeddingCache(Path(tmp) / f"emb-{bs}", enc.cache_key), items, batch_size=bs)
                rerun = time.perf_counter() - t
                assert again.encoded == 0
                first = dt
        for runtime in args.runtimes.split(","):
            t = time.perf_counter()
            try:
                fast = load_model(str(ckpt), threads=args.threads, runtime=runtime)
            except ShoefindError as exc:
                print(f"({runtime}: not run here: {exc})", flush=True)
                continue
            export_s = time.perf_counter() - t  # first load exports/quantises or converts the weights
            fast.encode_tensors(warm_up)  # ORT plans memory on its first run: time the steady state
            cache = EmbeddingCache(Path(tmp) / f"emb-{runtime}", fast.cache_key)
            t = time.perf_counter()
            report = embed_images(fast, cache, items, batch_size=32, **decoders)
            dt = time.perf_counter() - t
            rows.append((f"{runtime} batch 32", report.encoded, dt, min_cosine(reference, cache.matrix(shas)), report))
            print(f"({runtime}: load {export_s:.1f}s, once per weights)", flush=True)
        auto = load_model(str(ckpt), threads=args.threads)
        print(f"--runtime auto here: {describe_choice(auto.runtime_choice)}", flush=True)
        if not args.no_dask:
            wall, vectors, info = run_dask(ckpt, items, Path(tmp) / "dask", args.workers, args.dask_runtime)
            rows.append((f"dask local:{args.workers} {args.dask_runtime}", info["encoded"], wall,
                         min_cosine(reference, vectors), None))
    base = len(items) / first
    print(f"{len(items)} images from {args.dataset} ({args.model or 'ViT-B/32, random weights'})")
    print(f"{'path':<28}{'images':>7}{'seconds':>9}{'img/s e2e':>10}{'model/s':>9}{'x torch':>9}{'min cos':>9}"
          f"{'wait %':>8}")
    for name, n, dt, cos, rep in rows:
        cos_s = f"{cos:.5f}" if cos is not None else "ref" if name == "torch fp32 batch 32" else ""
        model_rate = f"{n / rep.encode_s:>9.1f}" if rep and rep.encode_s else f"{'':>9}"
        # the share of the run the model sat waiting for decoded images (first batch included)
        wait = f"{100 * (rep.fill_s + rep.decode_wait_s) / dt:>7.1f}%" if rep else f"{'':>8}"
        print(f"{name:<28}{n:>7}{dt:>9.2f}{n / dt:>10.1f}{model_rate}{n / dt / base:>9.2f}{cos_s:>9}{wait}")
    print(f"{'cache-hit rerun':<28}{len(items):>7}{rerun:>9.3f}   ({rerun / first:.2%} of the first run)")
    print("img/s e2e: decoding + preprocessing + encoding (wall time of embed_images); model/s: encoding only; "
          "x torch: e2e against torch fp32 batch 32 e2e; wait %: the model waiting for decoded images. "
          "Dask time includes starting the cluster and loading the model on each worker.")


if __name__ == "__main__":
    main()
