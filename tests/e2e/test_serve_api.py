"""`shoefind serve`: the HTTP API as a client sees it, a real server in its own process on 127.0.0.1 with
the demo model and catalog: every route, bad uploads, the token, the size and pixel limits."""
from __future__ import annotations

import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.helpers import REPO, png_header_only
from tests.helpers.cli import shoefind

TOKEN = "test-token-0123456789abcdef"
MAX_PIXELS = 4_000_000
SHOE = "Nike_High_Red_Plain Sole_Apex Red"          # a demo catalog shoe


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp: Path, demo_lit, *extra: str, env: dict | None = None):
    """`shoefind serve` on a free port, waited for until /health answers; (process, base url, log path)."""
    data = tmp / "data"
    if not (data / "embeddings").is_dir():     # the demo's embeddings, so nothing is encoded again
        shutil.copytree(demo_lit.data_dir / "embeddings", data / "embeddings")
    port = free_port()
    log = tmp / f"serve-{port}.log"
    proc = subprocess.Popen([sys.executable, "-m", "shoefind.cli.main", "serve", "--model", str(demo_lit.model),
                             "--dataset", str(demo_lit.catalog), "--data-dir", str(data), "--port", str(port),
                             *extra], cwd=REPO, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True, env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url, log
        except httpx.HTTPError:
            pass
        assert time.time() < deadline, "the API did not start in 300 s:\n" + log.read_text()
        time.sleep(0.5)


def stop(proc) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def api(demo_lit, tmp_path_factory):
    """The API with a token (from the environment, as the help recommends) and small limits, so tests
    can reach them: 1 MB, 4 million pixels."""
    proc, url, log = start_server(tmp_path_factory.mktemp("serve"), demo_lit, "--max-upload-mb", "1",
                                  "--max-pixels", str(MAX_PIXELS), env={"SHOEFIND_SERVE_TOKEN": TOKEN})
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
    yield client
    client.close()
    stop(proc)
    assert "Traceback" not in log.read_text(), log.read_text()


def new_drawing(demo_lit, folder: str = SHOE, k: int = 10) -> bytes:
    """A photo of a catalog shoe that is not in the catalog: the demo's drawing number k (the catalog has 0-9)."""
    from shoefind.demo.drawings import demo_shoes, draw_shoe
    shoe = next(s for s in demo_shoes() if s.folder == folder)
    buf = io.BytesIO()
    draw_shoe(shoe, random.Random(f"0|{folder}|{k}"), 96).save(buf, format="PNG")
    return buf.getvalue()


def upload(name: str, data: bytes, mime: str = "image/png") -> dict:
    return {"photo": (name, data, mime)}


# --- the routes ---------------------------------------------------------------------------------
def test_health_and_docs_need_no_token(api):
    bare = httpx.Client(base_url=str(api.base_url), timeout=30)
    health = bare.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert bare.get("/docs").status_code == 200 and "swagger" in bare.get("/docs").text.lower()
    paths = bare.get("/openapi.json").json()["paths"]
    assert {"/health", "/model", "/identify", "/change", "/search"} <= set(paths)
    assert "photo" in json.dumps(paths["/identify"])        # the multipart field is documented


def test_model_says_what_answers(api, demo_lit):
    info = api.get("/model").json()
    assert info["model"] and info["has_text"] is True and info["random_weights"] is False
    assert info["catalog"]["shoes"] == 144 and info["catalog"]["photos"] == 1440
    assert info["catalog"]["attributes"]["brand"] == sorted(["Nike", "Adidas", "Converse", "New Balance", "Vans",
                                                             "Puma"])
    assert info["identification"]["method"] == "zeroshot"
    assert 0 < info["open_set"]["threshold"] < 1 and "held out" in info["open_set"]["calibration"]
    assert info["limits"] == {"max_upload_bytes": 1024 * 1024, "max_pixels": MAX_PIXELS}


def test_identify_an_upload_names_the_shoe_and_its_closeness(api, demo_lit):
    r = api.post("/identify", files=upload("apex.png", new_drawing(demo_lit)), data={"k": "3"})
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["shoe"]["shoe"] == "Apex Red" and a["shoe"]["brand"] == "Nike" and len(a["top_shoes"]) == 3
    assert a["in_catalog"] is False and a["not_in_catalog"] is False and "message" not in a
    assert a["open_set"]["nearest_similarity"] >= a["open_set"]["threshold"]
    assert a["attributes"]["color"]["value"] == "Red"
    near = a["nearest_photos"][0]
    assert near["path"].startswith(SHOE + "/") and not near["path"].startswith("/")   # no server paths
    assert len(near["sha256"]) == 64


def test_identify_a_catalog_photo_by_path_or_sha(api, demo_lit):
    rel = f"{SHOE}/photo-03.png"
    by_path = api.post("/identify", data={"catalog_id": rel}).json()
    assert by_path["in_catalog"] is True and by_path["catalog_shoe"]["shoe"] == "Apex Red"
    assert by_path["photo"] == rel and by_path["open_set"]["nearest_similarity"] == pytest.approx(1.0, abs=1e-3)
    sha = next(p["sha256"] for p in by_path["nearest_photos"] if p["path"] == rel)
    by_sha = api.post("/identify", data={"catalog_id": sha}).json()
    assert by_sha["catalog_shoe"] == by_path["catalog_shoe"]
    photo = api.get(f"/photos/{sha}")
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/png"
    assert photo.content == (demo_lit.catalog / rel).read_bytes()


def test_a_shoe_outside_the_catalog_is_said_so_with_suggestions(api, shared_data):
    real = next((shared_data / "findyourshoes-labeled").glob("*Chicago*/*"))
    r = api.post("/identify", files=upload(real.name, real.read_bytes(), "image/jpeg"))
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["not_in_catalog"] is True and a["message"] == "not like any shoe in this catalog"
    assert a["open_set"]["nearest_similarity"] < a["open_set"]["threshold"]
    assert a["suggestions"] == [s["shoe"] for s in a["top_shoes"][:3]]


def test_change_in_words(api, demo_lit):
    r = api.post("/change", files=upload("apex.png", new_drawing(demo_lit)),
                 data={"words": "same brand but blue", "results": "5"})
    assert r.status_code == 200, r.text
    change = r.json()["change"]
    # the catalog's blue Nikes are its three tops; the high one, like the photo, first
    assert change["excluded"] == "Apex Red" and [s["shoe"] for s in change["results"]][0] == "Apex Blue"
    assert {s["shoe"] for s in change["results"]} == {"Apex Blue", "Vortex Blue", "Comet Blue"}
    by_id = api.post("/change", data={"words": "same shoe but green", "catalog_id": f"{SHOE}/photo-00.png"}).json()
    assert by_id["change"]["results"][0]["shoe"] == "Apex Green"
    empty = api.post("/change", data={"words": "  ", "catalog_id": f"{SHOE}/photo-00.png"})
    assert empty.status_code == 400 and "empty" in empty.json()["error"]


def test_search_with_filters(api):
    r = api.get("/search", params={"q": "red high top", "brand": "nike", "k": 4})
    assert r.status_code == 200, r.text
    found = r.json()
    assert found["filters"] == {"brand": "Nike"} and len(found["results"]) == 4
    assert all(s["brand"] == "Nike" for s in found["results"])
    assert found["results"][0]["shoe"] == "Apex Red"
    assert not found["results"][0]["photo"].startswith("/")
    unknown = api.get("/search", params={"q": "red", "brand": "Zebrashoe"})
    assert unknown.status_code == 400 and "unknown brand 'Zebrashoe'" in unknown.json()["error"]
    assert api.get("/search").status_code == 422                    # q is required
    assert api.get("/search", params={"q": "red", "k": 0}).status_code == 422


def test_concurrent_requests_all_answer(api, demo_lit):
    photos = [new_drawing(demo_lit, k=10 + i) for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda p: api.post("/identify", files=upload("p.png", p)), photos))
    assert [r.status_code for r in answers] == [200] * 8
    assert {r.json()["shoe"]["shoe"] for r in answers} == {"Apex Red"}


# --- bad uploads: one clear error each, and the server keeps serving ----------------------------
def test_bad_uploads_get_a_clear_4xx(api, demo_lit, tmp_path):
    from PIL import Image
    good = new_drawing(demo_lit)
    bomb = png_header_only(tmp_path / "bomb.png", 30000, 30000).read_bytes()
    big = io.BytesIO()
    Image.new("RGB", (2500, 2000), (90, 30, 30)).save(big, format="PNG")        # 5 million pixels, small file
    cases = {
        "html": (upload("x.jpg", b"<!doctype html><html>no</html>", "image/jpeg"), 415, "HTML"),
        "noise": (upload("x.jpg", os.urandom(5000), "image/jpeg"), 415, "not a readable image"),
        "empty": (upload("x.png", b""), 400, "empty"),
        "truncated": (upload("x.png", good[: len(good) // 2]), 422, "truncated"),
        "bomb": (upload("bomb.png", bomb), 413, "pixels"),
        "pixels": (upload("big.png", big.getvalue()), 413, f"{MAX_PIXELS:,} pixels"),
        "bytes": (upload("huge.png", good + os.urandom(1100 * 1024)), 413, "up to 1 MB"),
    }
    for name, (files, status, words) in cases.items():
        r = api.post("/identify", files=files)
        assert (r.status_code, name) == (status, name), r.text
        assert words in r.json()["error"], (name, r.json())
    assert api.post("/identify").status_code == 400                                  # no photo at all
    both = api.post("/identify", files=upload("a.png", good), data={"catalog_id": f"{SHOE}/photo-00.png"})
    assert both.status_code == 400 and "not both" in both.json()["error"]
    for missing in ("0" * 64, "../../etc/passwd", "Nike_High_Red_Plain Sole_Apex Red/nope.png"):
        r = api.post("/identify", data={"catalog_id": missing})
        assert r.status_code == 404 and "no catalog photo" in r.json()["error"]
    assert api.post("/identify", files=upload("a.png", good), data={"k": "0"}).status_code == 422
    assert api.get("/health").status_code == 200


def test_a_body_announced_too_large_is_refused_before_it_is_read(api):
    """50 MB announced, 10 bytes sent: the answer comes at once, without waiting for the rest."""
    host, port = api.base_url.host, api.base_url.port
    with socket.create_connection((host, port), timeout=30) as conn:
        conn.sendall(f"POST /identify HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {TOKEN}\r\n"
                     "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 52428800\r\n\r\n"
                     "0123456789".encode())
        said = b""
        while b"}" not in said and (chunk := conn.recv(4096)):     # the status line, headers, then the JSON
            said += chunk
    assert said.startswith(b"HTTP/1.1 413") and b"up to 1 MB" in said


# --- who may ask --------------------------------------------------------------------------------
def test_the_token_is_required(api):
    bare = httpx.Client(base_url=str(api.base_url), timeout=30)
    for client, said in ((bare, "bearer token is required"),
                         (httpx.Client(base_url=str(api.base_url), timeout=30,
                                       headers={"Authorization": "Bearer wrong-token-0123456789"}), "not this server")):
        r = client.get("/model")
        assert r.status_code == 401 and said in r.json()["error"] and r.headers["www-authenticate"] == "Bearer"
        assert client.post("/identify", data={"catalog_id": f"{SHOE}/photo-00.png"}).status_code == 401
        assert client.get("/search", params={"q": "red"}).status_code == 401
    assert api.get("/model").status_code == 200


def test_requests_for_another_host_name_are_refused(api):
    r = api.get("/model", headers={"Host": "attacker.example"})
    assert r.status_code == 400 and "localhost" in r.json()["error"]


def test_without_a_token_loopback_serves_anyone_here(demo_lit, tmp_path):
    proc, url, _ = start_server(tmp_path, demo_lit)
    try:
        r = httpx.post(url + "/identify", data={"catalog_id": f"{SHOE}/photo-00.png"}, timeout=120)
        assert r.status_code == 200 and r.json()["catalog_shoe"]["shoe"] == "Apex Red"
    finally:
        stop(proc)


def test_beyond_loopback_needs_a_token(tmp_path, demo_lit):
    """Refused at once (one line, exit 2), before the model loads."""
    start = time.time()
    code, out, err = shoefind("serve", "--host", "0.0.0.0", "--port", "0", "--model", demo_lit.model,
                              "--dataset", demo_lit.catalog, "--data-dir", tmp_path / "data",
                              env={k: v for k, v in os.environ.items() if k != "SHOEFIND_SERVE_TOKEN"})
    assert code == 2 and "error:" in err and "--token" in err and "Traceback" not in err
    code, _, err = shoefind("serve", "--host", "0.0.0.0", "--port", "0", "--token", "short",
                            "--dataset", demo_lit.catalog, "--data-dir", tmp_path / "data")
    assert code == 2 and "at least 16 characters" in err
    assert time.time() - start < 60


def test_a_taken_port_is_one_line(tmp_path, demo_lit):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, _, err = shoefind("serve", "--port", port, "--model", demo_lit.model, "--dataset", demo_lit.catalog,
                                "--data-dir", tmp_path / "data")
    assert code == 2 and f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err
