"""Shared pytest configuration."""

import structlog
from hypothesis import HealthCheck, settings

# Hypothesis times example generation by the wall clock for its too_slow health check and for deadlines: on a shared
# 2-core CI machine that measures the other processes as much as the strategy, so neither may fail a test. Tests
# that set their own settings inherit this profile for what they leave unset.
settings.register_profile("flaggerpy", suppress_health_check=[HealthCheck.too_slow], deadline=None)
settings.load_profile("flaggerpy")

# Plain tracebacks, as every flaggerpy process logs them (flaggerpy.log.configure). structlog's default renders each
# frame's source (highlighted) and locals with rich: a tenth of a CPU second for the first one, and in-process
# controllers log every injected fault that way on the event loop their sandbox and test share, which on a loaded
# machine pushed a 3 ms work queue test past its bound. Everything else stays structlog's default.
structlog.configure(processors=[
    *structlog.get_config()["processors"][:-1],
    structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback),
])
