"""Hypothesis throws broken Canary and MetricTemplate manifests at a running controller (its own process) while two
healthy canaries release. Every manifest is either refused by the API server or answered by the controller (a
condition on the Canary, or an Event when a MetricTemplate the analysis uses cannot work), and either way the answer
names the field that is wrong; the controller never crashes and the healthy releases finish.

``CI=true`` runs fewer examples.
"""

from __future__ import annotations

import asyncio
import copy
import os
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flaggerpy.apis.errors import SpecError
from flaggerpy.apis.flagger import Canary
from flaggerpy.sandbox import Sandbox
from tests.e2e.release_harness import GATEWAY_GROUP, Subprocess, flaggerpy_argv
from tests.manifests import GATEWAY_NAMESPACE, NAMESPACE, canary, crd_documents, deployment, gateway
from tests.ports import free_port

pytestmark = pytest.mark.chaos

T = TypeVar("T")
EXAMPLES = 12 if os.environ.get("CI") == "true" else 30
ANSWER_TIMEOUT = 20.0
HEALTHY = ["healthy-a", "healthy-b"]
ANALYSIS = {"interval": "1s", "threshold": 2, "stepWeight": 5, "maxWeight": 50}

# Fields a user can get wrong, as paths into the Canary manifest; the last element is what the error must name.
FIELDS: list[tuple[str, ...]] = [
    ("spec", "analysis", "stepWeight"),
    ("spec", "analysis", "maxWeight"),
    ("spec", "analysis", "threshold"),
    ("spec", "analysis", "interval"),
    ("spec", "analysis", "iterations"),
    ("spec", "analysis", "stepWeights"),
    ("spec", "service", "port"),
    ("spec", "service", "hosts"),
    ("spec", "service", "gatewayRefs"),
    ("spec", "targetRef", "kind"),
    ("spec", "progressDeadlineSeconds"),
    ("spec", "analysis", "metrics"),
    ("spec", "analysis", "webhooks"),
    ("spec", "analysis"),
    ("spec", "service"),
]

junk = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.booleans(),
    st.none(),
    st.lists(st.one_of(st.integers(), st.text(max_size=5)), max_size=3),
    st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=5)), max_size=2),
    st.sampled_from(["-5s", "0s", "99999999h", "10", "ünïcödé", "1m😀", "", " ", "NaN"]),
    st.sampled_from([-1, 0, 101, 10**12, 2**63, -(2**63)]),
    st.just([{"name": "x", "templateRef": {"name": "missing"}, "thresholdRange": {"max": "a lot"}}]),
    st.just([{"name": "w", "url": "not a url ☃", "type": "sometimes"}]),
)


Mutation = tuple[str, dict[str, Any], str]  # (what, spec.analysis/spec changes, what the answer must name)


@st.composite
def semantic_mistakes(draw: st.DrawFn) -> Mutation:
    """Manifests the CRD schema accepts but that make no sense: only the controller can name the field."""
    kind = draw(st.sampled_from(["weights", "steps", "match", "metrics", "hooks", "range", "unknown-metric",
                                 "target"]))
    label = draw(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                         min_size=1, max_size=8))
    if kind == "weights":
        step = draw(st.integers(min_value=2, max_value=100))
        return kind, {"analysis": {"stepWeight": step, "maxWeight": draw(st.integers(1, step - 1))}}, "maxWeight"
    if kind == "steps":
        first = draw(st.integers(min_value=1, max_value=100))
        return kind, {"analysis": {"stepWeights": [first, draw(st.integers(0, first))]}}, "stepWeights"
    if kind == "match":
        return kind, {"analysis": {"match": [{"headers": {"x-user": {"exact": label}}}]}}, "iterations"
    if kind == "metrics":
        metric = {"name": label, "templateRef": {"name": "latency"}, "thresholdRange": {"max": 1}}
        return kind, {"analysis": {"metrics": [metric, dict(metric)]}}, "metrics[1].name"
    if kind == "hooks":
        hook = {"name": label, "url": "http://127.0.0.1:9/"}
        return kind, {"analysis": {"webhooks": [hook, dict(hook)]}}, "webhooks[1].name"
    if kind == "range":
        low = draw(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False))
        high = draw(st.floats(max_value=low, min_value=-1e12, allow_nan=False, exclude_max=True))
        metric = {"name": "request-success-rate", "thresholdRange": {"min": low, "max": high}}
        return kind, {"analysis": {"metrics": [metric]}}, "thresholdRange"
    if kind == "unknown-metric":
        return kind, {"analysis": {"metrics": [{"name": f"not-builtin-{label}", "thresholdRange": {"max": 1}}]}}, \
            "metrics[0]"
    return kind, {"targetRef": {"name": f"missing-{abs(hash(label)) % 10**6}"}}, "missing-"


class Env:
    """The sandbox on an event loop in a background thread (hypothesis drives a synchronous test) and the
    controller as a process."""

    def __init__(self, workdir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.sandbox = Sandbox(ready_delay=0.05, bookmark_interval=1.0)
        self.controller: Subprocess | None = None
        self.workdir = workdir

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run a coroutine on the sandbox's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        """Start the loop, the sandbox (with CRDs, namespaces, a Gateway), the controller and two releases."""
        self._thread.start()
        self.run(self._start())

    async def _start(self) -> None:
        sb = self.sandbox
        await sb.start()
        for doc in crd_documents():
            await sb.cluster.create("apiextensions.k8s.io", "customresourcedefinitions", copy.deepcopy(doc))
        for namespace in (NAMESPACE, GATEWAY_NAMESPACE):
            await sb.cluster.create("", "namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                       "metadata": {"name": namespace}})
        await sb.cluster.create(GATEWAY_GROUP, "gateways", gateway())
        for name in HEALTHY:
            await sb.cluster.create("apps", "deployments", deployment(name, "podinfo:1"))
            await sb.cluster.create("flagger.app", "canaries", canary(name, dict(ANALYSIS)))
        self.controller = Subprocess("controller", flaggerpy_argv(
            "run", "--kubeconfig", str(sb.kubeconfig_path), "--namespace", NAMESPACE, "--port", str(free_port()),
            "--listen-address", "127.0.0.1", "--metrics-server", "http://127.0.0.1:9", "--log-level", "warning",
        ), self.workdir / "controller.log")
        await self.controller.start()
        for name in HEALTHY:
            await self.wait(lambda n=name: self.phase(n) == "Initialized", f"{name} Initialized")
            await self.release(name)

    async def release(self, name: str) -> None:
        """Roll out a new image of Deployment ``name``."""
        dep = copy.deepcopy(self.sandbox.cluster.get("apps", "deployments", NAMESPACE, name))
        dep["metadata"].pop("resourceVersion", None)
        dep["spec"]["template"]["spec"]["containers"][0]["image"] = "podinfo:2"
        await self.sandbox.cluster.update("apps", "deployments", dep)

    def phase(self, name: str) -> str:
        """A canary's phase ("" before its first status)."""
        obj = self.sandbox.cluster.get("flagger.app", "canaries", NAMESPACE, name) or {}
        return (obj.get("status") or {}).get("phase") or ""

    def conditions(self, name: str) -> list[dict[str, Any]]:
        """A canary's status conditions."""
        obj = self.sandbox.cluster.get("flagger.app", "canaries", NAMESPACE, name) or {}
        return (obj.get("status") or {}).get("conditions") or []

    def events(self, name: str, mentioning: str) -> list[str]:
        """Messages of the Events about object ``name`` that mention ``mentioning``."""
        return [e.get("message", "") for e in self.sandbox.cluster.list("", "events", NAMESPACE)
                if (e.get("involvedObject") or {}).get("name") == name and mentioning in e.get("message", "")]

    async def wait(self, predicate: Callable[[], bool], what: str, within: float = ANSWER_TIMEOUT) -> None:
        """Poll ``predicate``; AssertionError naming ``what`` (and the controller's output) on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not predicate():
            assert self.controller is not None
            if self.controller.process is not None and self.controller.process.returncode is not None:
                raise AssertionError(f"the controller exited while waiting for {what}:\n{self.controller.tail()}")
            if loop.time() > deadline:
                raise AssertionError(f"{what}: not within {within}s\n{self.controller.tail()}")
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        """Stop the controller, the sandbox and the loop."""
        async def _stop() -> None:
            if self.controller is not None:
                await self.controller.stop()
            await self.sandbox.stop()

        self.run(_stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """One sandbox and controller for every example."""
    environment = Env(tmp_path_factory.mktemp("bad-input"))
    environment.start()
    try:
        yield environment
    finally:
        environment.stop()


def _set(manifest: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = manifest
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def _local_problems(manifest: dict[str, Any]) -> list[str] | None:
    """What the models say about a manifest: None when it is valid, else the problems they name."""
    try:
        Canary.from_dict(manifest)
    except SpecError as exc:
        return [str(e) for e in exc.errors]
    return None


_counter = iter(range(10**6))
# How each example was answered; the last test checks that both the API server and the controller had work.
OUTCOMES: dict[str, int] = {"refused": 0, "valid": 0, "condition": 0}


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(path=st.sampled_from(FIELDS), value=junk)
def test_bad_canaries_are_named_and_never_crash_the_controller(env: Env, path: tuple[str, ...], value: Any) -> None:
    name = f"bad-{next(_counter)}"
    manifest = canary(name, dict(ANALYSIS))
    _set(manifest, path, value)
    field = path[-1]
    env.run(env.sandbox.cluster.create("apps", "deployments", deployment(name, "podinfo:1")))
    try:
        try:
            env.run(env.sandbox.cluster.create("flagger.app", "canaries", copy.deepcopy(manifest)))
        except Exception as exc:  # the API server refused it: its message must say which field
            assert field in str(exc), f"refused without naming {field}: {exc}"
            OUTCOMES["refused"] += 1
            return
        problems = _local_problems(manifest)
        if problems is None:
            # The junk happened to be valid: the canary must be served like any other.
            env.run(env.wait(lambda: env.phase(name) in ("Initialized", "Initializing"), f"{name} served"))
            OUTCOMES["valid"] += 1
            return
        env.run(env.wait(lambda: any(c.get("reason") == "InvalidSpec" for c in env.conditions(name)),
                         f"{name} ({'.'.join(path)}={value!r}) InvalidSpec condition"))
        message = next(c["message"] for c in env.conditions(name) if c.get("reason") == "InvalidSpec")
        assert field in message, f"condition does not name {field}: {message!r}"
        OUTCOMES["condition"] += 1
    finally:
        env.run(_delete(env.sandbox, name))


async def _delete(sb: Sandbox, name: str) -> None:
    for group, plural in (("flagger.app", "canaries"), ("apps", "deployments")):
        if sb.cluster.get(group, plural, NAMESPACE, name) is not None:
            await sb.cluster.delete(group, plural, NAMESPACE, name)


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(mistake=semantic_mistakes())
def test_senseless_canaries_get_a_condition_naming_the_field(env: Env, mistake: Mutation) -> None:
    kind, changes, named = mistake
    name = f"odd-{next(_counter)}"
    manifest = canary(name, dict(ANALYSIS))
    _merge(manifest["spec"], copy.deepcopy(changes))
    env.run(env.sandbox.cluster.create("apps", "deployments", deployment(name, "podinfo:1")))
    try:
        env.run(env.sandbox.cluster.create("flagger.app", "canaries", manifest))
        reason = "TargetNotFound" if kind == "target" else "InvalidSpec"
        env.run(env.wait(lambda: any(c.get("reason") == reason for c in env.conditions(name)),
                         f"{name} {kind} {changes}: {reason} condition"))
        message = next(c["message"] for c in env.conditions(name) if c.get("reason") == reason)
        assert named in message, f"{reason} condition does not name {named}: {message!r}"
        OUTCOMES["condition"] += 1
    finally:
        env.run(_delete(env.sandbox, name))


# -- MetricTemplates --------------------------------------------------------------------------------------------

UNREACHABLE = "http://127.0.0.1:9"
# Queries no analysis can render (Go's data-field syntax included: Flagger's variables are not fields).
BROKEN_QUERIES = ["{{ unclosed", "sum(x{app=\"{{ .target }}\"})", "{{ 1 / 0 }}", "{{ target.nope() }}",
                  "sum(rate(x[{{ interval | no_such_filter }}]))"]
# Fields of a MetricTemplate and values of a type the CRD schema must refuse for them.
not_a_string = st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(),
                         st.lists(st.text(max_size=3), min_size=1, max_size=2),
                         st.dictionaries(st.text(min_size=1, max_size=3), st.text(max_size=3), min_size=1, max_size=2))
not_an_object = st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.text(max_size=8),
                          st.lists(st.integers(), min_size=1, max_size=2))
TEMPLATE_TYPES: list[tuple[tuple[str, ...], st.SearchStrategy[Any]]] = [
    (("spec", "query"), not_a_string),
    (("spec", "provider", "type"), not_a_string),
    (("spec", "provider", "address"), not_a_string),
    (("spec", "provider", "region"), not_a_string),
    (("spec", "provider"), not_an_object),
    (("spec", "provider", "secretRef"), not_an_object),
    (("spec", "provider", "headers"), st.one_of(not_an_object, st.just({"x-team": "not a list"}))),
    (("spec", "provider", "insecureSkipVerify"), st.one_of(st.integers(), st.text(max_size=5), st.lists(st.booleans(),
                                                                                                       min_size=1))),
]


def metric_template(name: str, provider: dict[str, Any] | None = None, query: str = "sum(up)") -> dict[str, Any]:
    """A MetricTemplate ``name`` (by default a Prometheus query against an address where nothing listens)."""
    return {"apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"provider": provider if provider is not None else {"type": "prometheus", "address": UNREACHABLE},
                     "query": query}}


@st.composite
def wrongly_typed_templates(draw: st.DrawFn) -> tuple[tuple[str, ...], Any]:
    """A MetricTemplate field and a value of the wrong type for it."""
    path, values = draw(st.sampled_from(TEMPLATE_TYPES))
    return path, draw(values)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(mistake=wrongly_typed_templates())
def test_wrongly_typed_metric_templates_are_refused_naming_the_field(env: Env, mistake: tuple[tuple[str, ...], Any],
                                                                     ) -> None:
    path, value = mistake
    name = f"typed-{next(_counter)}"
    manifest = metric_template(name)
    _set(manifest, path, value)
    field = ".".join(path)
    try:
        env.run(env.sandbox.cluster.create("flagger.app", "metrictemplates", manifest))
    except Exception as exc:
        assert field in str(exc), f"refused without naming {field}: {exc}"
        OUTCOMES["refused"] += 1
        return
    env.run(env.sandbox.cluster.delete("flagger.app", "metrictemplates", NAMESPACE, name))
    raise AssertionError(f"the API server accepted a MetricTemplate with {field}={value!r}")


# The names a query template may use (and literals it renders), so not examples of an undefined variable.
RENDERABLE = frozenset({"name", "namespace", "target", "service", "ingress", "route", "interval", "variables",
                        "true", "false", "none"})
TemplateMistake = tuple[str, dict[str, Any], str, str]  # (what, provider, query, what the Event must name)


TEMPLATE_MISTAKES = ["no-address", "bad-address", "unknown-type", "missing-secret", "unrenderable"]


@st.composite
def template_mistakes(draw: st.DrawFn, kind: str) -> TemplateMistake:
    """MetricTemplates the schema accepts but no analysis can use; the Event must name the template's field."""
    label = draw(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                         min_size=1, max_size=8))
    provider: dict[str, Any] = {"type": "prometheus", "address": UNREACHABLE}
    if kind == "no-address":
        provider = {"type": draw(st.sampled_from(["prometheus", "graphite"]))}
        blank = draw(st.sampled_from([None, "", "  "]))
        if blank is not None:
            provider["address"] = blank
        return kind, provider, "sum(up)", "spec.provider.address"
    if kind == "bad-address":
        provider["address"] = draw(st.sampled_from(["127.0.0.1:9090", "ftp://prometheus", f"prometheus-{label}",
                                                    f"//{label}"]))
        return kind, provider, "sum(up)", "spec.provider.address"
    if kind == "unknown-type":
        provider["type"] = f"x-{label}"
        return kind, provider, "sum(up)", "spec.provider.type"
    if kind == "missing-secret":
        provider["secretRef"] = {"name": f"missing-{abs(hash(label)) % 10**6}"}
        return kind, provider, "sum(up)", "spec.provider.secretRef"
    query = draw(st.one_of(st.sampled_from(BROKEN_QUERIES),
                           # never closed
                           st.builds(lambda text: "sum({{ " + text, st.text(st.characters(exclude_characters="}"),
                                                                             max_size=6)),
                           # an undefined variable
                           st.from_regex(r"\A[a-z]{1,8}\Z").filter(lambda v: v not in RENDERABLE)
                           .map(lambda v: "sum(x{app=\"{{ " + v + " }}\"})")))
    return kind, provider, query, "spec.query"


@pytest.mark.parametrize("kind", TEMPLATE_MISTAKES)
@settings(max_examples=max(2, EXAMPLES // 8), deadline=None, suppress_health_check=list(HealthCheck),
          derandomize=True)
@given(data=st.data())
def test_unusable_metric_templates_halt_the_analysis_naming_the_field(env: Env, kind: str, data: st.DataObject,
                                                                      ) -> None:
    _, provider, query, named = data.draw(template_mistakes(kind))
    name = f"mt-{next(_counter)}"
    analysis = {**ANALYSIS, "metrics": [{"name": "templated-check", "templateRef": {"name": name},
                                         "thresholdRange": {"max": 1}}]}
    env.run(env.sandbox.cluster.create("flagger.app", "metrictemplates", metric_template(name, provider, query)))
    env.run(env.sandbox.cluster.create("apps", "deployments", deployment(name, "podinfo:1")))
    try:
        env.run(env.sandbox.cluster.create("flagger.app", "canaries", canary(name, analysis)))
        env.run(env.wait(lambda: env.phase(name) == "Initialized", f"{name} Initialized"))
        env.run(env.release(name))
        env.run(env.wait(lambda: bool(env.events(name, "templated-check")),
                         f"{name} ({kind}: provider {provider}, query {query!r}): an Event about the metric"))
        messages = env.events(name, "templated-check")
        assert any(named in m for m in messages), f"{kind}: no Event names {named}: {messages}"
        OUTCOMES["condition"] += 1
    finally:
        env.run(_delete(env.sandbox, name))
        env.run(env.sandbox.cluster.delete("flagger.app", "metrictemplates", NAMESPACE, name))


@pytest.mark.parametrize("query", BROKEN_QUERIES)
def test_templates_that_fail_to_render_fail_the_analysis_naming_the_query(env: Env, query: str) -> None:
    name = f"tpl-{next(_counter)}"
    analysis = {**ANALYSIS, "threshold": 1,
                "metrics": [{"name": "broken-check", "templateRef": {"name": name}, "thresholdRange": {"max": 1}}]}
    env.run(env.sandbox.cluster.create("flagger.app", "metrictemplates", metric_template(name, query=query)))
    env.run(env.sandbox.cluster.create("apps", "deployments", deployment(name, "podinfo:1")))
    env.run(env.sandbox.cluster.create("flagger.app", "canaries", canary(name, analysis)))
    env.run(env.wait(lambda: env.phase(name) == "Initialized", f"{name} Initialized"))
    env.run(env.release(name))
    env.run(env.wait(lambda: env.phase(name) == "Failed", f"{name} rolled back"))
    messages = env.events(name, "broken-check")
    assert any(f"spec.query of MetricTemplate {NAMESPACE}/{name}" in m for m in messages), messages


def test_healthy_canaries_kept_progressing(env: Env) -> None:
    # Runs after the bad input (file order): the releases started before it must still finish.
    for name in HEALTHY:
        env.run(env.wait(lambda n=name: env.phase(n) == "Succeeded", f"{name} Succeeded", within=60), timeout=90)
    assert env.controller is not None and env.controller.process is not None
    assert env.controller.process.returncode is None, env.controller.tail()
    assert OUTCOMES["refused"] and OUTCOMES["condition"], OUTCOMES
