"""The CustomResourceDefinitions of Canary, MetricTemplate and AlertProvider, generated from the models.

Generating keeps the apiserver's schema and the controller's parser from drifting apart: a field added to a model
appears in ``deploy/crds/`` on the next ``python -m flaggerpy.apis.crds deploy/crds``, and a unit test fails until
then. The pydantic JSON Schema is rewritten into a *structural* schema (no ``$ref``, no nullable unions, every
node typed) as kube-apiserver requires for ``apiextensions.k8s.io/v1``.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from flaggerpy.apis.flagger import API_GROUP, API_VERSION, AlertProvider, Canary, MetricTemplate

# Schema keywords a structural schema may carry; pydantic's titles and defaults are dropped (defaults would be
# written into stored objects by the apiserver, and Flagger's API has none).
_KEEP = {
    "type",
    "description",
    "enum",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "required",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
}

_OBJECT_META_DESCRIPTION = "Standard Kubernetes object metadata."


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    target = defs[ref.rsplit("/", 1)[-1]]
    merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return _resolve(merged, defs)


def structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Rewrite one pydantic JSON Schema node (and its children) into a structural OpenAPI v3 schema node."""
    node = _resolve(node, defs)
    variants = node.get("anyOf")
    if variants is not None:
        # "X | None" becomes X: an absent field and a null are the same to Kubernetes.
        kept = [v for v in variants if v.get("type") != "null"]
        if len(kept) != 1:
            raise ValueError(f"cannot express union {variants} in a structural schema")
        outer = {k: v for k, v in node.items() if k != "anyOf"}
        node = {**_resolve(kept[0], defs), **outer}
    out: dict[str, Any] = {k: copy.deepcopy(v) for k, v in node.items() if k in _KEEP}
    if "description" in out:
        # Docstrings use reST literals; kubectl explain shows plain text.
        out["description"] = out["description"].replace("``", "")
    if node.get("title") == "ObjectMeta":
        return {"type": "object", "description": _OBJECT_META_DESCRIPTION}
    if "properties" in node:
        out["type"] = "object"
        out["properties"] = {name: structural(child, defs) for name, child in node["properties"].items()}
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and extra:
        out["type"] = "object"
        out["additionalProperties"] = structural(extra, defs)
    elif (extra is True or extra == {}) and "properties" not in node:
        # dict[str, Any]: kept as written (Istio trafficPolicy, owner references).
        out["type"] = "object"
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "items" in node:
        out["items"] = structural(node["items"], defs)
    if "const" in node:
        out["enum"] = [node["const"]]
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "type" not in out and not out.get("x-kubernetes-int-or-string"):
        raise ValueError(f"schema node without a type: {node}")
    return out


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural openAPIV3Schema of a flagger.app resource model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    schema = structural(raw, raw.get("$defs", {}))
    props = schema["properties"]
    props["apiVersion"] = {"type": "string", "description": "APIVersion of this object (flagger.app/v1beta1)."}
    props["kind"] = {"type": "string", "description": "Kind of this object."}
    props["metadata"] = {"type": "object"}
    schema["required"] = [r for r in schema.get("required", []) if r not in ("apiVersion", "kind", "metadata")]
    return schema


def _crd(
    model: type[BaseModel],
    kind: str,
    plural: str,
    columns: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{API_GROUP}"},
        "spec": {
            "group": API_GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "categories": ["all"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": API_VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": openapi_schema(model)},
                }
            ],
        },
    }


def _column(name: str, kind: str, path: str, priority: int = 0) -> dict[str, Any]:
    column: dict[str, Any] = {"name": name, "type": kind, "jsonPath": path}
    if priority:
        column["priority"] = priority
    return column


def build_crds() -> dict[str, dict[str, Any]]:
    """The three CRDs by file name, with Flagger's names, categories and printer columns."""
    canary_columns = [
        _column("Status", "string", ".status.phase"),
        _column("Weight", "string", ".status.canaryWeight"),
        _column("Suspended", "boolean", ".spec.suspend", 1),
        _column("FailedChecks", "string", ".status.failedChecks", 1),
        _column("Interval", "string", ".spec.analysis.interval", 1),
        _column("Mirror", "boolean", ".spec.analysis.mirror", 1),
        _column("StepWeight", "string", ".spec.analysis.stepWeight", 1),
        _column("StepWeights", "string", ".spec.analysis.stepWeights", 1),
        _column("MaxWeight", "string", ".spec.analysis.maxWeight", 1),
        # flaggerpy's extension: why the canary does not move (a foreign route, a route not accepted, a slot).
        _column("Halted", "string", '.status.conditions[?(@.type=="Halted")].reason'),
        _column("LastTransitionTime", "string", ".status.lastTransitionTime"),
    ]
    return {
        "canaries.yaml": _crd(Canary, "Canary", "canaries", canary_columns),
        "metrictemplates.yaml": _crd(
            MetricTemplate, "MetricTemplate", "metrictemplates", [_column("Provider", "string", ".spec.provider.type")]
        ),
        "alertproviders.yaml": _crd(
            AlertProvider, "AlertProvider", "alertproviders", [_column("Type", "string", ".spec.type")]
        ),
    }


class _PlainDumper(yaml.SafeDumper):
    """A YAML dumper that never writes anchors and aliases, which confuse readers of a CRD."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(crd: dict[str, Any]) -> str:
    """A CRD as the YAML committed under deploy/crds/."""
    header = "# Generated by `python -m flaggerpy.apis.crds deploy/crds` from flaggerpy/apis/flagger.py; do not edit.\n"
    return header + yaml.dump(crd, Dumper=_PlainDumper, sort_keys=False, width=120)


def main(argv: list[str] | None = None) -> int:
    """Write the CRDs into the directory given as the only argument."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m flaggerpy.apis.crds <output directory>", file=sys.stderr)
        return 2
    out = Path(args[0])
    out.mkdir(parents=True, exist_ok=True)
    for name, crd in build_crds().items():
        (out / name).write_text(render(crd))
    return 0


if __name__ == "__main__":
    sys.exit(main())
