"""``kubectl apply --server-side`` on the sandbox: field managers, managedFields, conflicts, force, dropped fields."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator

import aiohttp
import pytest

from flaggerpy.sandbox import Sandbox
from tests.integration.kubectl import kubectl, run_kubectl

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: default, labels: {{team: a}}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}, annotations: {annotations}}}
    spec: {{containers: [{{name: app, image: "{image}"}}]}}
"""


def manifest(replicas: int = 2, image: str = "podinfo:1", annotations: str = "{}") -> str:
    return DEPLOYMENT.format(replicas=replicas, image=image, annotations=annotations)


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(dataplane=False, workloads=False) as sandbox:
        yield sandbox


async def managers(sb: Sandbox) -> set[tuple[str, str, str]]:
    obj = json.loads(await kubectl(sb, "get", "deployment", "web", "-o", "json", "--show-managed-fields"))
    return {(e["manager"], e["operation"], e.get("subresource", "")) for e in obj["metadata"]["managedFields"]}


async def test_apply_records_its_manager_and_a_later_update_takes_the_fields_it_changes(sb: Sandbox) -> None:
    await kubectl(sb, "apply", "--server-side", "-f", "-", stdin=manifest())
    assert await managers(sb) == {("kubectl", "Apply", "")}
    # Like a controller scaling the target (flaggerpy scales a canary's target to 0 with an update); kubectl scale
    # names no field manager, so it is its User-Agent's "kubectl", through the scale subresource.
    await kubectl(sb, "scale", "deployment", "web", "--replicas=0")
    assert await managers(sb) == {("kubectl", "Apply", ""), ("kubectl", "Update", "scale")}

    # Re-applying replicas: 2 now conflicts with the field's new owner...
    result = await run_kubectl(sb, "apply", "--server-side", "-f", "-", stdin=manifest(image="podinfo:2"))
    assert result.code != 0
    assert 'Apply failed with 1 conflict: conflict with "kubectl"' in result.err
    assert ".spec.replicas" in result.err
    assert json.loads(await kubectl(sb, "get", "deployment", "web", "-o", "json"))["spec"]["replicas"] == 0
    # ...which --force-conflicts takes over, as GitOps tools do.
    await kubectl(sb, "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=manifest(image="podinfo:2"))
    obj = json.loads(await kubectl(sb, "get", "deployment", "web", "-o", "json"))
    assert obj["spec"]["replicas"] == 2
    assert obj["spec"]["template"]["spec"]["containers"][0]["image"] == "podinfo:2"


async def test_a_field_the_applier_stops_sending_is_removed_unless_someone_else_owns_it(sb: Sandbox) -> None:
    await kubectl(sb, "apply", "--server-side", "-f", "-", stdin=manifest(annotations="{a: '1', b: '2'}"))
    await kubectl(sb, "annotate", "deployment", "web", "note=kept")
    await kubectl(sb, "apply", "--server-side", "--field-manager=team-b", "-f", "-",
                  stdin=manifest(annotations="{b: '2'}"))
    await kubectl(sb, "apply", "--server-side", "-f", "-", stdin=manifest())
    obj = json.loads(await kubectl(sb, "get", "deployment", "web", "-o", "json"))
    # a: only kubectl applied it, gone; b: team-b applies it too, kept; note: set by an update, not kubectl's.
    assert obj["spec"]["template"]["metadata"].get("annotations") == {"b": "2"}
    assert obj["metadata"]["annotations"]["note"] == "kept"


async def test_reapplying_the_same_configuration_changes_nothing(sb: Sandbox) -> None:
    await kubectl(sb, "apply", "--server-side", "-f", "-", stdin=manifest())
    before = json.loads(await kubectl(sb, "get", "deployment", "web", "-o", "json"))["metadata"]["resourceVersion"]
    await kubectl(sb, "apply", "--server-side", "-f", "-", stdin=manifest())
    after = json.loads(await kubectl(sb, "get", "deployment", "web", "-o", "json"))["metadata"]["resourceVersion"]
    assert after == before


async def test_an_apply_without_a_field_manager_is_refused(sb: Sandbox) -> None:
    async with aiohttp.ClientSession() as session, session.patch(
        f"{sb.url}/api/v1/namespaces/default/configmaps/x", data='{"metadata":{"name":"x"}}',
        headers={"Content-Type": "application/apply-patch+yaml"},
    ) as resp:
        status = await resp.json()
    assert resp.status == 422 and status["details"]["causes"][0]["field"] == "fieldManager"
