"""Open-set answers with the demo model: the flag fires on photos of shoes outside the catalog (real photos
of ../shared/data against the demo's drawings) and rarely on new photos of catalog shoes; `infer`'s text,
its --json and the web page say so alike."""
from __future__ import annotations

import io
import json
import random
import shutil

import numpy as np
import pytest

from tests.helpers import REPO
from tests.helpers.cli import shoefind_here


@pytest.fixture(scope="module")
def demo_data(demo_lit, tmp_path_factory):
    """A data folder with the demo model's embeddings (nothing is encoded again, nothing written to its cache)."""
    data = tmp_path_factory.mktemp("open-set") / "data"
    shutil.copytree(demo_lit.data_dir / "embeddings", data / "embeddings")
    return data


@pytest.fixture(scope="module")
def warm(demo_lit, demo_data):
    from shoefind.stages.infer import open_model_and_catalog
    return open_model_and_catalog(str(demo_lit.model), demo_lit.catalog, demo_data)


def new_drawings(per_shoe: int, first: int = 10) -> list:
    """Photos of every demo catalog shoe that the catalog does not have (its photos are numbers 0-9)."""
    from shoefind.demo.drawings import demo_shoes, draw_shoe
    return [draw_shoe(s, random.Random(f"0|{s.folder}|{k}"), 96) for s in demo_shoes()
            for k in range(first, first + per_shoe)]


def flag_rate(encoder, catalog, images) -> float:
    from shoefind.retrieve.open_set import nearest_similarity, threshold_for
    threshold = threshold_for(catalog).threshold
    sims = np.array([nearest_similarity(catalog, v) for v in encoder.encode_images(images)])
    return float((sims < threshold).mean())


def test_the_flag_fires_outside_the_catalog_and_rarely_inside(warm, shared_data):
    """Done when: >= 90% of photos of shoes outside the catalog flagged, <= 10% of held-out catalog photos
    (measured in full by benchmarks/open_set.py: 100% and 4.9%)."""
    encoder, catalog = warm
    inside = flag_rate(encoder, catalog, new_drawings(1))
    outside_photos = [str(p) for p in sorted((shared_data / "findyourshoes-labeled").rglob("*.*"))
                      if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    outside_photos += [str(p) for p in sorted((shared_data / "nike-silhouettes").rglob("*.png"))[::8]]
    outside = flag_rate(encoder, catalog, outside_photos)
    assert inside <= 0.10 and outside >= 0.90, (inside, outside)


def test_infer_says_it_in_text_and_json(demo_lit, demo_data, shared_data, capfd):
    chicago = next((shared_data / "findyourshoes-labeled").glob("*Chicago*/*"))
    args = ["infer", chicago, "--model", demo_lit.model, "--dataset", demo_lit.catalog, "--data-dir", demo_data]
    code, out, err = shoefind_here(capfd, *args)
    assert code == 0, err
    said = " ".join(out.split())        # as read, whatever the terminal's width wrapped
    assert f"{chicago}: not like any shoe in this catalog (nearest catalog photo 0." in said
    assert "below the catalog's threshold" in said and "nearest shoes:" in said
    code, out, _ = shoefind_here(capfd, *args, "--json")
    a = json.loads(out)["answers"][0]
    assert a["not_in_catalog"] is True and a["message"] == "not like any shoe in this catalog"
    assert len(a["suggestions"]) == 3 and a["open_set"]["nearest_similarity"] < a["open_set"]["threshold"]
    catalog_photo = next(demo_lit.catalog.glob("Nike_High_Red_*/photo-00.png"))
    code, out, _ = shoefind_here(capfd, "infer", catalog_photo, *args[2:], "--json")
    a = json.loads(out)["answers"][0]
    assert a["not_in_catalog"] is False and "message" not in a


def test_a_folder_summary_counts_them(demo_lit, demo_data, shared_data, capfd, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i, img in enumerate(new_drawings(1)[:3]):
        img.save(folder / f"drawing-{i}.png")
    for p in sorted((shared_data / "nike-silhouettes").rglob("*.png"))[:2]:
        shutil.copy(p, folder / f"real-{p.name}")
    code, out, err = shoefind_here(capfd, "infer", folder, "--model", demo_lit.model, "--dataset", demo_lit.catalog,
                                   "--data-dir", demo_data, "--csv", tmp_path / "answers.csv")
    assert code == 0, err
    assert "5 identified, 0 failed (2 not like any shoe in this catalog)" in " ".join(out.split())
    import pandas as pd
    rows = pd.read_csv(tmp_path / "answers.csv")
    flagged = rows[rows["kind"] == "identified"].groupby("photo")["not_in_catalog"].first()
    assert sorted(flagged.items()) == sorted((str(p), p.name.startswith("real-")) for p in folder.iterdir())


def test_the_web_page_says_it(demo_lit, demo_data, shared_data, monkeypatch):
    from streamlit.testing.v1 import AppTest
    monkeypatch.setenv("SHOEFIND_DATA", str(demo_data))
    monkeypatch.setenv("SHOEFIND_WEB_DATASET", str(demo_lit.catalog))
    monkeypatch.setenv("SHOEFIND_MODEL", str(demo_lit.model))
    chicago = next((shared_data / "findyourshoes-labeled").glob("*Chicago*/*"))
    at = AppTest.from_file(str(REPO / "shoefind" / "web" / "app.py"), default_timeout=120)
    at.session_state["query"] = {"kind": "upload", "value": chicago.read_bytes(), "label": chicago.name}
    at.run()
    assert not at.exception and not at.error
    assert [h.value for h in at.subheader][0] == "Not like any shoe in this catalog"
    assert any("below this catalog's threshold" in w.value and "Nearest shoes:" in w.value for w in at.warning)
    drawing = io.BytesIO()
    new_drawings(1)[0].save(drawing, format="PNG")
    at.session_state["query"] = {"kind": "upload", "value": drawing.getvalue(), "label": "drawing.png"}
    at.run()
    assert [h.value for h in at.subheader][0].startswith("Identified: ")
