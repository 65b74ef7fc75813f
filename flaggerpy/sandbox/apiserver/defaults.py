"""Defaults kube-apiserver fills in for built-in kinds, so clients see the objects they would see on a cluster.

Covers what controllers commonly read back: Service ``type``, ``sessionAffinity``, port ``protocol`` and
``targetPort`` and an allocated ``clusterIP`` (kept across updates that omit it); Deployment ``replicas``,
``strategy``, ``revisionHistoryLimit`` and ``progressDeadlineSeconds``; Namespace ``status.phase``; Secret ``type``,
and ``stringData`` merged into ``data``.
"""

from __future__ import annotations

import base64
import ipaddress
from typing import Any

from flaggerpy.sandbox.apiserver.registry import StorageKey

SERVICES: StorageKey = ("", "services")
DEPLOYMENTS: StorageKey = ("apps", "deployments")
NAMESPACES: StorageKey = ("", "namespaces")
SECRETS: StorageKey = ("", "secrets")
KINDS = frozenset({SERVICES, DEPLOYMENTS, NAMESPACES, SECRETS})
_SERVICE_RANGE = ipaddress.ip_network("10.96.0.0/12")


class ClusterIPs:
    """Hands out Service ClusterIPs from 10.96.0.0/12 (10.96.0.1 is the API server's, as on a cluster)."""

    def __init__(self) -> None:
        self._next = 10

    def allocate(self) -> str:
        """The next free address."""
        address = _SERVICE_RANGE.network_address + self._next
        self._next += 1
        return str(address)


def _service(obj: dict[str, Any], old: dict[str, Any] | None, ips: ClusterIPs) -> None:
    if not isinstance(obj.get("spec"), dict):
        return
    spec = obj["spec"] = dict(obj["spec"])
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if isinstance(spec.get("ports"), list):
        ports = []
        for port in spec["ports"]:
            if isinstance(port, dict):
                port = {"protocol": "TCP", **port}
                if "port" in port:
                    port.setdefault("targetPort", port["port"])
            ports.append(port)
        spec["ports"] = ports
    if spec["type"] == "ExternalName" or spec.get("clusterIP") == "None":
        return
    previous = ((old or {}).get("spec") or {}).get("clusterIP")
    if not spec.get("clusterIP"):
        spec["clusterIP"] = previous or ips.allocate()
    spec.setdefault("clusterIPs", [spec["clusterIP"]])


def _deployment(obj: dict[str, Any]) -> None:
    if not isinstance(obj.get("spec"), dict):
        return
    spec = obj["spec"] = dict(obj["spec"])
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    strategy = spec.get("strategy", {"type": "RollingUpdate"})
    if isinstance(strategy, dict) and strategy.get("type", "RollingUpdate") == "RollingUpdate":
        rolling = strategy.get("rollingUpdate")
        rolling = {"maxUnavailable": "25%", "maxSurge": "25%", **(rolling if isinstance(rolling, dict) else {})}
        strategy = {**strategy, "type": "RollingUpdate", "rollingUpdate": rolling}
    spec["strategy"] = strategy


def apply(key: StorageKey, obj: dict[str, Any], old: dict[str, Any] | None, ips: ClusterIPs) -> dict[str, Any]:
    """``obj`` with built-in defaults. Only its top level is changed in place; nested parts are copied before they
    change, since they may be shared with the stored object."""
    if key == SERVICES:
        _service(obj, old, ips)
    elif key == DEPLOYMENTS:
        _deployment(obj)
    elif key == NAMESPACES and old is None:
        obj["status"] = {"phase": "Active"}
    elif key == SECRETS:
        obj.setdefault("type", "Opaque")
        _string_data(obj)
    return obj


def _string_data(obj: dict[str, Any]) -> None:
    """Merge a Secret's write-only ``stringData`` into ``data`` (base64), its keys winning, as kube-apiserver does;
    ``stringData`` itself is never stored."""
    string_data = obj.pop("stringData", None)
    if not isinstance(string_data, dict) or not string_data:
        return
    data = dict(obj.get("data") or {})
    for name, value in string_data.items():
        if isinstance(value, str):
            data[name] = base64.b64encode(value.encode()).decode()
    obj["data"] = data
