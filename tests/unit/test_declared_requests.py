"""Each stage's request is declared once (shoefind/stages/*.py): the command's options, the flow's
parameters and the parameter schema of every deployment of prefect.yaml that runs the flow are the
same fields with the same types, so a `-p name=value` a user types is checked as the flag would be."""
import importlib
import re

import pytest
import yaml
from typer.main import get_command

from shoefind.cli.main import app
from shoefind.stages.demo import DemoRequest
from shoefind.stages.evaluate import EvaluateRequest
from shoefind.stages.features import EmbedRequest, TableRequest
from shoefind.stages.learn import LearnRequest
from tests.helpers import REPO

# command -> (its request, the flows made from it, with the fields a flow leaves out)
DECLARED = {
    "learn": (LearnRequest, {"flows.learn:learn_flow": ()}),
    "evaluate": (EvaluateRequest, {"flows.evaluate:evaluate_flow": (),
                                   "flows.evaluate:evaluate_change_flow": ("task", "method", "shots", "seed", "views")}),
    "embed": (EmbedRequest, {"flows.features:embed_flow": ()}),
    "table": (TableRequest, {"flows.features:build_table_flow": ()}),
    "demo": (DemoRequest, {"flows.demo:demo_flow": ()}),
}
CLI_ONLY = {"json_out", "prefect", "dataset_argument"}


def _flow(target: str):
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def _types(schema: dict, definitions: dict) -> dict[str, set[str]]:
    """field -> the JSON types a value may have ('null' left out)."""
    out = {}
    for name, prop in schema["properties"].items():
        options = prop.get("anyOf", [prop])
        types = set()
        for o in options:
            if "$ref" in o:
                o = definitions[o["$ref"].split("/")[-1]]
            types |= {o["type"]} if "type" in o else ({"string"} if "enum" in o else set())
        out[name] = types - {"null"}
    return out


@pytest.mark.parametrize("command", DECLARED)
def test_the_command_flags_are_the_request_fields(command):
    request, _ = DECLARED[command]
    click_command = get_command(app).commands[command]
    options = {p.name for p in click_command.params} - CLI_ONLY
    assert options == set(request.model_fields)


@pytest.mark.parametrize("command", DECLARED)
def test_the_flows_and_their_deployments_take_the_request_fields_with_the_same_types(command):
    from prefect.utilities.callables import parameter_schema
    request, flows = DECLARED[command]
    want = _types(request.model_json_schema(), request.model_json_schema().get("$defs", {}))
    deployments = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    for target, skipped in flows.items():
        schema = _flow(target).parameters.model_dump()
        assert set(schema["properties"]) == set(request.model_fields) - set(skipped), target
        assert "null" not in str(schema), f"{target}: a field typed None shows 'Property is type None' in the form"
        assert all(p.get("description") for p in schema["properties"].values()), target
        got = _types(schema, schema.get("definitions", {}))
        # a number whose 0 means something (views) reads as text in the form, empty meaning not given
        from shoefind.stages.request import Form, fields
        widened = {n for n, (_, _, meta) in fields(request).items() if any(isinstance(m, Form) for m in meta)}
        got = {k: v - {"string"} if k in widened else v for k, v in got.items()}
        assert got == {k: v for k, v in want.items() if k not in skipped}, target
        file, func = target.split(":")
        for dep in deployments:
            if dep["entrypoint"] == f"{file.replace('.', '/')}.py:{func}":
                entry = _flow(target)
                assert parameter_schema(entry.fn).model_dump()["properties"] == schema["properties"]
                assert set(dep.get("parameters") or {}) <= set(schema["properties"]), dep["name"]
                request.of(**(dep.get("parameters") or {}))          # its fixed parameters are valid


def test_learn_is_declared_in_one_place():
    """No option of learn is declared again in cli/ or flows/ (they come from LearnRequest): no flag of its
    own anywhere there, no parameter or keyword of its name in the learn command or flow."""
    sources = {p: p.read_text() for folder in ("shoefind/cli", "flows") for p in (REPO / folder).glob("*.py")}
    learn_files = {REPO / "shoefind/cli/learn.py", REPO / "flows/learn.py"}
    own = [n for n in LearnRequest.model_fields if n not in ("dataset", "data_dir", "model", "catalog", "seed",
                                                              "batch_size", "method", "shots", "views", "tta",
                                                              "cluster", "runtime", "device", "prompts",
                                                              "vocabulary")]
    for name in own:
        flag = "--" + name.replace("_", "-")
        found = [str(p.relative_to(REPO)) for p, text in sources.items()
                 if re.search(rf"{re.escape(flag)}\b", text)
                 or (p in learn_files and re.search(rf"\b{name}\s*[:=]", text))]
        assert not found, f"learn's {name} is written again in {found}"


def test_a_typed_number_is_what_the_run_form_and_the_flag_accept():
    """`prefect deployment run evaluate/... -p shots=4` sends the number 4: the schema and the request
    take it as the flag takes '4'; text that is no number of shots is refused before any work."""
    from prefect.utilities.schema_tools.validation import validate
    schema = _flow("flows.evaluate:evaluate_flow").parameters.model_dump()
    assert EvaluateRequest.of(**{k: p["default"] for k, p in schema["properties"].items()}).given() == \
        EvaluateRequest().given()                  # the form's empty values are the request's defaults
    for value in (4, "4", "1,4,16"):
        assert validate({"shots": value}, schema) == []
        assert EvaluateRequest.of(shots=value).shots == str(value)
    with pytest.raises(Exception, match="shots: 'abc': give a number of photos per shoe"):
        EvaluateRequest.of(shots="abc")
    assert LearnRequest.of(shots=4).shots == "4"
