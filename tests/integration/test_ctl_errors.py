"""Failures of the cluster commands against the sandbox: each error says what is wrong, exit code 1, stdout clean."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from flaggerpy.cli import main as cli_main
from flaggerpy.sandbox import Sandbox
from flaggerpy.sandbox.apiserver.faults import Rule
from tests.integration.conftest import Cluster
from tests.integration.test_ctl_commands import Ctl, put_canary, unreachable_kubeconfig
from tests.manifests import NAMESPACE

NO_CRD = ("error: the cluster does not serve canaries.flagger.app/v1beta1: are Flagger's CRDs installed? "
          "(kubectl get crd canaries.flagger.app)\n")
# Only a guard against a hang: the commands give up after a few fast retries.
HANG_GUARD = 60


@pytest.fixture
def ctl(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> Ctl:
    return Ctl(sandbox, capsys)


@pytest.mark.parametrize("command", ["status", "promote", "abort", "pause"])
async def test_an_unknown_canary_names_the_ones_that_exist(cluster: Cluster, ctl: Ctl, command: str) -> None:
    for name in ("podinfo", "backend"):
        await put_canary(cluster, name, {"phase": "Progressing"})
    code, out, err = await ctl(command, "podinf", "-n", NAMESPACE)
    assert (code, out) == (1, "")
    assert err == f'error: canary "podinf" not found in namespace "{NAMESPACE}" (canaries there: backend, podinfo)\n'


async def test_a_namespace_that_does_not_exist_is_named(ctl: Ctl) -> None:
    code, _, err = await ctl("status", "podinfo", "-n", "tset")
    assert code == 1
    assert err == 'error: canary "podinfo" not found in namespace "tset": namespace "tset" does not exist ' \
                  "(-n/--namespace)\n"
    code, _, err = await ctl("resume", "podinfo", "-n", "gateway")
    assert code == 1
    assert err == 'error: canary "podinfo" not found in namespace "gateway", which has no canaries ' \
                  "(choose another with -n/--namespace)\n"


async def test_a_cluster_without_the_canary_crd_says_so(sandbox: Sandbox, ctl: Ctl) -> None:
    await sandbox.cluster.delete("apiextensions.k8s.io", "customresourcedefinitions", None, "canaries.flagger.app")
    for argv in (["get", "canaries"], ["get", "canaries", "-A", "--watch"], ["status", "podinfo", "--watch"],
                 ["promote", "podinfo"]):
        async with asyncio.timeout(HANG_GUARD):
            code, out, err = await ctl(*argv, *([] if "-A" in argv else ["-n", NAMESPACE]))
        assert (code, out, err) == (1, "", NO_CRD), argv


async def test_watching_an_unreachable_cluster_fails_instead_of_retrying_forever(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = unreachable_kubeconfig(tmp_path)
    for argv in (["get", "canaries", "--watch"], ["status", "podinfo", "--watch"]):
        capsys.readouterr()
        async with asyncio.timeout(HANG_GUARD):
            code = await asyncio.to_thread(cli_main, [*argv, "--kubeconfig", str(kubeconfig)])
        captured = capsys.readouterr()
        assert code == 1, argv
        # The client's retries are not printed: stdout stays the command's, stderr has the one error line.
        assert captured.out == ""
        assert captured.err.startswith("error: cannot reach the API server") and captured.err.count("\n") == 1


async def test_forbidden_lists_are_blamed_on_rbac_and_do_not_hide_a_not_found(sandbox: Sandbox, ctl: Ctl) -> None:
    sandbox.faults.errors.append(Rule(verb="list", resource="canaries", code=403))
    code, out, err = await ctl("get", "canaries", "-n", NAMESPACE)
    assert (code, out) == (1, "")
    assert err.startswith("error: forbidden: ") and err.endswith("(check your RBAC permissions)\n")
    code, _, err = await ctl("promote", "podinfo", "-n", NAMESPACE)
    assert (code, err) == (1, f'error: canary "podinfo" not found in namespace "{NAMESPACE}"\n')
