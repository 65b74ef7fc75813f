"""The apex, primary and canary Services of a canary, built from ``spec.service`` as pure functions.

The apex Service (``service.name`` or the target's name) is what clients call; ``<apex>-primary`` and
``<apex>-canary`` are the backends the HTTPRoute splits traffic between. Drift repair compares the live Service
with the desired one through :func:`needs_update` so a reconcile writes only when something the canary manages
differs.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flaggerpy.canary.workload import owner_reference, primary_name

if TYPE_CHECKING:
    from flaggerpy.apis.flagger import Canary

DEFAULT_PORT_NAME = "http"


@dataclass(frozen=True)
class ServiceNames:
    """The three Service names of a canary."""

    apex: str
    primary: str
    canary: str


def names(canary: Canary) -> ServiceNames:
    """Apex, primary and canary Service names (apex = ``spec.service.name`` or the target's name)."""
    apex = canary.spec.service.name or canary.spec.target_ref.name
    return ServiceNames(apex=apex, primary=primary_name(apex), canary=f"{apex}-canary")


def _main_port(canary: Canary) -> dict[str, Any]:
    svc = canary.spec.service
    port: dict[str, Any] = {
        "name": svc.port_name or DEFAULT_PORT_NAME,
        "port": int(svc.port),
        "protocol": "TCP",
        "targetPort": svc.target_port if svc.target_port is not None else int(svc.port),
    }
    if svc.app_protocol:
        port["appProtocol"] = svc.app_protocol
    return port


def discovered_ports(template: Mapping[str, Any], main_port: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The extra container ports ``portDiscovery`` exposes: every TCP container port other than the main one."""
    out: list[dict[str, Any]] = []
    taken_numbers = {main_port["port"], main_port["targetPort"]}
    taken_names = {main_port["name"]}
    for container in (template.get("spec") or {}).get("containers") or []:
        for index, cport in enumerate(container.get("ports") or []):
            number = cport.get("containerPort")
            if number is None or number in taken_numbers or cport.get("protocol", "TCP") != "TCP":
                continue
            name = cport.get("name") or f"tcp-{container.get('name', 'container')}-{index}"
            if name in taken_names:
                continue
            taken_numbers.add(number)
            taken_names.add(name)
            out.append({"name": name, "port": number, "protocol": "TCP", "targetPort": number})
    return out


def _metadata(custom: Any) -> tuple[dict[str, str], dict[str, str]]:
    if custom is None:
        return {}, {}
    return dict(custom.labels or {}), dict(custom.annotations or {})


def build_services(
    canary: Canary,
    canary_obj: Mapping[str, Any],
    selector_key: str,
    selector_value: str,
    template: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """The desired apex, primary and canary Services keyed by role (``apex``, ``primary``, ``canary``).

    ``selector_key``/``selector_value`` are the target's identity label (e.g. ``app``/``podinfo``); the apex and
    primary Services select ``<value>-primary`` pods, the canary Service the target's own pods. ``template`` is the
    target's pod template, needed for ``portDiscovery``.
    """
    svc = canary.spec.service
    ports = [_main_port(canary)]
    if svc.port_discovery and template is not None:
        ports += discovered_ports(template, ports[0])
    svc_names = names(canary)
    namespace = canary.metadata.namespace
    roles = {
        "apex": (svc_names.apex, primary_name(selector_value), svc.apex),
        "primary": (svc_names.primary, primary_name(selector_value), svc.primary),
        "canary": (svc_names.canary, selector_value, svc.canary),
    }
    out: dict[str, dict[str, Any]] = {}
    for role, (name, selector, custom) in roles.items():
        labels, annotations = _metadata(custom)
        labels.setdefault(selector_key, name)
        meta: dict[str, Any] = {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [owner_reference(canary_obj)],
        }
        if annotations:
            meta["annotations"] = annotations
        out[role] = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {"type": "ClusterIP", "selector": {selector_key: selector}, "ports": copy.deepcopy(ports)},
        }
    return out


def _port_view(port: Mapping[str, Any]) -> tuple[Any, ...]:
    # The apiserver defaults protocol and targetPort; compare only what the canary decides, normalised.
    return (
        port.get("name"),
        port.get("port"),
        port.get("protocol", "TCP"),
        port.get("targetPort", port.get("port")),
        port.get("appProtocol"),
    )


def needs_update(live: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Whether a live Service drifted from the desired one in anything the canary manages.

    Foreign labels and annotations, clusterIP and other server-filled fields are not drift.
    """
    live_meta, want_meta = live.get("metadata", {}), desired["metadata"]
    for field_name in ("labels", "annotations"):
        have = live_meta.get(field_name) or {}
        if any(have.get(k) != v for k, v in (want_meta.get(field_name) or {}).items()):
            return True
    live_spec, want_spec = live.get("spec", {}), desired["spec"]
    if (live_spec.get("selector") or {}) != want_spec["selector"]:
        return True
    return sorted(map(_port_view, live_spec.get("ports") or [])) != sorted(map(_port_view, want_spec["ports"]))


def merged(live: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The object to write back: the live Service with the canary's fields restored and foreign metadata kept."""
    out = copy.deepcopy(dict(live))
    meta = out.setdefault("metadata", {})
    for field_name in ("labels", "annotations"):
        want = desired["metadata"].get(field_name) or {}
        if want:
            meta[field_name] = {**(meta.get(field_name) or {}), **want}
    spec = out.setdefault("spec", {})
    spec["selector"] = copy.deepcopy(desired["spec"]["selector"])
    spec["ports"] = copy.deepcopy(desired["spec"]["ports"])
    return out
