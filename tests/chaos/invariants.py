"""An observer inside the sandbox that checks design.md's invariants 1-4 against EVERY committed version of every
HTTPRoute, Canary and primary Deployment (``cluster.changes()`` sees each commit, in order), and remembers what it
saw so a test can also judge whole histories (steps never skipped, never promoted twice).

Every broken invariant is a :class:`Violation` naming the run, the invariant, the canary and the object version
(kind, namespace/name and resourceVersion) at which it broke.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flaggerpy.sandbox import Sandbox

GATEWAY_GROUP = "gateway.networking.k8s.io"
TERMINAL = frozenset({"Succeeded", "Failed"})
INVARIANTS = {
    1: "route weights sum to 100 and the canary weight never exceeds maxWeight",
    2: "traffic never goes to a canary that is not ready",
    3: "after Failed, all traffic is on the primary and the primary is the last promoted spec",
    4: "a step is never skipped and a release is never promoted twice",
}


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


def version_of(kind: str, obj: dict[str, Any] | None) -> str:
    """``Kind namespace/name resourceVersion N`` of an object, the moment a violation is pinned to."""
    meta = (obj or {}).get("metadata") or {}
    return f"{kind} {meta.get('namespace')}/{meta.get('name')} resourceVersion {meta.get('resourceVersion')}"


@dataclass(frozen=True)
class Violation:
    """One broken invariant: in which run, for which canary, at which object version, and what was seen."""

    run: str
    invariant: int
    canary: str
    version: str
    problem: str

    def __str__(self) -> str:
        return (f"[{self.run}] invariant {self.invariant} ({INVARIANTS[self.invariant]}) broken for canary "
                f"{self.canary} at {self.version}: {self.problem}")


def report(violations: Iterable[Violation], limit: int = 20) -> str:
    """A failure message: how many violations of each invariant, then the first ``limit`` of them."""
    found = list(violations)
    counts = Counter(v.invariant for v in found)
    summary = ", ".join(f"invariant {n}: {counts[n]}" for n in sorted(counts))
    canaries = sorted({v.canary for v in found})
    lines = [f"{len(found)} violations ({summary}) on {len(canaries)} canaries: {', '.join(canaries)}"]
    lines += [str(v) for v in found[:limit]]
    if len(found) > limit:
        lines.append(f"... and {len(found) - limit} more")
    return "\n".join(lines)


@dataclass
class Seen:
    """One canary's observed history; each ``*_versions`` list names the object version of the matching entry."""

    canary_weights: list[int] = field(default_factory=list)
    weight_versions: list[str] = field(default_factory=list)
    phases: list[str] = field(default_factory=list)
    status_weights: list[int] = field(default_factory=list)
    primary_images: list[str] = field(default_factory=list)
    image_versions: list[str] = field(default_factory=list)
    promotion_versions: list[str] = field(default_factory=list)

    @property
    def promotions(self) -> int:
        """How many times the canary entered Promoting."""
        return len(self.promotion_versions)


class InvariantObserver:
    """Checks every version as it is committed; ``violations`` lists what broke, with the version it broke at."""

    def __init__(self, sandbox: Sandbox, namespace: str, max_weight: dict[str, int], old_image: str,
                 run: str) -> None:
        self._sb = sandbox
        self._namespace = namespace
        self._max_weight = max_weight
        self._old_image = old_image
        self.run = run
        self.seen = {name: Seen() for name in max_weight}
        self.violations: list[Violation] = []
        self.repeated_steps: list[str] = []
        self.versions = 0
        self._task: asyncio.Task[None] | None = None
        self.changed = asyncio.Event()

    def start(self) -> None:
        """Subscribe now."""
        self._task = asyncio.create_task(self._run(), name=f"invariants-{self.run}")

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

    def _violate(self, invariant: int, canary: str, version: str, problem: str) -> None:
        self.violations.append(Violation(self.run, invariant, canary, version, problem))

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
                self._primary(name[:-8], change.object)
            self.changed.set()

    def _route(self, name: str, route: dict[str, Any]) -> None:
        weights = weights_of(route)
        if not weights:
            return
        at = version_of("HTTPRoute", route)
        if sum(weights.values()) != 100:
            self._violate(1, name, at, f"weights {weights} sum to {sum(weights.values())}")
        canary_weight = weights.get(f"{name}-canary", 0)
        if canary_weight > self._max_weight[name]:
            self._violate(1, name, at, f"canary weight {canary_weight} above maxWeight {self._max_weight[name]}")
        if canary_weight > 0:
            target = self._get("apps", "deployments", name) or {}
            status, spec_meta = target.get("status") or {}, target.get("metadata") or {}
            ready = (int(status.get("readyReplicas") or 0) > 0
                     and int(status.get("observedGeneration") or 0) >= int(spec_meta.get("generation") or 0))
            if not ready:
                self._violate(2, name, at, f"canary weight {canary_weight} while {version_of('Deployment', target)} "
                                           f"has {status.get('readyReplicas') or 0} ready replicas and observed "
                                           f"generation {status.get('observedGeneration')} of "
                                           f"{spec_meta.get('generation')}")
        seen = self.seen[name]
        if not seen.canary_weights or seen.canary_weights[-1] != canary_weight:
            seen.canary_weights.append(canary_weight)
            seen.weight_versions.append(at)

    def _primary(self, name: str, deployment: dict[str, Any]) -> None:
        seen = self.seen[name]
        image = image_of(deployment)
        if image and (not seen.primary_images or seen.primary_images[-1] != image):
            seen.primary_images.append(image)
            seen.image_versions.append(version_of("Deployment", deployment))

    def _canary(self, name: str, obj: dict[str, Any]) -> None:
        status = obj.get("status") or {}
        phase = status.get("phase") or ""
        seen = self.seen[name]
        persisted = int(status.get("canaryWeight") or 0)
        if not seen.status_weights or seen.status_weights[-1] != persisted:
            seen.status_weights.append(persisted)
        if not phase or (seen.phases and seen.phases[-1] == phase):
            return
        seen.phases.append(phase)
        at = version_of("Canary", obj)
        if phase == "Promoting":
            seen.promotion_versions.append(at)
        if phase == "Failed":
            # The engine routes before it persists Failed: by now the route must be all primary.
            route = self._get(GATEWAY_GROUP, "httproutes", name)
            weights = weights_of(route)
            if weights.get(f"{name}-canary", 0) != 0:
                self._violate(3, name, at, f"Failed while {version_of('HTTPRoute', route)} has weights {weights}")
            primary = self._get("apps", "deployments", f"{name}-primary")
            image = image_of(primary)
            if image != self._old_image:
                self._violate(3, name, at, f"Failed while {version_of('Deployment', primary)} runs image {image}, "
                                           f"not the last promoted {self._old_image}")

    def history_problems(self, step_weight: int) -> list[Violation]:
        """Invariant 4 over whole histories: weights climb one step at a time; a release promotes at most once.

        A step whose route write landed but whose status write failed is not persisted, so it is repeated: the
        route may fall back by one step to the persisted weight and climb again. That is counted in
        :attr:`repeated_steps`, not reported; falling back further, or climbing by more than one step, is.
        """
        problems: list[Violation] = []
        self.repeated_steps = []
        for name, seen in self.seen.items():
            climb = 0
            for weight, at in zip(seen.canary_weights, seen.weight_versions, strict=True):
                if weight == 0:
                    climb = 0
                    continue
                if weight == climb - step_weight:
                    self.repeated_steps.append(f"{name}: {seen.canary_weights}")
                elif weight != climb + step_weight:
                    problems.append(Violation(self.run, 4, name, at, f"canary weight went from {climb} to {weight} "
                                                                     f"(step {step_weight}): {seen.canary_weights}; "
                                                                     f"status.canaryWeight went "
                                                                     f"{seen.status_weights}"))
                climb = weight
            if seen.promotions > 1:
                problems.append(Violation(self.run, 4, name, seen.promotion_versions[-1],
                                          f"promoted {seen.promotions} times (at {seen.promotion_versions}); "
                                          f"phases {seen.phases}"))
            repeated = [i for i, image in enumerate(seen.primary_images) if image in seen.primary_images[:i]]
            if repeated:
                problems.append(Violation(self.run, 4, name, seen.image_versions[repeated[0]],
                                          f"primary image flapped: {seen.primary_images}"))
        return problems
