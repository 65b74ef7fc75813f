"""Label and field selector parsing and matching."""

from __future__ import annotations

import pytest

from flaggerpy.sandbox.apiserver.errors import StatusError
from flaggerpy.sandbox.apiserver.selectors import match_label_selector, matcher

OBJ = {"metadata": {"name": "n", "namespace": "ns", "labels": {"app": "web", "tier": "front"}},
       "involvedObject": {"kind": "Canary", "name": "podinfo"}, "status": {"ready": True}}


@pytest.mark.parametrize("selector, expected", [
    ("app=web", True), ("app==web", True), ("app!=web", False), ("app=api", False),
    ("app in (web, api)", True), ("app notin (web)", False), ("tier", True), ("!tier", False),
    ("missing", False), ("!missing", True), ("missing!=x", True), ("app=web,tier=front", True),
    ("app=web,tier=back", False), ("", True),
])
def test_label_selectors(selector: str, expected: bool) -> None:
    match = matcher(selector, None)
    assert (match is None or match(OBJ)) is expected


@pytest.mark.parametrize("selector, expected", [
    ("metadata.name=n", True), ("metadata.namespace!=ns", False), ("involvedObject.kind=Canary", True),
    ("involvedObject.name=other", False), ("status.ready=true", True), ("metadata.name=n,involvedObject.kind=X", False),
])
def test_field_selectors(selector: str, expected: bool) -> None:
    match = matcher(None, selector)
    assert match is not None and match(OBJ) is expected


@pytest.mark.parametrize("selector", ["app in web", "a b c", "=x"])
def test_bad_label_selectors_are_400s_naming_the_clause(selector: str) -> None:
    with pytest.raises(StatusError) as err:
        matcher(selector, None)
    assert err.value.code == 400 and "labelSelector" in err.value.message


def test_bad_field_selector() -> None:
    with pytest.raises(StatusError) as err:
        matcher(None, "metadata.name in (a)")
    assert err.value.code == 400 and "fieldSelector" in err.value.message


def test_structured_label_selector() -> None:
    selector = {"matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]},
                                     {"key": "gone", "operator": "DoesNotExist"}]}
    assert match_label_selector(selector, {"app": "web", "tier": "front"})
    assert not match_label_selector(selector, {"app": "web", "tier": "back"})
