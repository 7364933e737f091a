"""The embedding cache across processes: a run killed mid-way loses nothing and a rerun continues,
concurrent runs encode each image once, and the claims of a killed run are taken over (each test
starts Python processes, so they live here rather than with the cache's unit tests)."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np

from shoefind.features.cache import EmbeddingCache
from shoefind.features.embed import embed_images
from shoefind.encoders.load import load_model

from tests.helpers import REPO, photo_items


def test_killed_run_loses_nothing_and_rerun_continues(tiny_model, tmp_path):
    items = photo_items(tmp_path / "img", 24)
    script = textwrap.dedent(f"""
        import time, sys
        sys.path.insert(0, {str(REPO)!r})
        from shoefind.features.cache import EmbeddingCache
        from shoefind.features.embed import embed_images
        from shoefind.encoders.load import load_model
        enc = load_model({tiny_model!r})
        items = {items!r}
        embed_images(enc, EmbeddingCache({str(tmp_path / 'emb')!r}, enc.cache_key), items, batch_size=4,
                     progress=lambda n: time.sleep(0.15 * n))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    enc = load_model(tiny_model)
    shard_dir = EmbeddingCache(tmp_path / "emb", enc.cache_key).dir
    deadline = time.time() + 60
    while len(list(shard_dir.glob("shard-*.npz"))) < 2 and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    survived = len(EmbeddingCache(tmp_path / "emb", enc.cache_key))
    assert 8 <= survived < 24
    cache = EmbeddingCache(tmp_path / "emb", enc.cache_key)
    report = embed_images(enc, cache, items, batch_size=4)
    assert report.cached == survived and report.encoded == 24 - survived
    assert len(EmbeddingCache(tmp_path / "emb", enc.cache_key)) == 24


def _shard_rows(cache_dir):
    rows = 0
    for shard in cache_dir.glob("shard-*.npz"):
        with np.load(shard) as z:
            rows += len(z["sha256"])
    return rows


CONCURRENT = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, {repo!r})
from shoefind.features.cache import EmbeddingCache
from shoefind.features.embed import embed_images
from shoefind.encoders.load import load_model
enc = load_model({model!r})
items = {items!r}
me, folder = sys.argv[1], Path({signals!r})
(folder / f"ready-{{me}}").touch()
while not (folder / "go").exists():   # both start together, so their work overlaps
    time.sleep(0.01)
report = embed_images(enc, EmbeddingCache({emb!r}, enc.cache_key), items, batch_size=2,
                      progress=lambda n: time.sleep(0.03 * n))
print(json.dumps(report.as_dict()))
"""


def _start_together(procs, signals, deadline_s=120):
    deadline = time.time() + deadline_s
    while len(list(signals.glob("ready-*"))) < len(procs) and time.time() < deadline:
        time.sleep(0.05)
    (signals / "go").touch()


def test_concurrent_embeds_encode_each_image_once(tiny_model, tmp_path):
    items = photo_items(tmp_path / "img", 16)
    signals = tmp_path / "signals"
    signals.mkdir()
    script = CONCURRENT.format(repo=str(REPO), model=tiny_model, items=items, signals=str(signals),
                               emb=str(tmp_path / "emb"))
    procs = [subprocess.Popen([sys.executable, "-c", script, str(i)], stdout=subprocess.PIPE, text=True)
             for i in (0, 1)]
    _start_together(procs, signals)
    outs = [p.communicate(timeout=180)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    reports = [json.loads(o.strip().splitlines()[-1]) for o in outs]
    # every image encoded by exactly one of the two runs; both runs end with all 16 known
    assert sum(r["encoded"] for r in reports) == 16
    assert all(r["encoded"] + r["cached"] == 16 for r in reports)
    assert all(r["encoded"] > 0 for r in reports)   # the work was shared, not serialised
    enc = load_model(tiny_model)
    cache = EmbeddingCache(tmp_path / "emb", enc.cache_key)
    assert _shard_rows(cache.dir) == 16 and not cache.missing([s for _, s in items])
    assert not list((cache.dir / "claims").iterdir())   # no claim left behind
    assert cache.compact() == 1 and len(EmbeddingCache(tmp_path / "emb", enc.cache_key)) == 16


def test_claims_of_a_killed_run_are_taken_over(tiny_model, tmp_path):
    # a process holding claims dies: its lock goes with it, so the next run encodes its images
    enc = load_model(tiny_model)
    items = photo_items(tmp_path / "img", 6)
    cache_dir = EmbeddingCache(tmp_path / "emb", enc.cache_key).dir
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from shoefind.features.cache import EmbeddingCache
        c = EmbeddingCache({str(tmp_path / 'emb')!r}, {enc.cache_key!r})
        print(c.claim({[s for _, s in items[:3]]!r}), flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().startswith("([")
    probe = EmbeddingCache(tmp_path / "emb", enc.cache_key)
    claimed, busy = probe.claim([s for _, s in items])
    assert sorted(busy) == sorted(s for _, s in items[:3])   # held by the other process
    assert sorted(claimed) == sorted(s for _, s in items[3:])
    probe.release_all()
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    report = embed_images(enc, EmbeddingCache(tmp_path / "emb", enc.cache_key), items, batch_size=4)
    assert (report.encoded, report.cached) == (6, 0) and _shard_rows(cache_dir) == 6
