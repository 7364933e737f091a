"""Demo stage: a catalog of drawings with known labels and a LiT model that learned them (offline, minutes)."""
from __future__ import annotations

from typing import Annotated

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import Field

from shoefind.settings import layout

from .common import DataDir, Device, Seed, fails_clearly, given, paths


@task(name="demo", cache_policy=NO_CACHE)
def demo_task(folder: str, data_dir: str, photos_per_shoe: int | None = None, steps: int | None = None,
              seed: int = 0, device: str | None = None) -> dict:
    from shoefind.stages.demo import run_demo
    return run_demo(folder, data_dir, photos_per_shoe=photos_per_shoe, steps=steps, seed=seed, device=device,
                    log=get_run_logger().info)


@flow(name="demo")
@fails_clearly
def demo_flow(folder: Annotated[str, Field(title="folder", description="Where the demo catalog and model go. "
                                           "Empty: DATA_DIR/demo.")] = "",
              data_dir: DataDir = "",
              photos_per_shoe: Annotated[int, Field(ge=0, title="photos per shoe", description="0: 10.")] = 0,
              steps: Annotated[int, Field(ge=0, title="LiT steps", description="0: 150.")] = 0,
              seed: Seed = 0, device: Device = "auto") -> dict:
    """Draw the demo catalog into `folder`/catalog and train its model into `folder`/model/demo.lit.pt;
    returns the held-out zero-shot scores."""
    _, data_dir = paths(None, data_dir)
    target = given(folder) or str(layout(data_dir).demo)
    return demo_task(target, data_dir, photos_per_shoe or None, steps or None, seed, given(device))


if __name__ == "__main__":
    demo_flow()
