"""A Canary's spec is parsed once per version; its status is always the one just read."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from flaggerpy.apis.errors import SpecError
from flaggerpy.canary.parsed import ParsedCanaries
from tests.manifests import canary


def obj(**status: Any) -> dict[str, Any]:
    doc = canary(analysis={"interval": "10s", "threshold": 2, "maxWeight": 50, "stepWeight": 10})
    doc["metadata"].update(uid="u-1", generation=1, resourceVersion="5")
    doc["status"] = {"phase": "Progressing", **status}
    return doc


def test_same_spec_reuses_the_parse_but_reads_the_new_status() -> None:
    parsed = ParsedCanaries()
    first = parsed.parse(obj(canaryWeight=10))
    later = obj(canaryWeight=20)
    later["metadata"]["resourceVersion"] = "9"
    second = parsed.parse(later)
    assert second.plan is first.plan
    assert second.canary.spec is first.canary.spec
    assert (first.canary.status.canary_weight, second.canary.status.canary_weight) == (10, 20)
    assert second.plan.step_weight == 10 and second.plan.max_weight == 50


def test_an_edited_spec_or_annotation_is_parsed_again() -> None:
    parsed = ParsedCanaries()
    first = parsed.parse(obj())
    edited = obj()
    edited["spec"]["analysis"]["stepWeight"] = 5
    assert parsed.parse(edited).plan.step_weight == 5
    annotated = copy.deepcopy(edited)
    annotated["metadata"]["annotations"] = {"team": "web"}
    assert parsed.parse(annotated).canary.metadata.annotations == {"team": "web"}
    assert first.plan.step_weight == 10


def test_an_invalid_spec_or_status_is_named_every_time() -> None:
    parsed = ParsedCanaries()
    parsed.parse(obj())
    bad_status = obj(canaryWeight="lots")
    for _ in range(2):
        with pytest.raises(SpecError) as err:
            parsed.parse(bad_status)
        assert "status.canaryWeight" in str(err.value.errors[0])
    bad_spec = obj()
    bad_spec["spec"]["analysis"]["stepWeight"] = -1
    with pytest.raises(SpecError) as err:
        parsed.parse(bad_spec)
    assert any(e.field == "spec.analysis.stepWeight" for e in err.value.errors)


def test_the_informers_object_is_never_modified() -> None:
    doc = obj(canaryWeight=10)
    before = copy.deepcopy(doc)
    parsed = ParsedCanaries()
    parsed.parse(doc)
    parsed.parse(doc)
    assert doc == before


def test_plan_is_known_after_a_parse_and_forgotten_on_delete() -> None:
    parsed = ParsedCanaries()
    assert parsed.plan("test/podinfo") is None
    parsed.parse(obj())
    plan = parsed.plan("test/podinfo")
    assert plan is not None and plan.threshold == 2
    parsed.forget("test/podinfo")
    assert parsed.plan("test/podinfo") is None



def test_each_parse_dumps_its_own_status() -> None:
    parsed = ParsedCanaries()
    parsed.parse(obj(canaryWeight=10))
    first = parsed.parse(obj(canaryWeight=20))
    assert first.canary.to_dict()["status"]["canaryWeight"] == 20
    assert parsed.parse(obj(canaryWeight=30)).canary.to_dict()["status"]["canaryWeight"] == 30
    assert first.canary.to_dict()["status"]["canaryWeight"] == 20
