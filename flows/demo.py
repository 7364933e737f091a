"""Demo stage: a catalog of drawings with known labels and a LiT model that learned them (offline, minutes).
The parameters are shoefind.stages.demo.DemoRequest's fields."""
from __future__ import annotations

from prefect import flow, get_run_logger

from shoefind.stages.demo import DemoRequest, demo
from tasks.common import as_task

from .common import declared


@flow(name="demo")
@declared(DemoRequest)
def demo_flow(request: DemoRequest) -> dict:
    """Draw the demo catalog into `folder`/catalog and train its model into `folder`/model/demo.lit.pt;
    returns the held-out zero-shot scores."""
    return demo(request, step=as_task, log=get_run_logger().info)


if __name__ == "__main__":
    demo_flow()
