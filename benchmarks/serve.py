"""`shoefind serve` under load: requests/s and p50/p95 latency with 1, 4 and 16 concurrent clients.

Two catalogs, each served by the demo model (LiT over efficientnet-lite0, `shoefind demo`):
- demo: the demo catalog (144 shoes, 1,440 photos), exact search in memory;
- synthetic: 100,000 photos of 1,000 shoes, vectors shaped like a catalog's (benchmarks/query.py builds
  them, at the model's embedding size), float16 memory-mapped, through the approximate index.
The server is this script in its own process (`_server`), started as `shoefind serve` starts it (the
same WarmService and app), so its memory is measured alone. Clients are threads with keep-alive
connections; each identify uploads a new photo (512x512 JPEG drawings of the demo's shoes that the
catalog does not have), so every request decodes and encodes a photo. Each client count is warmed
up (--warmup requests, by default 50 per client: the server's memory grows while its request
threads first run the model, ~150 MB over the first 400 requests of 16 clients, then stays flat to
the megabyte), then timed over --requests requests. rss_growth_mb is the growth of the
server's own memory (RssAnon) over the timed requests; pages of the memory-mapped vector store it
touched (reclaimable, not a leak) are rss_file_growth_mb.
    .venv/bin/python benchmarks/serve.py --demo data/demo [--catalogs demo,synthetic] [--requests 2000] [--json]
    .venv/bin/python benchmarks/serve.py --model M --dataset D --data-dir DATA --keep /var/tmp/serve-bench --json
"""
from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TARGET = {"clients": 4, "p95_ms": 250, "errors": 0}


# --- the server side --------------------------------------------------------------------------
def synthetic_service(model: str, keep: Path, photos: int, shoes: int):
    """A WarmService over a synthetic catalog of `photos` vectors (built once in `keep`)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from query import synthetic_catalog, write_cache_shards

    from shoefind.encoders.load import load_encoder
    from shoefind.serve.service import WarmService
    encoder = load_encoder(model)
    cache_dir = keep / "embeddings" / f"synthetic-{photos}-{shoes}-{encoder.embed_dim}"
    if not (cache_dir / "vector-store" / "state.json").is_file():
        write_cache_shards(cache_dir, encoder.embed_dim, photos, shoes)
    service = WarmService(encoder, synthetic_catalog(cache_dir, encoder.embed_dim, photos, shoes))
    service.warm_up()
    return service


def run_server(args) -> None:
    from shoefind.serve.server import bind, run, steady_memory, url_of
    from shoefind.serve.service import WarmService
    steady_memory()                 # as `shoefind serve` does
    sock = bind("127.0.0.1", 0)
    if args.catalog == "synthetic":
        service = synthetic_service(args.model, Path(args.keep), args.synthetic_photos, args.synthetic_shoes)
    else:
        service = WarmService.open(args.model, args.dataset, args.data_dir)
    Path(args.ready).write_text(url_of(sock))
    run(service, sock)


# --- the client side --------------------------------------------------------------------------
def upload_photos(n: int, size: int) -> list[bytes]:
    """n photos of demo shoes that no demo catalog holds (drawing numbers from 100), as JPEG uploads."""
    from PIL import Image

    from shoefind.demo.drawings import demo_shoes, draw_shoe
    shoes = demo_shoes()
    out = []
    for i in range(n):
        shoe = shoes[(i * 37) % len(shoes)]
        img = draw_shoe(shoe, random.Random(f"bench|{shoe.folder}|{100 + i}"), 96).resize((size, size), Image.BICUBIC)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def requester(kind: str, photos: list[bytes]):
    """A function (client, i) -> response for one request of `kind`."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from query import change_texts, search_texts
    words = itertools.cycle(list(itertools.islice(change_texts(), 500)))
    texts = itertools.cycle(list(itertools.islice(search_texts(), 500)))
    lock = threading.Lock()

    def nxt(it):
        with lock:
            return next(it)

    if kind == "identify":
        return lambda c, i: c.post("/identify", files={"photo": ("p.jpg", photos[i % len(photos)], "image/jpeg")})
    if kind == "change":
        return lambda c, i: c.post("/change", files={"photo": ("p.jpg", photos[i % len(photos)], "image/jpeg")},
                                   data={"words": nxt(words)})
    return lambda c, i: c.get("/search", params={"q": nxt(texts)})


def rss(pid: int) -> dict:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def load(url: str, send, clients: int, requests: int) -> tuple[list[float], int, float]:
    """(latencies ms, errors, wall seconds) of `requests` requests over `clients` threads."""
    import httpx
    counter = itertools.count()
    latencies, errors, guard = [], [0], threading.Lock()

    def client():
        with httpx.Client(base_url=url, timeout=120) as c:
            while (i := next(counter)) < requests:
                start = time.perf_counter()
                try:
                    ok = send(c, i).status_code == 200
                except httpx.HTTPError:
                    ok = False
                ms = (time.perf_counter() - start) * 1000
                with guard:
                    latencies.append(ms)
                    errors[0] += not ok
    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors[0], time.perf_counter() - start


def bench_catalog(args, catalog: str, kinds: list[str], photos: list[bytes], say) -> list[dict]:
    keep = Path(args.keep or tempfile.mkdtemp(prefix="shoefind-serve-bench-"))
    keep.mkdir(parents=True, exist_ok=True)
    ready = keep / f"ready-{catalog}-{os.getpid()}"
    ready.unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "_server", "--catalog", catalog, "--model", args.model, "--ready", str(ready),
           "--keep", str(keep), "--synthetic-photos", str(args.synthetic_photos),
           "--synthetic-shoes", str(args.synthetic_shoes)]
    if catalog == "demo":
        cmd += ["--dataset", args.dataset, "--data-dir", args.data_dir]
    log = open(keep / f"server-{catalog}.log", "w")
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    rows = []
    try:
        start = time.perf_counter()
        while not ready.is_file():
            if server.poll() is not None:
                raise SystemExit(f"the {catalog} server exited:\n" + (keep / f"server-{catalog}.log").read_text()[-3000:])
            time.sleep(0.5)
        url = ready.read_text()
        say(f"{catalog}: server ready in {time.perf_counter() - start:.0f} s at {url}")
        for kind in kinds:
            send = requester(kind, photos)
            for clients in args.clients:
                load(url, send, clients, args.warmup or max(200, 50 * clients))
                before = rss(server.pid)
                latencies, errors, wall = load(url, send, clients, args.requests)
                after = rss(server.pid)
                ms = np.array(latencies)
                row = {"catalog": catalog, "kind": kind, "clients": clients, "requests": len(ms), "errors": errors,
                       "rps": round(len(ms) / wall, 1), "p50_ms": round(float(np.percentile(ms, 50)), 1),
                       "p95_ms": round(float(np.percentile(ms, 95)), 1),
                       "rss_growth_mb": round(after["RssAnon"] - before["RssAnon"], 1),
                       "rss_file_growth_mb": round(after["RssFile"] - before["RssFile"], 1),
                       "rss_mb": round(after["VmRSS"], 1)}
                rows.append(row)
                say(f"  {kind:8s} {clients:2d} clients: {row['rps']:6.1f} req/s, p50 {row['p50_ms']:6.1f} ms, "
                    f"p95 {row['p95_ms']:6.1f} ms, {errors} errors, own memory {row['rss_growth_mb']:+.1f} MB "
                    f"(RSS {row['rss_mb']:.0f} MB)")
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        ready.unlink(missing_ok=True)
    return rows


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", nargs="?", default="bench", choices=["bench", "_server"], help=argparse.SUPPRESS)
    ap.add_argument("--demo", default=str(REPO / "data" / "demo"), help="the folder `shoefind demo` wrote")
    ap.add_argument("--model", default=None, help="default: DEMO/model/demo.lit.pt")
    ap.add_argument("--dataset", default=None, help="default: DEMO/catalog")
    ap.add_argument("--data-dir", default=str(REPO / "data"))
    ap.add_argument("--catalogs", default="demo,synthetic")
    ap.add_argument("--kinds", default="identify", help="comma list of identify, search, change")
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--requests", type=int, default=2000, help="timed requests per client count")
    ap.add_argument("--warmup", type=int, default=None,
                    help="requests before the timed ones, per client count (default: 50 per client, at least 200)")
    ap.add_argument("--upload-size", type=int, default=512, help="side of the uploaded JPEG photos")
    ap.add_argument("--synthetic-photos", type=int, default=100_000)
    ap.add_argument("--synthetic-shoes", type=int, default=1000)
    ap.add_argument("--keep", default=None, help="folder for the synthetic catalog (reused) and server logs")
    ap.add_argument("--json", action="store_true", help="one JSON object per catalog, kind and client count")
    ap.add_argument("--catalog", help=argparse.SUPPRESS)
    ap.add_argument("--ready", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.model = args.model or str(Path(args.demo) / "model" / "demo.lit.pt")
    args.dataset = args.dataset or str(Path(args.demo) / "catalog")
    if args.mode == "_server":
        run_server(args)
        return
    args.clients = [int(c) for c in args.clients.split(",")]
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if args.json else print
    say(f"{cpu_name()}, {os.cpu_count()} cores; {args.requests} requests per client count")
    photos = upload_photos(64, args.upload_size)
    rows = []
    for catalog in args.catalogs.split(","):
        rows += bench_catalog(args, catalog, args.kinds.split(","), photos, say)
    if args.json:
        for row in rows:
            print(json.dumps(row))
    out = REPO / "benchmarks" / "out" / "serve.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"cpu": cpu_name(), "cores": os.cpu_count(), "rows": rows}, indent=2))
    for row in rows:
        if row["kind"] == "identify" and row["clients"] == TARGET["clients"]:
            held = row["p95_ms"] <= TARGET["p95_ms"] and row["errors"] == TARGET["errors"]
            say(f"target ({row['catalog']}): identify p95 <= {TARGET['p95_ms']} ms with {TARGET['clients']} clients, "
                f"0 errors: {'held' if held else 'MISSED'} (p95 {row['p95_ms']} ms, {row['errors']} errors)")


if __name__ == "__main__":
    main()
