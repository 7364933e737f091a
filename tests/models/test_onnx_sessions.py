"""The torch-free encoder (shoefind.encoders.runtimes.onnx_sessions): a model exported before runs from its ONNX
files alone, with the embeddings and answers of the torch-backed encoder that made them."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnxruntime  # noqa: F401  requirements.txt installs it: missing, the set-up is broken (no skip)
import pytest
import torch

from shoefind.encoders.load import forget_loaded, load_model
from shoefind.encoders.families.tiny import make_tiny

from tests.helpers import REPO, make_labeled_dataset, make_photo
from tests.helpers.cli import shoefind

# none of the fidelity check's prompts: dynamic int8 scales activations per batch, so a prompt memoised from
# another batch differs a little (within the fidelity bar)
PROMPTS = ["a photo of a green high-top sneaker.", "a blue low shoe", "Nike Dunk Low Grey Fog", "white sole", "x",
           "a photo of a shoe with a very long description that goes on and on about its laces and its sole"]


@pytest.fixture
def weights(tmp_path):
    return str(make_tiny(tmp_path / "models" / "w.pt", seed=11))


@pytest.mark.parametrize("runtime", ["onnx", "onnx-int8"])
def test_sessions_give_the_embeddings_of_the_encoder_that_exported(weights, tmp_path, runtime):
    forget_loaded()
    full = load_model(weights, runtime=runtime)          # loads torch, exports, records fidelity
    assert type(full).__name__ == "OnnxClipEncoder"
    forget_loaded()
    light = load_model(weights, runtime=runtime)
    assert type(light).__name__ == "SessionEncoder"
    assert (light.cache_key, light.model_id, light.runtime, light.embed_dim, light.input_resolution) == (
        full.cache_key, full.model_id, full.runtime, full.embed_dim, full.input_resolution)
    assert light.logit_scale == pytest.approx(full.logit_scale)
    photos = [make_photo(tmp_path / f"{i}.jpg", color=(40 * i, 200 - 30 * i, 90), seed=i) for i in range(5)]
    np.testing.assert_array_equal(np.stack([light.load_image(p) for p in photos]),
                                  torch.stack([full.load_image(p) for p in photos]).numpy())
    np.testing.assert_allclose(light.encode_images(photos), full.encode_images(photos), atol=1e-6)
    # fp32: the ONNX text graph against torch's own pass; int8: the same quantised graph
    text_light, text_full = light.encode_texts(PROMPTS), full.encode_texts(PROMPTS)
    np.testing.assert_allclose(text_light, text_full, atol=1e-5 if runtime == "onnx" else 1e-6)
    scores = light.encode_images(photos) @ text_light.T
    assert (scores.argmax(1) == (full.encode_images(photos) @ text_full.T).argmax(1)).all()


def test_what_the_sessions_lack_comes_from_the_full_model(weights):
    forget_loaded()
    load_model(weights, runtime="onnx")
    forget_loaded()
    light = load_model(weights, runtime="onnx")
    assert type(light).__name__ == "SessionEncoder"
    assert isinstance(light.model, torch.nn.Module)          # CoOp and learning read the torch model
    assert light.full_encoder().runtime == "onnx"
    assert load_model(weights, runtime="onnx", torch_free=False) is not light


def test_no_sessions_before_an_export_or_for_torch(weights):
    forget_loaded()
    assert type(load_model(weights, runtime="torch")).__name__ == "ClipEncoder"
    forget_loaded()   # never exported: the usual load (which exports)
    assert type(load_model(weights, runtime="onnx")).__name__ == "OnnxClipEncoder"


def test_a_cold_infer_imports_no_torch_and_answers_as_the_full_model(weights, tmp_path):
    dataset = make_labeled_dataset(tmp_path / "catalog", n_per_shoe=3)
    photo = make_photo(tmp_path / "query.jpg", color=(30, 60, 200), seed=9)
    args = ["infer", str(photo), "--dataset", str(dataset), "--model", weights, "--data-dir", str(tmp_path / "data"),
            "--runtime", "onnx-int8", "--json"]
    code, out, err = shoefind(*args)          # first: torch model, export, fidelity check, catalog embedded
    assert code == 0, err
    first = json.loads(out)
    probe = ("import json, sys\nfrom shoefind.cli.main import main\n"
             "try:\n    main(sys.argv[1:])\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
             "print(json.dumps({'torch': 'torch' in sys.modules}), file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", probe, *args], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stderr.strip().splitlines()[-1]) == {"torch": False}
    again = json.loads(done.stdout)
    a, b = first["answers"][0], again["answers"][0]
    assert [s["shoe"] for s in a["top_shoes"]] == [s["shoe"] for s in b["top_shoes"]]
    assert [s["score"] for s in a["top_shoes"]] == pytest.approx([s["score"] for s in b["top_shoes"]], abs=1e-4)
    assert {k: v["value"] for k, v in a["attributes"].items()} == {k: v["value"] for k, v in b["attributes"].items()}


def test_a_damaged_export_is_made_again(weights):
    forget_loaded()
    first = load_model(weights, runtime="onnx-int8")
    image = first.image_session._model_path
    forget_loaded()
    with open(image, "r+b") as fh:        # a crash or a disk error left half a file
        fh.truncate(1000)
    again = load_model(weights, runtime="onnx-int8")    # the sessions cannot open it: the full load re-exports
    assert type(again).__name__ == "OnnxClipEncoder"
    assert os.path.getsize(image) > 100_000, "exported again"
    assert again.encode_texts(["a red shoe"]).shape == (1, again.embed_dim)
    forget_loaded()
    assert type(load_model(weights, runtime="onnx-int8")).__name__ == "SessionEncoder"
