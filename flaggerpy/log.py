"""structlog configuration: a console renderer on a TTY, JSON lines everywhere else."""

from __future__ import annotations

import logging
import sys

import structlog

CACHE_LOGGERS = True
"""Whether a logger keeps the configuration it was first used with (structlog's ``cache_logger_on_first_use``: a
log call then skips the configuration lookup). The test suite turns it off, because a module's logger cached after a
command configured logging in-process would never reach ``structlog.testing.capture_logs`` again."""


def configure(level: str = "info", json: bool | None = None) -> None:
    """Configure structlog and the stdlib root logger once per process.

    ``json`` defaults to "stderr is not a TTY", so a container logs JSON and a developer's terminal stays readable.
    Tracebacks are plain: structlog's default rich formatter renders every frame's locals, which for a process
    holding thousands of cached objects blocks the event loop for minutes.
    """
    if json is None:
        json = not sys.stderr.isatty()
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"--log-level: unknown level {level!r} (debug, info, warning, error)")
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(message)s")
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=CACHE_LOGGERS,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A logger bound with ``logger_name=name``; bind ``canary=namespace/name`` at the call site.

    The key is not ``logger`` because structlog's ``get_logger`` reserves that keyword for the wrapped logger.
    """
    return structlog.get_logger(logger_name=name)
