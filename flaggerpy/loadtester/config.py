"""Settings of the load tester, one typed field per flag or limit so tests can shrink them."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class LoadtesterConfig:
    """Everything the load tester server needs to know.

    ``timeout`` bounds every command, background or blocking (flagger-loadtester's ``-timeout``).
    ``namespace_regexp`` refuses payloads from namespaces it does not match (searched, not anchored, like Go's
    ``MatchString``). ``log_cmd_output`` is the default for background commands that do not set
    ``metadata.logCmdOutput``.
    """

    host: str = "0.0.0.0"
    port: int = 8080
    timeout: float = 3600.0
    namespace_regexp: re.Pattern[str] | None = None
    log_cmd_output: bool = False
    # Commands like `hey` print a summary at the end, so the tail of the output is what is kept.
    max_output_bytes: int = 64 * 1024
    # Time a command gets between SIGTERM and SIGKILL when it is stopped.
    kill_grace: float = 5.0
    max_request_bytes: int = 1024 * 1024
    # How long in-flight requests get to finish when the server stops.
    shutdown_timeout: float = 10.0
