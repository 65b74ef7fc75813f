"""An observer inside the sandbox that checks design.md's invariants 1-4 against EVERY committed version of every
HTTPRoute, Canary and primary Deployment (``cluster.changes()`` sees each commit, in order), and remembers what it
saw so a test can also judge whole histories (steps never skipped, never promoted twice).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from flaggerpy.sandbox import Sandbox

GATEWAY_GROUP = "gateway.networking.k8s.io"
TERMINAL = frozenset({"Succeeded", "Failed"})


def image_of(deployment: dict[str, Any] | None) -> str | None:
    """The first container's image of a Deployment dict."""
    if deployment is None:
        return None
    containers = deployment["spec"]["template"]["spec"].get("containers") or [{}]
    return containers[0].get("image")


def weights_of(route: dict[str, Any] | None) -> dict[str, int]:
    """backend → weight of the route's last rule."""
    rules = ((route or {}).get("spec") or {}).get("rules") or []
    if not rules:
        return {}
    return {b["name"]: int(b.get("weight", 1)) for b in rules[-1].get("backendRefs") or []}


@dataclass
class Seen:
    """One canary's observed history."""

    canary_weights: list[int] = field(default_factory=list)
    phases: list[str] = field(default_factory=list)
    primary_images: list[str] = field(default_factory=list)
    promotions: int = 0


class InvariantObserver:
    """Checks every version as it is committed; ``violations`` lists what broke, with the moment it broke."""

    def __init__(self, sandbox: Sandbox, namespace: str, max_weight: dict[str, int], old_image: str) -> None:
        self._sb = sandbox
        self._namespace = namespace
        self._max_weight = max_weight
        self._old_image = old_image
        self.seen = {name: Seen() for name in max_weight}
        self.violations: list[str] = []
        self.repeated_steps: list[str] = []
        self.versions = 0
        self._task: asyncio.Task[None] | None = None
        self.changed = asyncio.Event()

    def start(self) -> None:
        """Subscribe now."""
        self._task = asyncio.create_task(self._run(), name="chaos-invariants")

    async def stop(self) -> None:
        """Stop observing."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def phase(self, name: str) -> str:
        """The canary's latest phase."""
        phases = self.seen[name].phases
        return phases[-1] if phases else ""

    def finished(self, name: str) -> bool:
        """The canary went through Progressing and is now in a terminal phase."""
        phases = self.seen[name].phases
        return "Progressing" in phases and phases[-1] in TERMINAL

    def _get(self, group: str, plural: str, name: str) -> dict[str, Any] | None:
        return self._sb.cluster.get(group, plural, self._namespace, name)

    async def _run(self) -> None:
        async for change in self._sb.cluster.changes():
            meta = change.object.get("metadata") or {}
            if meta.get("namespace") != self._namespace or change.type == "DELETED":
                continue
            name = meta.get("name", "")
            kind = (change.group, change.plural)
            if kind == (GATEWAY_GROUP, "httproutes") and name in self.seen:
                self.versions += 1
                self._route(name, change.object)
            elif kind == ("flagger.app", "canaries") and name in self.seen:
                self.versions += 1
                self._canary(name, change.object)
            elif kind == ("apps", "deployments") and name.endswith("-primary") and name[:-8] in self.seen:
                self.versions += 1
                images = self.seen[name[:-8]].primary_images
                image = image_of(change.object)
                if image and (not images or images[-1] != image):
                    images.append(image)
            self.changed.set()

    def _route(self, name: str, route: dict[str, Any]) -> None:
        weights = weights_of(route)
        if not weights:
            return
        at = f"HTTPRoute {name} rv {route['metadata'].get('resourceVersion')} {weights}"
        if sum(weights.values()) != 100:
            self.violations.append(f"invariant 1: weights do not sum to 100: {at}")
        canary_weight = weights.get(f"{name}-canary", 0)
        if canary_weight > self._max_weight[name]:
            self.violations.append(f"invariant 1: canary weight above maxWeight {self._max_weight[name]}: {at}")
        if canary_weight > 0:
            target = self._get("apps", "deployments", name) or {}
            status, spec_meta = target.get("status") or {}, target.get("metadata") or {}
            ready = (int(status.get("readyReplicas") or 0) > 0
                     and int(status.get("observedGeneration") or 0) >= int(spec_meta.get("generation") or 0))
            if not ready:
                self.violations.append(f"invariant 2: traffic to a canary that is not ready ({status}): {at}")
        seen = self.seen[name].canary_weights
        if not seen or seen[-1] != canary_weight:
            seen.append(canary_weight)

    def _canary(self, name: str, obj: dict[str, Any]) -> None:
        status = obj.get("status") or {}
        phase = status.get("phase") or ""
        seen = self.seen[name]
        if not phase or (seen.phases and seen.phases[-1] == phase):
            return
        seen.phases.append(phase)
        if phase == "Promoting":
            seen.promotions += 1
        if phase == "Failed":
            # The engine routes before it persists Failed: by now the route must be all primary.
            weights = weights_of(self._get(GATEWAY_GROUP, "httproutes", name))
            if weights.get(f"{name}-canary", 0) != 0:
                self.violations.append(f"invariant 3: {name} Failed with the route at {weights}")
            image = image_of(self._get("apps", "deployments", f"{name}-primary"))
            if image != self._old_image:
                self.violations.append(f"invariant 3: {name} Failed with primary image {image}, not the last "
                                       f"promoted {self._old_image}")

    def history_problems(self, step_weight: int) -> list[str]:
        """Invariant 4 over whole histories: weights climb one step at a time; a release promotes at most once.

        A step whose route write landed but whose status write failed is not persisted, so it is repeated: the
        route may fall back by one step to the persisted weight and climb again. That is counted in
        :attr:`repeated_steps`, not reported; falling back further, or climbing by more than one step, is.
        """
        problems = []
        self.repeated_steps = []
        for name, seen in self.seen.items():
            climb = 0
            for weight in seen.canary_weights:
                if weight == 0:
                    climb = 0
                    continue
                if weight == climb - step_weight:
                    self.repeated_steps.append(f"{name}: {seen.canary_weights}")
                elif weight != climb + step_weight:
                    problems.append(f"invariant 4: {name} went from {climb} to {weight}: {seen.canary_weights}")
                climb = weight
            if seen.promotions > 1:
                problems.append(f"invariant 4: {name} promoted {seen.promotions} times: {seen.phases}")
            if len(seen.primary_images) != len(set(seen.primary_images)):
                problems.append(f"invariant 4: {name} primary flapped: {seen.primary_images}")
        return problems
