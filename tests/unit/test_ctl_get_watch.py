"""`flaggerpy get --watch`: what a redraw costs."""

from __future__ import annotations

from typing import Any

import pytest

from flaggerpy.ctl import get
from tests.manifests import canary


def test_watch_redraws_parse_each_canary_once_per_resource_version(monkeypatch: pytest.MonkeyPatch) -> None:
    watches = get._Watches(None, None)  # type: ignore[arg-type]
    obj = canary()
    obj["metadata"]["resourceVersion"] = "7"
    watches.canaries.store.put(obj)
    parsed: list[Any] = []
    real = get.parse_canary
    monkeypatch.setattr(get, "parse_canary", lambda o: parsed.append(o) or real(o))
    first, second = watches.rows(), watches.rows()
    assert first == second and len(parsed) == 1
