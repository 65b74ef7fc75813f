"""Offline checks of Flagger manifests: schema, references between the given documents, query rendering.

Pure functions over parsed YAML documents; :mod:`flaggerpy.ctl.lint` reads the files and prints the findings.
A reference to an object that is not among the documents is only a warning: it may well exist in the cluster.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flaggerpy.analysis.providers import PROVIDERS, UNSUPPORTED
from flaggerpy.analysis.templates import TemplateError, TemplateModel, render
from flaggerpy.apis.errors import SpecError
from flaggerpy.apis.flagger import API_GROUP, API_VERSION, AlertProvider, Canary, MetricTemplate

FLAGGER_KINDS = ("Canary", "MetricTemplate", "AlertProvider")
SERVED_API_VERSION = f"{API_GROUP}/{API_VERSION}"

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Document:
    """One YAML document of one file: ``index`` counts from 1 in the file."""

    source: str
    index: int
    body: Any


@dataclass(frozen=True)
class Finding:
    """A problem in one document, printed as ``FILE:doc N: Kind/name: field: problem``."""

    source: str
    index: int
    object: str
    field: str
    problem: str
    severity: str = ERROR

    def __str__(self) -> str:
        where = f"{self.source}:doc {self.index}"
        text = f"warning: {self.problem}" if self.severity == WARNING else self.problem
        parts = [where, self.object, self.field, text]
        return ": ".join(p for p in parts if p)


@dataclass
class _Parsed:
    doc: Document
    label: str
    model: Canary | MetricTemplate | AlertProvider


def _label(body: dict[str, Any]) -> str:
    name = (body.get("metadata") or {}).get("name") if isinstance(body.get("metadata"), dict) else None
    return f"{body.get('kind')}/{name or '<unnamed>'}"


def _matches(ref_ns: str, obj_ns: str) -> bool:
    # An object without a namespace is applied to whichever namespace kubectl or kustomize picks, so it can
    # satisfy a reference to any namespace (and a reference without one matches any object of that name).
    return not ref_ns or not obj_ns or ref_ns == obj_ns


def _parse(doc: Document, findings: list[Finding]) -> _Parsed | None:
    body = doc.body
    if not isinstance(body, dict):
        findings.append(Finding(doc.source, doc.index, "", "<root>", "must be a Kubernetes object (a mapping)"))
        return None
    kind = body.get("kind")
    api_version = str(body.get("apiVersion") or "")
    if kind not in FLAGGER_KINDS or not api_version.startswith(f"{API_GROUP}/"):
        return None
    label = _label(body)
    if api_version != SERVED_API_VERSION:
        findings.append(Finding(doc.source, doc.index, label, "apiVersion",
                                f"{api_version} is not served: use {SERVED_API_VERSION}"))
        return None
    if not (body.get("metadata") or {}).get("name"):
        findings.append(Finding(doc.source, doc.index, label, "metadata.name", "required"))
    models: dict[str, type[Canary] | type[MetricTemplate] | type[AlertProvider]] = {
        "Canary": Canary, "MetricTemplate": MetricTemplate, "AlertProvider": AlertProvider,
    }
    model_type = models[kind]
    try:
        model = model_type.from_dict(body)
    except SpecError as exc:
        findings.extend(Finding(doc.source, doc.index, label, e.field, e.problem) for e in exc.errors)
        return None
    return _Parsed(doc, label, model)


def _find(parsed: list[_Parsed], kind: type, namespace: str, name: str) -> _Parsed | None:
    for item in parsed:
        meta = item.model.metadata
        if isinstance(item.model, kind) and meta.name == name and _matches(namespace, meta.namespace):
            return item
    return None


def _check_canary(item: _Parsed, parsed: list[_Parsed], findings: list[Finding]) -> None:
    canary = item.model
    assert isinstance(canary, Canary)
    doc = item.doc
    own_ns = canary.metadata.namespace
    path = canary.spec.analysis_path
    findings.extend(Finding(doc.source, doc.index, item.label, w.field, w.problem, WARNING)
                    for w in canary.spec_warnings())
    for i, metric in enumerate(canary.analysis.metrics or []):
        ref = metric.template_ref
        if ref is None:
            continue
        field = f"{path}.metrics[{i}].templateRef"
        namespace = ref.namespace or own_ns
        found = _find(parsed, MetricTemplate, namespace, ref.name)
        if found is None:
            where = f"{namespace}/{ref.name}" if namespace else ref.name
            findings.append(Finding(doc.source, doc.index, item.label, field,
                                    f"MetricTemplate {where} is not in the given files (it must exist in the "
                                    f"cluster)", WARNING))
            continue
        template = found.model
        assert isinstance(template, MetricTemplate)
        try:
            render(template.spec.query, TemplateModel.for_metric(canary, metric))
        except TemplateError as exc:
            findings.append(Finding(doc.source, doc.index, item.label, field,
                                    f"query of {found.label} ({found.doc.source}:doc {found.doc.index}) does not "
                                    f"render for this canary: {exc}"))
    for i, alert in enumerate(canary.analysis.alerts or []):
        ref = alert.provider_ref
        namespace = ref.namespace or own_ns
        if _find(parsed, AlertProvider, namespace, ref.name) is None:
            where = f"{namespace}/{ref.name}" if namespace else ref.name
            findings.append(Finding(doc.source, doc.index, item.label, f"{path}.alerts[{i}].providerRef",
                                    f"AlertProvider {where} is not in the given files (it must exist in the "
                                    f"cluster)", WARNING))


def _check_template(item: _Parsed, findings: list[Finding]) -> None:
    template = item.model
    assert isinstance(template, MetricTemplate)
    kind = template.spec.provider.type.strip().lower()
    if kind in PROVIDERS:
        return
    problem = (f"{kind!r} is not supported by flaggerpy" if kind in UNSUPPORTED
               else f"{kind!r} is unknown (one of: {', '.join(sorted(PROVIDERS))})")
    findings.append(Finding(item.doc.source, item.doc.index, item.label, "spec.provider.type", problem))


def _check_duplicates(parsed: list[_Parsed], findings: list[Finding]) -> None:
    seen: dict[tuple[str, str, str], _Parsed] = {}
    for item in parsed:
        meta = item.model.metadata
        key = (item.model.kind, meta.namespace, meta.name)
        first = seen.setdefault(key, item)
        if first is not item:
            findings.append(Finding(item.doc.source, item.doc.index, item.label, "metadata.name",
                                    f"duplicate of {first.doc.source}:doc {first.doc.index}; the later one wins "
                                    f"when applied", WARNING))


def lint(documents: Iterable[Document]) -> list[Finding]:
    """Every finding for the documents, in document order; non-Flagger kinds are skipped."""
    docs = list(documents)
    order = {source: i for i, source in reversed(list(enumerate(d.source for d in docs)))}
    findings: list[Finding] = []
    parsed = [p for doc in docs if doc.body is not None and (p := _parse(doc, findings)) is not None]
    _check_duplicates(parsed, findings)
    for item in parsed:
        if isinstance(item.model, Canary):
            _check_canary(item, parsed, findings)
        elif isinstance(item.model, MetricTemplate):
            _check_template(item, findings)
    findings.sort(key=lambda f: (order.get(f.source, 0), f.index))
    return findings
