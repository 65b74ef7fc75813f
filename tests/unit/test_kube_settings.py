"""Settings validation: impossible leader-election timings are refused with the field names."""

from __future__ import annotations

import pytest

from flaggerpy.kube.leader import default_identity
from flaggerpy.kube.settings import ClientSettings, LeaderSettings


def test_leader_timings_must_nest() -> None:
    LeaderSettings(lease_duration=1.5, renew_deadline=1.0, retry_period=0.2)
    with pytest.raises(ValueError, match="renew_deadline=15"):
        LeaderSettings(lease_duration=15, renew_deadline=15)
    with pytest.raises(ValueError, match="retry_period=0"):
        LeaderSettings(retry_period=0)


def test_default_identity_names_host_and_process() -> None:
    import os

    assert default_identity().endswith(f"_{os.getpid()}")


def test_client_rate_limit_reads_like_client_go_rest_config() -> None:
    assert ClientSettings().token_bucket() == (100.0, 250), "Flagger's -kubeconfig-qps/-kubeconfig-burst defaults"
    assert ClientSettings(qps=0, burst=0).token_bucket() == (5.0, 10), "zero means client-go's defaults"
    assert ClientSettings(qps=-1).token_bucket() is None, "a negative QPS turns the limit off"
    with pytest.raises(ValueError, match="burst"):
        ClientSettings(burst=-1)
