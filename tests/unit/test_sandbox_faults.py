"""Fault rules, their JSON form and validation, and counters."""

from __future__ import annotations

import pytest

from flaggerpy.sandbox.apiserver.faults import Counters, Faults, Rule


@pytest.mark.parametrize("rule_resource, request_resource, expected", [
    ("*", "deployments.apps", True),
    ("deployments", "deployments.apps", True),
    ("deployments.apps", "deployments.apps", True),
    ("deployments", "deployments.apps/status", True),
    ("deployments/status", "deployments.apps/status", True),
    ("deployments/status", "deployments.apps", False),
    ("services", "deployments.apps", False),
])
def test_rule_resource_matching(rule_resource: str, request_resource: str, expected: bool) -> None:
    assert Rule(resource=rule_resource).applies("get", request_resource) is expected


def test_rule_verb_matching() -> None:
    assert Rule(verb="update").applies("update", "leases.coordination.k8s.io")
    assert not Rule(verb="update").applies("patch", "leases.coordination.k8s.io")


def test_rates_are_honoured_with_a_seed() -> None:
    faults = Faults(seed=7)
    faults.errors.append(Rule(rate=0.5, code=503))
    outcomes = [faults.error_for("get", "configmaps") for _ in range(400)]
    failures = outcomes.count(503)
    assert 120 < failures < 280 and set(outcomes) == {None, 503}


def test_a_seed_set_on_running_faults_makes_the_draws_repeatable() -> None:
    def draws(faults: Faults) -> list[int | None]:
        faults.errors.append(Rule(rate=0.5, code=503))
        return [faults.error_for("get", "configmaps") for _ in range(50)]

    late = Faults()
    late.error_for("get", "configmaps")
    late.seed = 7
    assert draws(late) == draws(Faults(seed=7))


def test_conflicts_only_hit_writes() -> None:
    faults = Faults()
    faults.conflicts.append(Rule())
    assert faults.conflict_for("patch", "configmaps")
    assert not faults.conflict_for("get", "configmaps")


def test_forced_gone_is_consumed() -> None:
    faults = Faults()
    faults.force_gone("deployments", 2)
    assert faults.take_gone("deployments.apps")
    assert faults.take_gone("deployments.apps")
    assert not faults.take_gone("deployments.apps")


def test_update_round_trips_and_validates() -> None:
    faults = Faults()
    faults.update({"errors": [{"verb": "list", "resource": "configmaps", "rate": 0.25, "code": 500}],
                   "latency": [{"seconds": 0.5}], "drop_watches_every": 3})
    assert faults.to_dict()["errors"][0]["rate"] == 0.25
    assert faults.drop_watches_every == 3
    for bad, field in (({"errors": [{"rate": 2}]}, "faults.errors[0].rate"),
                       ({"errors": [{"code": 200}]}, "faults.errors[0].code"),
                       ({"latency": [{"seconds": -1}]}, "faults.latency[0].seconds"),
                       ({"errors": [{"colour": 1}]}, "faults.errors[0]"),
                       ({"drop_watches_every": 0}, "faults.drop_watches_every"),
                       ({"nonsense": 1}, "unknown field")):
        with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
            faults.update(bad)
    faults.clear()
    assert faults.to_dict()["errors"] == [] and faults.drop_watches_every is None


def test_drop_listeners_are_called() -> None:
    faults = Faults()
    calls: list[int] = []
    faults.on_drop(lambda: calls.append(1))
    faults.update({"drop_watches": True})
    assert calls == [1]


def test_counters() -> None:
    counters = Counters()
    counters.inc("get", "deployments.apps")
    counters.inc("list", "deployments.apps")
    counters.inc("patch", "deployments.apps/status")
    assert counters.get(resource="deployments") == 3
    assert counters.reads("deployments.apps") == 2
    assert counters.snapshot() == {"deployments.apps": {"get": 1, "list": 1},
                                   "deployments.apps/status": {"patch": 1}}
