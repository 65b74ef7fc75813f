"""Offline checks of Flagger manifests: schema, references between the given documents, query rendering.

Pure functions over parsed YAML documents; :mod:`flaggerpy.ctl.lint` reads the files and prints the findings.
A reference to an object that is not among the documents is only a warning: it may well exist in the cluster.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flaggerpy.analysis.providers import PROVIDERS, UNSUPPORTED
from flaggerpy.analysis.templates import TemplateError, TemplateModel, render
from flaggerpy.apis.errors import FieldError
from flaggerpy.apis.flagger import API_GROUP, API_VERSION, AlertProvider, Canary, MetricTemplate
from flaggerpy.apis.lenient import parse_leniently, unaffected
from flaggerpy.apis.validation import canary_problems
from flaggerpy.ctl.lintschema import MODELS, unknown_fields
from flaggerpy.ctl.lintyaml import Document
from flaggerpy.outbound import address_problem

FLAGGER_KINDS = ("Canary", "MetricTemplate", "AlertProvider")
SERVED_API_VERSION = f"{API_GROUP}/{API_VERSION}"

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Finding:
    """A problem at one line of one file, printed as ``FILE:LINE: field: problem``."""

    source: str
    line: int
    field: str
    problem: str
    severity: str = ERROR

    def __str__(self) -> str:
        text = f"warning: {self.problem}" if self.severity == WARNING else self.problem
        return ": ".join(p for p in (f"{self.source}:{self.line}", self.field, text) if p)


def at(doc: Document, field: str, problem: str, severity: str = ERROR) -> Finding:
    """A finding on ``field`` of ``doc``, at the line that field (or its nearest written parent) is on."""
    return Finding(doc.source, doc.line_of(field), field, problem, severity)


@dataclass
class _Parsed:
    doc: Document
    label: str
    model: Canary | MetricTemplate | AlertProvider

    @property
    def where(self) -> str:
        """``file:line`` of the object, for findings about another object that refers to it."""
        return f"{self.doc.source}:{self.doc.line}"


def _label(body: dict[str, Any]) -> str:
    name = (body.get("metadata") or {}).get("name") if isinstance(body.get("metadata"), dict) else None
    return f"{body.get('kind')}/{name or '<unnamed>'}"


def _matches(ref_ns: str, obj_ns: str) -> bool:
    # An object without a namespace is applied to whichever namespace kubectl or kustomize picks, so it can
    # satisfy a reference to any namespace (and a reference without one matches any object of that name).
    return not ref_ns or not obj_ns or ref_ns == obj_ns


def _parse(doc: Document, findings: list[Finding]) -> _Parsed | None:
    """The model of a Flagger object, built from what is left when its bad fields are cut out, so the checks that
    follow still run on the rest; every problem of the object is added to ``findings``."""
    body = doc.body
    if not isinstance(body, dict):
        findings.append(at(doc, "", "must be a Kubernetes object (a mapping)"))
        return None
    kind = body.get("kind")
    api_version = str(body.get("apiVersion") or "")
    if kind not in FLAGGER_KINDS or not api_version.startswith(f"{API_GROUP}/"):
        return None
    label = _label(body)
    if api_version != SERVED_API_VERSION:
        findings.append(at(doc, "apiVersion", f"{api_version} is not served: use {SERVED_API_VERSION}"))
        return None
    if not (body.get("metadata") or {}).get("name"):
        findings.append(at(doc, "metadata.name", "required"))
    findings.extend(at(doc, w.field, w.problem, WARNING) for w in unknown_fields(str(kind), body))
    model, problems, cuts = parse_leniently(MODELS[kind], body)
    if isinstance(model, Canary):
        problems += unaffected(canary_problems(model), cuts)
    findings.extend(at(doc, e.field, e.problem) for e in problems)
    findings.extend(at(doc, e.field, e.problem) for e in url_problems(str(kind), body))
    return None if model is None else _Parsed(doc, label, model)


def _url_problem(value: str, proxy: bool) -> str | None:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (it raises ValueError for a port that is not a number)
    except ValueError as exc:
        return f"{value!r} is not a URL: {exc}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{value!r} is not an http(s) URL with a host (e.g. http://flagger-loadtester.test/)"
    # What else the controller's outbound policy refuses (user info, a fragment); its message leaves the URL out,
    # which may hold a password.
    return address_problem(value, allow_user_info=proxy)


def url_problems(kind: str, body: dict[str, Any]) -> list[FieldError]:
    """Every address of the object that flaggerpy would call and that is not an http(s) URL with a host.

    Read from the manifest as written, so an object with other errors gets its URLs checked in the same run.
    """
    def get(obj: Any, *keys: str) -> Any:
        for key in keys:
            obj = obj.get(key) if isinstance(obj, dict) else None
        return obj

    urls: list[tuple[str, Any]] = []
    if kind == "Canary":
        urls.append(("spec.metricsServer", get(body, "spec", "metricsServer")))
        section = "analysis" if get(body, "spec", "analysis") is not None else "canaryAnalysis"
        hooks = get(body, "spec", section, "webhooks")
        urls += [(f"spec.{section}.webhooks[{i}].url", get(hook, "url"))
                 for i, hook in enumerate(hooks if isinstance(hooks, list) else [])]
    elif kind == "MetricTemplate":
        urls.append(("spec.provider.address", get(body, "spec", "provider", "address")))
    else:
        urls += [("spec.address", get(body, "spec", "address")), ("spec.proxy", get(body, "spec", "proxy"))]
    return [FieldError(field, problem) for field, value in urls
            if isinstance(value, str) and value
            and (problem := _url_problem(value, field == "spec.proxy")) is not None]


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
    findings.extend(at(doc, w.field, w.problem, WARNING) for w in canary.spec_warnings())
    for i, metric in enumerate(canary.analysis.metrics or []):
        ref = metric.template_ref
        if ref is None:
            continue
        field = f"{path}.metrics[{i}].templateRef"
        namespace = ref.namespace or own_ns
        found = _find(parsed, MetricTemplate, namespace, ref.name)
        if found is None:
            where = f"{namespace}/{ref.name}" if namespace else ref.name
            findings.append(at(doc, field, f"MetricTemplate {where} is not in the given files (it must exist in "
                                           "the cluster)", WARNING))
            continue
        template = found.model
        assert isinstance(template, MetricTemplate)
        try:
            render(template.spec.query, TemplateModel.for_metric(canary, metric))
        except TemplateError as exc:
            findings.append(at(doc, field, f"query of {found.label} ({found.where}) does not render for this "
                                           f"canary: {exc}"))
    for i, alert in enumerate(canary.analysis.alerts or []):
        ref = alert.provider_ref
        namespace = ref.namespace or own_ns
        if _find(parsed, AlertProvider, namespace, ref.name) is None:
            where = f"{namespace}/{ref.name}" if namespace else ref.name
            findings.append(at(doc, f"{path}.alerts[{i}].providerRef",
                               f"AlertProvider {where} is not in the given files (it must exist in the cluster)",
                               WARNING))


def _check_template(item: _Parsed, findings: list[Finding]) -> None:
    template = item.model
    assert isinstance(template, MetricTemplate)
    kind = template.spec.provider.type.strip().lower()
    if kind in PROVIDERS:
        return
    problem = (f"{kind!r} is not supported by flaggerpy" if kind in UNSUPPORTED
               else f"{kind!r} is unknown (one of: {', '.join(sorted(PROVIDERS))})")
    findings.append(at(item.doc, "spec.provider.type", problem))


def _check_duplicates(parsed: list[_Parsed], findings: list[Finding]) -> None:
    seen: dict[tuple[str, str, str], _Parsed] = {}
    for item in parsed:
        meta = item.model.metadata
        key = (item.model.kind, meta.namespace, meta.name)
        first = seen.setdefault(key, item)
        if first is not item:
            findings.append(at(item.doc, "metadata.name", f"duplicate {item.label} of {first.where}; the later one "
                                                         "wins when applied", WARNING))


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
    findings.sort(key=lambda f: (order.get(f.source, 0), f.line))
    return findings
