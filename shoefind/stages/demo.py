"""`shoefind demo DIR`: the offline first experience. A catalog of drawings with known labels, a model
that learned them (LiT over the offline efficientnet-lite0 backbone), and its held-out scores.

Writes DIR/catalog (one folder per shoe, Brand_Top_Color_Sole_Name) and DIR/model/demo.lit.pt
with its manifest (demo.lit.pt.json, .md) and split (.split.csv); tables and embeddings go to the
data folder as for any dataset, so `infer`, `search`, `evaluate` and the web page answer from the
cache afterwards.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Callable, Optional

from pydantic import BeforeValidator, Field

from shoefind.stages.request import Cli, DataDir, Device, Request, Text, direct, seed_field

DEMO_MODEL = "efficientnet-lite0"
ZERO_SHOT_KEYS = {"brand": "brand_top1", "color": "color_top1", "hightop": "hightop_top1", "sole": "sole_top1",
                  "name": "zero_shot_top1", "name_5step": "name_5step_top1"}


def demo_paths(folder: str | os.PathLike) -> tuple[Path, Path]:
    folder = Path(folder).expanduser().resolve()
    return folder / "catalog", folder / "model" / "demo.lit.pt"


def run_demo(folder: str | os.PathLike, data_dir: str | os.PathLike, model: str | None = None,
             photos_per_shoe: int | None = None, steps: int | None = None, seed: int = 0,
             device: str | None = None, batch_size: int = 64, progress=None,
             log: Callable[[str], None] | None = None) -> dict:
    """Write the demo catalog, train the demo model on it, and say how it does on held-out photos.

    Returns {"model", "catalog", "manifest", "zero_shot": {attribute | name | name_5step: {"top1", "chance",
    "majority", "majority_class"}}, "heldout_photos", "seconds", "warnings"}."""
    from shoefind.demo.catalog import PHOTOS_PER_SHOE, write_demo_catalog
    from shoefind.demo.drawings import demo_shoes
    from shoefind.stages.lit import learn_lit_dataset
    start = time.perf_counter()
    say = log or (lambda _m: None)
    catalog_dir, checkpoint = demo_paths(folder)
    n = photos_per_shoe or PHOTOS_PER_SHOE
    drawing = progress("drawing the demo catalog", n * len(demo_shoes())) if progress else None
    write_demo_catalog(catalog_dir, n, seed=seed, progress=drawing)
    say(f"demo catalog: {catalog_dir} ({len(demo_shoes())} shoes, {n} photos each)")
    result = learn_lit_dataset(catalog_dir, data_dir, model=model or DEMO_MODEL, out=checkpoint, steps=steps,
                               seed=seed, batch_size=batch_size, device=device, progress=progress, log=log)
    heldout, baselines = result["heldout"], result.get("baselines") or {}
    # each score with what it must beat: chance and always answering the held-out photos' majority class
    zero_shot = {k: {"top1": heldout.get(v)} | {b: baselines[v][b] for b in ("chance", "majority", "majority_class")
                                                  if v in baselines}
                 for k, v in ZERO_SHOT_KEYS.items() if v in heldout}
    return {"model": result["checkpoint"], "catalog": str(catalog_dir), "manifest": result["manifest"],
            "zero_shot": zero_shot, "prototype": {"top1": heldout.get("prototype_top1")},
            "heldout_photos": heldout.get("photos"), "split": result["split"],
            "seconds": round(time.perf_counter() - start, 1),
            "training_seconds": result["training"].get("seconds"), "warnings": result.get("warnings") or []}


def _zero_is_default(value):
    return None if value in (0, "", "0") else value


class DemoRequest(Request):
    folder: Annotated[Text, Field(description="where to write the demo catalog and model (default DATA_DIR/demo)"),
                      Cli(argument=True)] = None
    data_dir: DataDir = None
    photos: Annotated[Optional[Annotated[int, Field(ge=3, le=100)]], BeforeValidator(_zero_is_default), Field(
        description="photos per shoe (default 10)")] = None
    steps: Annotated[Optional[Annotated[int, Field(ge=1, le=1_000_000)]], BeforeValidator(_zero_is_default), Field(
        description="LiT training steps (default 150)")] = None
    seed: seed_field("seed of the drawings, the held-out split and training") = 0
    device: Device = None


def demo(request: DemoRequest, step=direct, progress=None, log: Callable[[str], None] | None = None) -> dict:
    """The demo stage: draw the catalog, train its model, score it on held-out drawings."""
    from shoefind.settings import layout
    lay = layout(request.data_dir)
    folder = request.folder or str(lay.demo)
    return step("demo", run_demo, folder, str(lay.root), photos_per_shoe=request.photos, steps=request.steps,
                seed=request.seed, device=request.device, progress=progress, log=log)
