"""Stored artifacts are verified before use (issue 25 part 3): torch files are weights only and their
failures one line of shoefind's own, a trained checkpoint is the file its manifest describes, a fidelity
record whose cosines are not cosines is checked again."""
from __future__ import annotations

import json
import math
import os

import pytest
import torch

from shoefind.encoders.checkpoint_manifest import CheckpointMismatch, manifest_paths, verify_checkpoint
from shoefind.artifacts.torch_files import CodeCarryingFile, DamagedFile, load_torch_file
from shoefind.encoders.runtimes.fidelity import entry_problem

from tests.helpers import make_labeled_dataset, make_photo
from tests.helpers.cli import shoefind_here


class RunsCode:
    """A pickle that calls os.system when loaded: what a hostile checkpoint carries."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def one_line(text: str) -> str:
    assert "\n" not in text.strip() and "weights_only" not in text and "Traceback" not in text, text
    return text


def test_a_code_carrying_file_is_refused_with_shoefinds_own_line(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "model.pt"
    torch.save({"format": "shoefind-coop", "ctx": RunsCode(marker)}, path)
    with pytest.raises(CodeCarryingFile) as refused:
        load_torch_file(path, "CoOp classifier")
    message = one_line(str(refused.value))
    assert "would call posix.system" in message and "never runs such files" in message
    assert not marker.exists(), "the code in the file never ran"


def test_truncated_and_foreign_torch_files_are_one_line(tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"ctx": torch.ones(4, 8)}, good)
    half = tmp_path / "half.pt"
    half.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DamagedFile, match="cannot be read as a CoOp classifier .truncated or damaged"):
        load_torch_file(half, "CoOp classifier")
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint at all\n")
    with pytest.raises(DamagedFile) as refused:
        load_torch_file(text, "LiT checkpoint")
    one_line(str(refused.value))
    assert torch.equal(load_torch_file(good, "CoOp classifier")["ctx"], torch.ones(4, 8))


def test_the_cli_refuses_code_carrying_checkpoints_in_one_line(tmp_path, capfd):
    marker = tmp_path / "ran"
    photo = make_photo(tmp_path / "shoe.jpg")
    dataset = make_labeled_dataset(tmp_path / "catalog", n_per_shoe=1)
    for name in ("evil.pt", "evil.lit.pt"):     # a CLIP checkpoint, a LiT checkpoint
        torch.save({"format": "shoefind-lit", "state_dict": RunsCode(marker)}, tmp_path / name)
        code, out, err = shoefind_here(capfd, "infer", photo, "--model", tmp_path / name, "--dataset", dataset,
                                       "--data-dir", tmp_path / "data")
        assert code == 2, err
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "would call posix.system" in errors[0], err
        one_line(errors[0])
        assert "Traceback" not in err
    assert not marker.exists()


def _trained(tmp_path, content: bytes = b"trained weights"):
    from shoefind.learn.checkpoint import write_model
    path = tmp_path / "m.lit.pt"
    write_model(path, lambda tmp: tmp.write_bytes(content), {"method": "lit"})
    return path


def test_a_checkpoint_is_compared_with_the_sha256_its_manifest_recorded(tmp_path):
    path = _trained(tmp_path)
    assert verify_checkpoint(path)["checkpoint_sha256"]
    path.write_bytes(b"trained weightz")           # edited after training (same size)
    with pytest.raises(CheckpointMismatch, match="is not the file its manifest m.lit.pt.json describes"):
        verify_checkpoint(path)
    path.write_bytes(b"trained")                   # truncated
    with pytest.raises(CheckpointMismatch, match="changed after training"):
        verify_checkpoint(path)


def test_an_unreadable_manifest_is_refused_not_skipped(tmp_path):
    path = _trained(tmp_path)
    manifest = manifest_paths(path)[0]
    text = manifest.read_text()
    manifest.write_text(text[: len(text) // 2])     # truncated
    with pytest.raises(CheckpointMismatch, match="truncated or is not a shoefind manifest"):
        verify_checkpoint(path)
    manifest.write_text(json.dumps(json.loads(text) | {"checkpoint_sha256": "edited"}))
    with pytest.raises(CheckpointMismatch, match="records no valid checkpoint_sha256"):
        verify_checkpoint(path)
    manifest.unlink()                              # no manifest: nothing to compare with
    assert verify_checkpoint(path) is None


def test_older_finetune_manifests_without_a_checksum_still_load(tmp_path):
    path = tmp_path / "ft.pt"
    path.write_bytes(b"weights")
    manifest_paths(path)[0].write_text(json.dumps({"format": "shoefind-finetune", "version": 1}))
    assert verify_checkpoint(path) is None
    manifest_paths(path)[0].write_text(json.dumps({"format": "shoefind-finetune", "checkpoint_sha256": "0" * 64}))
    with pytest.raises(CheckpointMismatch):
        verify_checkpoint(path)


@pytest.mark.parametrize("value", ["0.999", None, math.nan, math.inf, 7, -3, True, [0.99]])
def test_a_recorded_cosine_that_is_not_a_cosine_is_a_problem(value):
    assert entry_problem({"min_cosine": value}) is not None
    assert entry_problem({"min_cosine": 0.995, "image_min_cosine": value}) is not None
    assert entry_problem({"min_cosine": 0.995, "image_min_cosine": 0.999}) is None
    assert entry_problem("not a record") is not None


GOOD_META = {"input_resolution": 224, "embed_dim": 512, "logit_scale": 100.0, "context_length": 77}


@pytest.mark.parametrize("field, value", [("input_resolution", "abc"), ("input_resolution", None),
                                          ("input_resolution", -5), ("input_resolution", 224.5),
                                          ("input_resolution", math.inf), ("embed_dim", 10 ** 9),
                                          ("embed_dim", True), ("logit_scale", 1000.0), ("logit_scale", 0.0),
                                          ("logit_scale", math.nan), ("context_length", 1), ("context_length", [77])])
def test_export_numbers_out_of_range_are_named_in_one_line(field, value):
    from shoefind.encoders.runtimes.onnx_manifest import ExportProblem, check_numbers
    check_numbers(GOOD_META)
    check_numbers(GOOD_META | {"logit_scale": 14.285714149475098, "input_resolution": 32.0})
    with pytest.raises(ExportProblem, match=f"meta.json says {field} ") as problem:
        check_numbers(GOOD_META | {field: value})
    assert "\n" not in str(problem.value)


def test_suspect_embeddings_are_moved_aside_wherever_the_cache_is_opened(tmp_path, caplog):
    """Shards written before a foreign ONNX graph was replaced (meta.json's suspect_embeddings, carried by
    the encoder) leave the cache when it is opened; later ones stay."""
    import time
    import numpy as np
    from shoefind.features import invalidate, vector_index
    from shoefind.features.cache import EmbeddingCache
    assert invalidate.STORE_DIR == vector_index.STORE_DIR

    class Encoder:
        cache_key, embed_dim, suspect_embeddings = "m|int8r", 4, {}
    rows = np.eye(4, dtype=np.float32)
    cache = EmbeddingCache.for_encoder(tmp_path, Encoder())
    cache.add(["a" * 64, "b" * 64], rows[:2])
    (cache.dir / "texts-v2.npz").write_bytes(b"prompts")
    (cache.dir / "vector-store").mkdir()
    Encoder.suspect_embeddings = {"m|int8r": time.time_ns()}
    with caplog.at_level("WARNING"):
        later = EmbeddingCache.for_encoder(tmp_path, Encoder())
    assert len(later) == 0 and "1 embedding-cache shards" in caplog.text and "moved to" in caplog.text
    assert len(list(cache.dir.glob("invalidated/*/shard-*.npz"))) == 1
    assert not (cache.dir / "texts-v2.npz").exists() and not (cache.dir / "vector-store").exists()
    later.add(["c" * 64], rows[2:3])
    caplog.clear()
    with caplog.at_level("WARNING"):
        again = EmbeddingCache.for_encoder(tmp_path, Encoder())
    assert len(again) == 1 and "c" * 64 in again, "what was written after the replacement stays"
    assert not caplog.records, "nothing older left: nothing said"
