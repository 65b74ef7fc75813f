"""The real ``kubectl``, run against a sandbox: what the tests use to check that the sandbox speaks Kubernetes."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from flaggerpy.sandbox import Sandbox

TIMEOUT = 120.0


@dataclass(frozen=True)
class Result:
    """How one kubectl command ended."""

    code: int
    out: str
    err: str


async def run_kubectl(sandbox: Sandbox | None, *args: str, stdin: str | None = None) -> Result:
    """Run ``kubectl args`` with ``sandbox``'s kubeconfig (None: no cluster, e.g. ``kustomize``), whatever its exit."""
    env = dict(os.environ)
    if sandbox is not None:
        env["KUBECONFIG"] = str(sandbox.kubeconfig_path)
    process = await asyncio.create_subprocess_exec(
        "kubectl", *args, env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin.encode() if stdin else None), TIMEOUT)
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


async def kubectl(sandbox: Sandbox | None, *args: str, stdin: str | None = None, check: bool = True) -> str:
    """kubectl's stdout; ``check`` asserts the command succeeded, else stdout and stderr come together (for
    asserting on kubectl's error messages)."""
    result = await run_kubectl(sandbox, *args, stdin=stdin)
    if check:
        assert result.code == 0, f"kubectl {' '.join(args)} failed: {result.err}"
        return result.out
    return result.out + result.err
