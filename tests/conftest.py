"""Shared pytest configuration."""

from hypothesis import HealthCheck, settings

# Hypothesis times example generation by the wall clock for its too_slow health check and for deadlines: on a shared
# 2-core CI machine that measures the other processes as much as the strategy, so neither may fail a test. Tests
# that set their own settings inherit this profile for what they leave unset.
settings.register_profile("flaggerpy", suppress_health_check=[HealthCheck.too_slow], deadline=None)
settings.load_profile("flaggerpy")
