"""Without the flows package (a wheel install) and with a Prefect API, the CLI triggers the flow's
deployment by name; what is wrong there is one line."""
import pytest

from shoefind.cli.execution import run_deployment_named
from shoefind.errors import UserError


def test_missing_deployment_and_unknown_parameters_are_one_clear_line(prefect_harness):
    from prefect.client.orchestration import get_client
    with pytest.raises(UserError, match="no deployment infer/ad-hoc to run instead: register the deployments"):
        run_deployment_named("infer/ad-hoc", "http://api", image=["/x.jpg"])
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name("infer")
        client.create_deployment(flow_id, "ad-hoc", parameter_openapi_schema={
            "type": "object", "properties": {"image": {"type": "array"}, "dataset": {"type": "string"}}})
    with pytest.raises(UserError, match="does not take k, model"):
        run_deployment_named("infer/ad-hoc", "http://api", image=["/x.jpg"], model="tiny.pt", k=5, dataset=None)
