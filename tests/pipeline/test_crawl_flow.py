"""The `crawl` Prefect flow: batches of queries, per-query report rows and the table artifact."""
from __future__ import annotations

import asyncio
import shutil

import pytest

from tests.helpers.fake_search_site import FakeSearchSite, sample_images

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                       reason="needs chromium and chromedriver"),
]
SETTINGS = dict(allow_loopback=True, connect_timeout=3, read_timeout=5, retries=0, per_host_interval=0,
                results_timeout=10, preview_timeout=5, scroll_timeout=0.5, poll_interval=0.05)


async def _read_report():
    """The latest crawl report: the session's Prefect API keeps one version per crawl run of every test."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort
    async with get_client() as client:
        found = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["crawl-report"])),
                                            sort=ArtifactSort.CREATED_DESC, limit=1)
    return found


def test_crawl_flow_reports_each_query(prefect_harness, tmp_path):
    from flows.crawl import crawl_flow
    images = sample_images(None, 4, tmp_path / "gen")
    names = list(images)
    shoes = tmp_path / "shoes.yaml"
    shoes.write_text(
        "shoes:\n"
        "  - {name: Chuck Test, brand: Converse, color: Black, hightop: High, sole: White Sole, queries: [one, two]}\n"
        "  - {name: Samba Test, brand: Adidas, color: White, hightop: Low, sole: Gum Sole, queries: [three]}\n")
    with FakeSearchSite(images) as site:
        site.add_query("one", site.good_results(names[:2]) + [site.tricky_results(names, names[3])[2]])  # + a 404
        site.add_query("two", site.good_results(names[2:3]))
        site.add_query("three", site.good_results(names[3:]))
        rows = crawl_flow(shoes=str(shoes), per_query=5, engine="localtest", data_dir=str(tmp_path / "data"),
                          batch_size=2, base_url=site.base_url, settings=SETTINGS)

    by_query = {r["query"]: r for r in rows}
    assert set(by_query) == {"one", "two", "three"}
    assert (by_query["one"]["downloaded"], by_query["one"]["failed"], by_query["one"]["reasons"]) == (2, 1, "http-404 x1")
    assert by_query["three"]["shoe"] == "Adidas_Low_White_Gum Sole_Samba Test"
    assert sum(r["downloaded"] for r in rows) == 4
    assert len(list((tmp_path / "data" / "inbox").rglob("*.*"))) == 4   # unfiltered: the inbox

    [artifact] = asyncio.run(_read_report())
    assert artifact.type == "table" and "4 downloaded" in artifact.description
    assert "http-404 x1" in str(artifact.data)


def test_crawl_flow_offline_fails_with_the_reason(prefect_harness, tmp_path):
    from flows.crawl import crawl_flow
    shoes = tmp_path / "shoes.yaml"
    shoes.write_text("- {name: Samba, brand: Adidas, color: White, hightop: Low, sole: Gum Sole}\n")
    state = crawl_flow(shoes=str(shoes), engine="localtest", base_url="http://127.0.0.1:9",
                       data_dir=str(tmp_path / "data"), retries=0, return_state=True)
    assert state.is_failed() and "cannot reach localtest" in state.message
