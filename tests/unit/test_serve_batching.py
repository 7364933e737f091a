"""The HTTP API's encoder batching: photos of concurrent requests encoded together give each request its
own photo's embedding, and a photo that cannot be encoded fails its request alone."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from shoefind.serve.batching import EncodeBatcher


@pytest.fixture(scope="module")
def encoder(tiny_model):
    from shoefind.encoders.load import load_encoder
    return load_encoder(tiny_model, runtime="torch")


def pixels_of(encoder, tmp_path, n):
    from tests.helpers import make_photo
    return [encoder.load_image(make_photo(tmp_path / f"{i}.png", color=(20 * i, 90, 200 - 10 * i), seed=i))
            for i in range(n)]


def test_concurrent_requests_get_their_own_embeddings(encoder, tmp_path):
    pixels = pixels_of(encoder, tmp_path, 12)
    alone = np.stack([encoder.encode_tensors(p[None])[0] for p in pixels])
    batcher = EncodeBatcher(encoder, slots=2, max_batch=4)
    got, start = [None] * 12, threading.Barrier(12)

    def request(i):
        start.wait()
        got[i] = batcher.encode([pixels[i]])[0]
    threads = [threading.Thread(target=request, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    np.testing.assert_allclose(np.stack(got), alone, atol=1e-4)


def test_a_photo_that_cannot_be_encoded_fails_alone(encoder, tmp_path):
    good = pixels_of(encoder, tmp_path, 3)
    bad = good[0][:, :10]           # the wrong size for the model
    batcher = EncodeBatcher(encoder, slots=1, max_batch=8)
    results, start = {}, threading.Barrier(4)

    def request(name, p):
        start.wait()
        try:
            results[name] = batcher.encode([p])
        except Exception as exc:         # noqa: BLE001 - the error is what is checked
            results[name] = exc
    threads = [threading.Thread(target=request, args=(f"good{i}", p)) for i, p in enumerate(good)]
    threads.append(threading.Thread(target=request, args=("bad", bad)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert isinstance(results["bad"], Exception)
    assert all(isinstance(results[f"good{i}"], np.ndarray) for i in range(3))
