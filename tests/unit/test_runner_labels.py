"""What ``--selector-labels`` and ``--include-label-prefix`` do to the primary workload."""

from __future__ import annotations

from typing import Any

import pytest

from flaggerpy.canary import workload as wl

CANARY = {"apiVersion": "flagger.app/v1beta1", "kind": "Canary",
          "metadata": {"name": "web", "namespace": "test", "uid": "u-1"}}


def target(match_labels: dict[str, str], labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "test", "labels": labels or {}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": match_labels},
            "template": {"metadata": {"labels": {**match_labels, "version": "1"}},
                         "spec": {"containers": [{"name": "web", "image": "web:1"}]}},
        },
    }


def test_custom_selector_labels_pick_the_identity_label_in_their_order() -> None:
    workload = target({"app": "web", "component": "frontend"})
    labels = ("component", "app")
    assert wl.selector_label(workload, labels) == ("component", "frontend")
    primary = wl.build_primary(workload, CANARY, selector_labels=labels)
    assert primary["spec"]["selector"] == {"matchLabels": {"component": "frontend-primary"}}
    assert primary["spec"]["template"]["metadata"]["labels"]["component"] == "frontend-primary"
    # The other label stays as the target has it: it is not the identity.
    assert primary["spec"]["template"]["metadata"]["labels"]["app"] == "web"


def test_a_target_without_any_selector_label_names_the_ones_looked_for() -> None:
    with pytest.raises(wl.WorkloadError, match="needs one of the labels component, tier"):
        wl.selector_label(target({"app": "web"}), ("component", "tier"))


def test_only_labels_with_an_included_prefix_are_copied_to_the_primary() -> None:
    labels = {"app": "web", "team": "a", "team.example.com/owner": "b", "cost": "c"}
    primary = wl.build_primary(target({"app": "web"}, labels), CANARY, label_prefixes=("team",))
    assert primary["metadata"]["labels"] == {"app": "web-primary", "team": "a", "team.example.com/owner": "b"}
    # The pod template is copied whole: its labels are what the pods and metrics see.
    assert primary["spec"]["template"]["metadata"]["labels"] == {"app": "web-primary", "version": "1"}


def test_star_copies_every_label_but_fluxs_own() -> None:
    labels = {"app": "web", "team": "a", "kustomize.toolkit.fluxcd.io/name": "apps"}
    primary = wl.build_primary(target({"app": "web"}, labels), CANARY, label_prefixes=("*",))
    assert primary["metadata"]["labels"] == {"app": "web-primary", "team": "a"}


def test_by_default_no_label_or_annotation_of_the_target_is_copied_as_in_flagger() -> None:
    source = target({"app": "web"}, {"app": "web", "team": "a"})
    source["metadata"]["annotations"] = {"team.example.com/owner": "b", "note": "x"}
    primary = wl.build_primary(source, CANARY)
    assert primary["metadata"]["labels"] == {"app": "web-primary"}
    assert "annotations" not in primary["metadata"]
    primary = wl.build_primary(source, CANARY, label_prefixes=("team",))
    assert primary["metadata"]["labels"] == {"app": "web-primary", "team": "a"}
    assert primary["metadata"]["annotations"] == {"team.example.com/owner": "b"}
