"""`shoefind demo DIR`: a catalog of drawings and a model that knows them, made offline in a few minutes."""
from __future__ import annotations

from pathlib import Path
from shoefind.cli import options as o
from shoefind.cli.common import print_json
from shoefind.cli.declared import declared
from shoefind.cli.execution import run_stage
from shoefind.stages.demo import DemoRequest


@declared(DemoRequest)
def demo(request: DemoRequest, json_out: o.Json = False, prefect: o.Prefect = False):
    """Draw a demo catalog (144 shoes with known brand, colour, top, sole and name), train a model on it
    (LiT over the offline efficientnet-lite0 backbone; no internet, no CLIP weights) and show how it
    scores on photos it never saw. Then try the printed commands with --model on the demo catalog."""
    result = run_stage("demo", prefect, request)
    if json_out:
        print_json(result)
        return
    show_demo(result)


def show_demo(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table
    out = Console()
    table = Table(title=f"zero-shot top-1 on {result['heldout_photos']} held-out demo photos")
    table.add_column("what")
    table.add_column("top-1")
    for key, value in result["zero_shot"].items():
        top1 = value.get("top1")
        table.add_row({"name": "name (name prompts)", "name_5step": "name (5-step method)"}.get(key, key),
                      "-" if top1 is None else f"{top1:.1%}")
    out.print(table)
    model, catalog = result["model"], result["catalog"]
    some = sorted(Path(catalog).glob("*_High_Red_*/photo-00.png")) or sorted(Path(catalog).glob("*/photo-00.png"))
    photo = str(some[0]) if some else f"{catalog}/<shoe>/photo-00.png"
    out.print(f"catalog: {catalog}\nmodel:   {model} (manifest {result['manifest']})\n"
              f"done in {result['seconds']:.0f}s. Try:\n"
              f"  shoefind infer '{photo}' --model {model} --dataset {catalog}\n"
              f"  shoefind infer '{photo}' --change 'same shoe but blue' --model {model} --dataset {catalog}\n"
              f"  shoefind search 'blue high top' --model {model} --dataset {catalog}\n"
              f"  shoefind web --model {model} --dataset {catalog}", highlight=False, soft_wrap=True)
