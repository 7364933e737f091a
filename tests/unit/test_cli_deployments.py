"""Where the flows are not installed (shoefind from a wheel), the CLI triggers deployments by name:
the names it uses are the deployments prefect.yaml registers for those flows."""
import ast

import yaml

from shoefind.cli.execution import DEPLOYMENTS, STAGES
from tests.helpers import REPO


def _flow_names() -> dict[str, str]:
    """flows.module:function -> the name its @flow(name=...) gives it."""
    names = {}
    for path in (REPO / "flows").glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if not isinstance(node, ast.FunctionDef):
                continue
            for dec in node.decorator_list:
                if isinstance(dec, ast.Call) and getattr(dec.func, "id", "") == "flow":
                    name = next((k.value.value for k in dec.keywords if k.arg == "name"), node.name)
                    names[f"flows.{path.stem}:{node.name}"] = name
    return names


def test_every_flow_the_cli_runs_has_a_registered_deployment_of_that_name():
    registered = {}
    flows = _flow_names()
    for dep in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]:
        file, func = dep["entrypoint"].split(":")
        target = f"{file.removesuffix('.py').replace('/', '.')}:{func}"
        registered.setdefault(target, set()).add(f"{flows[target]}/{dep['name']}")
    assert {flow for _, flow in STAGES.values()} | {"flows.retrieve:infer_flow"} <= set(DEPLOYMENTS)
    for target, name in DEPLOYMENTS.items():
        assert name in registered.get(target, set()), (target, name, registered.get(target))
