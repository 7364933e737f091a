"""--runtime auto: the fastest runtime that keeps fidelity on this machine, checked once and recorded.

The machine's capability is simulated (a `Capability` passed in), so the choice for CPUs
with and without bf16 instructions, and with a GPU, is checked on any machine. The model
layer is real: a tiny random CLIP run in fp32, bf16 and ONNX Runtime.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from shoefind.encoders.runtimes.capability import Capability, detect_cpu
from shoefind.encoders.runtimes.fidelity import record_entry_key, record_path
from shoefind.encoders.load import load_model
from shoefind.encoders.runtimes.onnx_runtime import onnx_available
from shoefind.encoders.runtimes.choose import candidates, describe_choice, resolve_device
from shoefind.errors import UserError

from tests.helpers import make_photo

AMX = Capability.simulated({"amx_bf16", "amx_tile"}, cpu="Xeon with AMX")
AVX512_BF16 = Capability.simulated({"avx512_bf16"}, cpu="EPYC with AVX512-BF16")
PLAIN = Capability.simulated(cpu="CPU without bf16")
GPU = Capability.simulated(cuda="simulated GPU")
FP32_FALLBACK = ["onnx-int8", "onnx", "torch"] if onnx_available() else ["torch"]
ONNX = FP32_FALLBACK[:-1]


def test_candidates_follow_the_capability():
    assert candidates("auto", "cpu", AMX) == ["bf16"] + FP32_FALLBACK
    # AVX512-BF16 without AMX: bf16 measured slower than ONNX Runtime (see runtimes.py)
    assert candidates("auto", "cpu", AVX512_BF16) == ONNX + ["bf16", "torch"]
    assert candidates("auto", "cpu", PLAIN) == FP32_FALLBACK
    assert resolve_device("auto", GPU) == "cuda" and resolve_device("auto", PLAIN) == "cpu"
    assert candidates("auto", "cuda", GPU) == ["fp16", "torch"]
    assert candidates("BF16", "cpu", PLAIN) == ["bf16"], "an explicit runtime is used as asked"


def test_impossible_choices_are_refused_with_what_to_do():
    with pytest.raises(UserError, match="no CUDA GPU"):
        resolve_device("cuda", PLAIN)
    with pytest.raises(UserError, match="fp16"):
        candidates("bf16", "cuda", GPU)
    with pytest.raises(UserError, match="CUDA GPU"):
        candidates("fp16", "cpu", PLAIN)
    with pytest.raises(UserError, match="choose auto, cpu or cuda"):
        resolve_device("tpu", PLAIN)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("model name\t: Some Xeon\nflags\t\t: fpu sse avx512f avx512_bf16 amx_bf16 amx_tile\n")
    assert detect_cpu(info) == ("Some Xeon", frozenset({"avx512_bf16", "amx_bf16", "amx_tile"}))
    info.write_text("model name\t: Old CPU\nflags\t\t: fpu sse avx2\n")
    assert detect_cpu(info) == ("Old CPU", frozenset())


def test_bf16_machine_gets_bf16_and_records_its_fidelity(tiny_model, data_dir):
    for i in range(3):
        make_photo(data_dir / "images" / "Nike_Low_Red_Plain Sole_A" / f"{i}.jpg", seed=i)
    enc = load_model(tiny_model, capability=AMX)
    assert enc.runtime == "bf16"
    record = json.loads(record_path(load_model(tiny_model, runtime="torch").cache_key).read_text())
    (entry,) = [v for k, v in record.items() if k.startswith("bf16|")]
    assert entry["runtime"] == "bf16" and entry["min_cosine"] >= 0.999
    assert entry["capability"]["amx"] is True and entry["date"].startswith("20")
    assert entry["sample"].startswith("3 photos from"), "real photos of the data folder when there are some"
    # within the bar, bf16 shares the fp32 cache: the same photos are not encoded twice
    assert enc.cache_key == load_model(tiny_model, runtime="torch").cache_key
    assert "bf16" in describe_choice(enc.runtime_choice)


def test_plain_cpu_gets_the_onnx_path(tiny_model, data_dir):
    enc = load_model(tiny_model, capability=PLAIN)
    assert enc.runtime == FP32_FALLBACK[0]
    if enc.runtime == "onnx-int8":
        assert enc.runtime_choice["fidelity"]["min_cosine"] >= 0.99


def test_avx512_bf16_machine_gets_onnx_and_int8_below_its_bar_falls_back_to_exact_onnx(tiny_model, data_dir):
    exact = load_model(tiny_model, runtime="torch")
    first = load_model(tiny_model, capability=AVX512_BF16)
    assert first.runtime in ("onnx-int8", "onnx"), "int8 when the tiny random model passes its 0.99 bar"
    path = record_path(exact.cache_key)
    record = json.loads(path.read_text())
    (key,) = [k for k in record if k.startswith(record_entry_key("onnx-int8", AVX512_BF16).split("|")[0] + "|")]
    record[key]["min_cosine"] = 0.5
    path.write_text(json.dumps(record))
    enc = load_model(tiny_model, capability=AVX512_BF16)
    assert enc.runtime == "onnx" and enc.cache_key == exact.cache_key, "exact onnx shares the fp32 cache"
    assert enc.runtime_choice["fell_back_from"] == [{"runtime": "onnx-int8", "min_cosine": 0.5, "bar": 0.99}]


def test_recorded_check_is_reused_and_a_failed_one_falls_back(tiny_model, data_dir, caplog):
    first = load_model(tiny_model, capability=AMX)
    path = record_path(load_model(tiny_model, runtime="torch").cache_key)
    assert first.runtime == "bf16" and not first.runtime_choice["fidelity"]["reused"]
    assert load_model(tiny_model, capability=AMX).runtime_choice["fidelity"]["reused"]
    # the same model measured below the bar on this machine: the next runtime, and it says so
    record = json.loads(path.read_text())
    key = next(k for k in record if k.startswith("bf16|"))
    record[key]["min_cosine"] = 0.95
    path.write_text(json.dumps(record))
    with caplog.at_level("WARNING", logger="shoefind.runtime"):
        enc = load_model(tiny_model, capability=AMX)
    assert enc.runtime == FP32_FALLBACK[0]
    assert enc.runtime_choice["fell_back_from"] == [{"runtime": "bf16", "min_cosine": 0.95, "bar": 0.999}]
    assert "below the bar" in caplog.text and "falling back" in caplog.text


def test_explicit_bf16_below_the_bar_keeps_its_own_cache(tiny_model, data_dir):
    exact = load_model(tiny_model, runtime="torch")
    load_model(tiny_model, runtime="bf16", capability=PLAIN)
    path = record_path(exact.cache_key)
    record = json.loads(path.read_text())
    for entry in record.values():
        entry["min_cosine"] = 0.9
    path.write_text(json.dumps(record))
    enc = load_model(tiny_model, runtime="bf16", capability=PLAIN)
    assert enc.runtime == "bf16" and enc.cache_key != exact.cache_key


def test_bf16_embeddings_match_fp32(tiny_model, data_dir, tmp_path):
    exact = load_model(tiny_model, runtime="torch")
    fast = load_model(tiny_model, runtime="bf16", capability=AMX)
    pixels = torch.stack([exact.load_image(make_photo(tmp_path / f"{i}.png", seed=i)) for i in range(6)])
    a, b = exact.encode_tensors(pixels), fast.encode_tensors(pixels)
    assert fast.half_model.visual.conv1.weight.dtype == torch.bfloat16
    assert fast.model.visual.conv1.weight.dtype == torch.float32, "prompt learning trains the fp32 model"
    assert (a * b).sum(1).min() >= 0.999
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1, atol=1e-5)
