"""The Flagger conformance scenarios (tests/conformance) on the real control plane: the same sequences of webhook
calls and Events with Kubernetes' own controllers readying the pods and Traefik accepting the routes. (The session
affinity and deletion scenarios use the sandbox's Gateway listener and store, and A/B testing follows the sandbox
store's change feed, so they stay in tests/conformance; tests/real/test_real_releases.py runs A/B on this cluster.)"""

from __future__ import annotations

from tests.conformance.conftest import analyzer, events, hooks, metrics, webhooks
from tests.conformance.test_gatewayapi_ab_bg import (
    test_blue_green,
    test_blue_green_rolls_back_in_the_analysis_at_100_percent,
    test_waiting_promotion_keeps_analysing_and_can_roll_back,
)
from tests.conformance.test_gatewayapi_canary import test_canary_promotion, test_canary_rollback
from tests.conformance.test_skip_and_deletion import test_skip_analysis

__all__ = [
    "analyzer",
    "events",
    "hooks",
    "metrics",
    "test_blue_green",
    "test_blue_green_rolls_back_in_the_analysis_at_100_percent",
    "test_canary_promotion",
    "test_canary_rollback",
    "test_skip_analysis",
    "test_waiting_promotion_keeps_analysing_and_can_roll_back",
    "webhooks",
]
