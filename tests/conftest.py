"""Shared pytest configuration, and the one check that the Gateway API CRDs the tests validate against are there."""

from collections.abc import Iterator

import pytest
import structlog
from hypothesis import HealthCheck, settings

import flaggerpy.log
from tests.paths import GATEWAY_API_CRDS, GATEWAY_CRDS_ENV

GATEWAY_API_CRD_FILES = ("backendtlspolicies", "gatewayclasses", "gateways", "grpcroutes", "httproutes",
                         "listenersets", "referencegrants", "tcproutes", "tlsroutes", "udproutes")
MISSING_CRDS = f"""the tests need the official Gateway API v1.6.1 (Standard channel) CRDs, one file per CRD, in
  {GATEWAY_API_CRDS}
(the directory shared/gateway-api-v1.6.1 beside the clone; ${GATEWAY_CRDS_ENV} names another one). Get them with:
  git clone --depth 1 --branch v1.6.1 https://github.com/kubernetes-sigs/gateway-api /tmp/gateway-api
  mkdir -p {GATEWAY_API_CRDS}
  cp /tmp/gateway-api/config/crd/standard/gateway.networking.k8s.io_{{{",".join(GATEWAY_API_CRD_FILES)}}}.yaml \\
     {GATEWAY_API_CRDS}/"""

# Hypothesis times example generation by the wall clock for its too_slow health check and for deadlines: on a shared
# 2-core CI machine that measures the other processes as much as the strategy, so neither may fail a test. Tests
# that set their own settings inherit this profile for what they leave unset.
settings.register_profile("flaggerpy", suppress_health_check=[HealthCheck.too_slow], deadline=None)
settings.load_profile("flaggerpy")


def pytest_configure(config: pytest.Config) -> None:
    """Stop before collecting when the CRDs are missing: one message saying how to get them, instead of skips
    and failures deep inside the tests that apply them."""
    if not (GATEWAY_API_CRDS / "gateway.networking.k8s.io_httproutes.yaml").is_file():
        pytest.exit(MISSING_CRDS, returncode=pytest.ExitCode.USAGE_ERROR)


# A command run in-process (flaggerpy run, the demo) configures logging for the whole process; its loggers must not
# be cached, so that the next test's capture_logs sees them.
flaggerpy.log.CACHE_LOGGERS = False


@pytest.fixture(autouse=True)
def _structlog_as_before() -> Iterator[None]:
    """Each test leaves structlog as it found it. Commands run in-process configure it for the whole process (the
    CLI's quiet_logs filters below ERROR, the controller's logconf sets its level), and a later test that captures
    logs, or runs a CLI that keeps quiet only on an unconfigured structlog, must not depend on what ran before."""
    configured = structlog.is_configured()
    saved = structlog.get_config()
    yield
    if configured:
        structlog.configure(**saved)
    else:
        structlog.reset_defaults()
