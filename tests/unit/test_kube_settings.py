"""Settings validation: impossible leader-election timings are refused with the field names."""

from __future__ import annotations

import pytest

from flaggerpy.kube.leader import default_identity
from flaggerpy.kube.settings import LeaderSettings


def test_leader_timings_must_nest() -> None:
    LeaderSettings(lease_duration=1.5, renew_deadline=1.0, retry_period=0.2)
    with pytest.raises(ValueError, match="renew_deadline=15"):
        LeaderSettings(lease_duration=15, renew_deadline=15)
    with pytest.raises(ValueError, match="retry_period=0"):
        LeaderSettings(retry_period=0)


def test_default_identity_names_host_and_process() -> None:
    import os

    assert default_identity().endswith(f"_{os.getpid()}")
