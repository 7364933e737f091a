"""A cached embed rerun loads no model and reads no photo: the cache key is known without the model
(shoefind.encoders.cache_key) and an unchanged dataset's table is reused (its fingerprint). A changed
photo or a changed model is still encoded."""
import json
import os
import subprocess
import sys

from shoefind.encoders.cache_key import known_cache_key
from shoefind.encoders.runtimes.capability import Capability, torch_version
from shoefind.encoders.runtimes.fidelity import read_records, record_path
from shoefind.encoders.load import forget_loaded, load_encoder
from shoefind.encoders.families.tiny import make_tiny
from shoefind.stages.features import embed_dataset
from tests.helpers import REPO, make_labeled_dataset, make_photo


def test_known_cache_key_is_the_loaded_encoders_for_every_runtime_choice(tiny_model, data_dir):
    import torch
    assert torch_version() == torch.__version__          # the fidelity record's machine key, read without torch
    bf16_cpu = Capability.simulated(flags=["avx512_bf16"])
    plain_cpu = Capability.simulated()
    for runtime, cap in (("torch", plain_cpu), ("auto", plain_cpu), ("bf16", bf16_cpu), ("auto", bf16_cpu)):
        loaded = load_encoder(tiny_model, device="cpu", runtime=runtime, capability=cap)
        known = known_cache_key(tiny_model, runtime=runtime, device="cpu", capability=cap)
        assert known is not None, runtime
        assert (known.key, known.runtime, known.model_id, known.is_random) == \
            (loaded.cache_key, loaded.runtime, loaded.model_id, True), (runtime, cap)
    # bf16 below its bar on this (simulated) machine: explicit bf16 gets its own cache, as loading says
    # the records live under the fp32 key (auto on an AVX512-BF16 CPU without AMX is onnx-int8, its own key)
    path = record_path(load_encoder(tiny_model, device="cpu", runtime="torch", capability=plain_cpu).cache_key)
    records = read_records(path)
    entry = next(k for k in records if k.startswith("bf16|") and "simulated" in k)
    records[entry]["min_cosine"] = 0.5
    path.write_text(json.dumps(records))
    forget_loaded()
    loaded = load_encoder(tiny_model, device="cpu", runtime="bf16", capability=bf16_cpu)
    known = known_cache_key(tiny_model, runtime="bf16", device="cpu", capability=bf16_cpu)
    assert known.key == loaded.cache_key and known.key.endswith("|bf16")
    # never checked on a machine: unknown until the model is loaded (which checks and records it)
    other = Capability.simulated(flags=["amx_bf16"], cpu="another CPU")
    assert known_cache_key(tiny_model, runtime="auto", device="cpu", capability=other) is None
    assert known_cache_key("open_clip:ViT-B-32/laion2b_s34b_b79k") is None
    assert known_cache_key("efficientnet-lite0") is None


def _embed_in_a_new_process(ds, data, model) -> dict:
    code = ("import json, sys; from shoefind.stages.features import embed_dataset; "
            f"r = embed_dataset({str(ds)!r}, {str(data)!r}, {model!r}); "
            "print(json.dumps({'report': r, 'imported': sorted(m for m in ('torch', 'clip.model') if m in sys.modules)}))")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_cached_rerun_loads_no_model_and_reuses_the_table_until_a_photo_or_the_model_changes(tmp_path, data_dir):
    ds = make_labeled_dataset(tmp_path / "ds", n_per_shoe=2)
    model = str(make_tiny(tmp_path / "model.pt", seed=3))
    first = embed_dataset(ds, data_dir, model, runtime="torch")
    assert first["encoded"] == 8
    table_json = data_dir / "tables" / "ds" / "table.json"
    written = table_json.stat().st_mtime_ns

    os.environ["SHOEFIND_RUNTIME"] = "torch"
    try:
        again = _embed_in_a_new_process(ds, data_dir, model)
    finally:
        del os.environ["SHOEFIND_RUNTIME"]
    assert again["imported"] == []                                    # no torch, no model
    report = again["report"]
    assert (report["total"], report["cached"], report["encoded"]) == (8, 8, 0)
    assert (report["model"], report["cache"], report["runtime"]) == (first["model"], first["cache"], "torch")
    assert table_json.stat().st_mtime_ns == written                  # the table was reused, not rebuilt

    # a photo rewritten in place, its old mtime put back: read and encoded again
    photo = next(ds.rglob("photo 0.jpg"))
    before = photo.stat()
    make_photo(photo, color=(10, 200, 10), seed=99)
    os.utime(photo, ns=(before.st_atime_ns, before.st_mtime_ns))
    changed = embed_dataset(ds, data_dir, model, runtime="torch")
    assert (changed["encoded"], changed["cached"]) == (1, 7)
    assert table_json.stat().st_mtime_ns != written

    # the same file, other weights: a new cache key, everything encoded again
    make_tiny(tmp_path / "model.pt", seed=4)
    forget_loaded()
    retrained = embed_dataset(ds, data_dir, model, runtime="torch")
    assert retrained["cache"] != first["cache"] and retrained["encoded"] == 8


def test_prompt_embeddings_are_kept_for_the_next_process(tiny_model, tmp_path, data_dir):
    """A cold infer reads the catalog's prompt embeddings from disk: the same answer, no text tower."""
    from shoefind.features.catalog import open_catalog
    from shoefind.features.text_cache import load_texts
    from shoefind.retrieve.answer import answer_photos
    ds = make_labeled_dataset(tmp_path / "ds", n_per_shoe=1)
    photo = make_photo(tmp_path / "query.jpg", color=(30, 40, 200), seed=5)
    enc = load_encoder(tiny_model, runtime="torch")
    enc._text_cache.clear()
    catalog = open_catalog(enc, ds, data_dir)
    first = answer_photos(enc, catalog, [str(photo)])
    saved = len(enc._text_cache)
    assert saved > 20
    forget_loaded()
    fresh = load_encoder(tiny_model, runtime="torch")          # as a new process has it: nothing in memory
    assert not fresh._text_cache and load_texts(fresh, catalog.cache_dir) == saved

    def no_text_tower(*args):
        raise AssertionError("a prompt was encoded again")
    fresh._text_features = no_text_tower
    again = answer_photos(fresh, open_catalog(fresh, ds, data_dir), [str(photo)])
    assert again["answers"][0]["top_shoes"] == first["answers"][0]["top_shoes"]
