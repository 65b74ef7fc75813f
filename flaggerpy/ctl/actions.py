"""Acting on one canary: manual requests (promote, abort, retry) and pause/resume.

promote/abort/retry write a fresh request id into the Canary's ``flaggerpy.io/<action>`` annotation; the controller
acts on it once and records the id in status (see :mod:`flaggerpy.apis.annotations`). pause/resume set and clear
``spec.suspend``. Every write is a merge patch carrying the resourceVersion that was checked, so the phase check
and the write cannot be split by a concurrent change: on a conflict the canary is read and checked again.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

from flaggerpy.apis.annotations import Action, new_request_id, pending
from flaggerpy.canary import manual
from flaggerpy.canary.phases import Phase
from flaggerpy.ctl import common
from flaggerpy.kube import resources as res
from flaggerpy.kube.api import KubeClient, Obj
from flaggerpy.kube.errors import Conflict

CONFLICT_RETRIES = 3

Configure = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]
# What a one-canary command does once connected: (client, namespace, name, output) -> exit code.
Act = Callable[[KubeClient, str, str, TextIO], Awaitable[int]]


def _add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="name of the Canary")
    common.add_cluster_args(parser)


def _label(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f'canary "{meta.get("name")}" in namespace "{meta.get("namespace")}"'


def _phase(obj: Obj) -> Phase | None:
    return Phase.parse((obj.get("status") or {}).get("phase"))


def check_request(action: Action, obj: Obj) -> None:
    """Raise CtlError when ``action`` cannot take effect on the canary as it is now."""
    spec = obj.get("spec") or {}
    if spec.get("suspend"):
        raise common.CtlError(f"{_label(obj)} is paused (spec.suspend): run 'flaggerpy resume' first, "
                              f"the controller does not act on a paused canary")
    phase = _phase(obj)
    if not manual.applies(action, phase):
        where = ", ".join(manual.applicable_phases(action))
        now = phase.value if phase else "not initialised yet"
        raise common.CtlError(f"{_label(obj)} is {now}: {action.value} applies only in phase {where}")


async def _patch_checked(kube: KubeClient, namespace: str, name: str,
                         build: Callable[[Obj], dict[str, Any] | None]) -> tuple[Obj, Obj | None]:
    """Read, let ``build`` check and return a merge patch (None: nothing to do), write it with the read version."""
    for attempt in range(CONFLICT_RETRIES):
        obj = await common.get_canary(kube, namespace, name)
        body = build(obj)
        if body is None:
            return obj, None
        body.setdefault("metadata", {})["resourceVersion"] = obj["metadata"].get("resourceVersion")
        try:
            return obj, await kube.patch(res.CANARIES, name, namespace, body)
        except Conflict:
            if attempt == CONFLICT_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


async def request(kube: KubeClient, namespace: str, name: str, action: Action, out: TextIO) -> int:
    """Write a ``flaggerpy.io/<action>`` request on the canary after checking that it applies."""
    rid = new_request_id()

    def build(obj: Obj) -> dict[str, Any]:
        check_request(action, obj)
        return {"metadata": {"annotations": {action.annotation: rid}}}

    before, _ = await _patch_checked(kube, namespace, name, build)
    replaced = pending(before).get(action)
    note = f" (replaces pending request {replaced})" if replaced else ""
    out.write(f"canary.flagger.app/{name} {action.value} requested, request id {rid}{note}\n")
    return common.EXIT_OK


async def set_suspend(kube: KubeClient, namespace: str, name: str, suspend: bool, out: TextIO) -> int:
    """Pause (``spec.suspend: true``) or resume (remove ``spec.suspend``) the canary; idempotent."""
    verb = "paused" if suspend else "resumed"

    def build(obj: Obj) -> dict[str, Any] | None:
        if bool((obj.get("spec") or {}).get("suspend")) == suspend:
            return None
        return {"spec": {"suspend": True if suspend else None}}

    _, written = await _patch_checked(kube, namespace, name, build)
    if written is None:
        out.write(f"canary.flagger.app/{name} already {verb}\n")
    else:
        out.write(f"canary.flagger.app/{name} {verb}\n")
    return common.EXIT_OK


def _canary_command(help_text: str, act: Act) -> tuple[Configure, Run]:
    """``configure``/``run`` of a ``flaggerpy <verb> NAME`` command that applies ``act`` to one canary."""

    def configure(parser: argparse.ArgumentParser) -> None:
        parser.description = help_text
        _add_args(parser)

    def run(args: argparse.Namespace) -> int:
        async def main() -> int:
            async with common.client(args) as kube:
                return await act(kube, common.namespace_of(args), args.name, sys.stdout)

        return common.run_async(main, args=args)

    return configure, run


def manual_command(action: Action, help_text: str) -> tuple[Configure, Run]:
    """``configure``/``run`` of ``flaggerpy <action> NAME`` for :data:`flaggerpy.cli.COMMANDS`."""

    async def act(kube: KubeClient, namespace: str, name: str, out: TextIO) -> int:
        return await request(kube, namespace, name, action, out)

    return _canary_command(help_text, act)


def suspend_command(suspend: bool, help_text: str) -> tuple[Configure, Run]:
    """``configure``/``run`` of ``flaggerpy pause|resume NAME``."""

    async def act(kube: KubeClient, namespace: str, name: str, out: TextIO) -> int:
        return await set_suspend(kube, namespace, name, suspend, out)

    return _canary_command(help_text, act)
